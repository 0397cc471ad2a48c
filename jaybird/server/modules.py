"""Finding and loading server modules.

Modules are found by entry point (group ``jaybird.server_modules``): the core never imports one by name. They
load in dependency order (a module's ``requires`` first, loaded even when not named in the configuration, as
Prosody's ``module:depends`` does) and unload in reverse.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from importlib.metadata import EntryPoint, entry_points

from jaybird.errors import ConfigError
from jaybird.server.api import ENTRY_POINT_GROUP, ServerModule
from jaybird.server.config import ServerConfig
from jaybird.server.host import VirtualHost

__all__ = ["ModuleSet", "available_modules", "resolve_modules"]

log = logging.getLogger("jaybird.server.modules")


def available_modules() -> dict[str, EntryPoint]:
    """Every installed module, by name."""
    return {ep.name: ep for ep in entry_points(group=ENTRY_POINT_GROUP)}


def _load_class(config: ServerConfig, name: str, entry: EntryPoint) -> type[ServerModule]:
    try:
        cls = entry.load()
    except Exception as exc:  # an ImportError or anything its import raised: the module is unusable
        raise ConfigError(config.source, "modules", f"module {name!r} cannot be loaded: {exc}") from exc
    if not (isinstance(cls, type) and issubclass(cls, ServerModule)):
        raise ConfigError(config.source, "modules", f"module {name!r} ({entry.value}) is not a ServerModule")
    return cls


def resolve_modules(
    config: ServerConfig, names: Sequence[str], known: Mapping[str, EntryPoint] | None = None
) -> list[type[ServerModule]]:
    """The classes to load for ``names``, each after the modules it requires; ConfigError for an unknown
    name, a module that fails to import, or a dependency cycle."""
    known = available_modules() if known is None else known
    config.check_module_names(known)
    ordered: list[type[ServerModule]] = []
    visiting: list[type[ServerModule]] = []

    def visit(cls: type[ServerModule]) -> None:
        if cls in ordered:
            return
        if cls in visiting:
            cycle = " -> ".join(c.name for c in [*visiting[visiting.index(cls) :], cls])
            raise ConfigError(config.source, "modules", f"modules require each other in a cycle: {cycle}")
        visiting.append(cls)
        for required in cls.requires:
            visit(required)
        visiting.pop()
        ordered.append(cls)

    for name in names:
        if name not in known:
            raise ConfigError(config.source, "modules", f"unknown module {name!r}")
        visit(_load_class(config, name, known[name]))
    return ordered


class ModuleSet:
    """The module instances of one host, in load order."""

    def __init__(self, host: VirtualHost) -> None:
        self.host = host
        self.loaded: list[ServerModule] = []

    async def load(self, classes: Sequence[type[ServerModule]]) -> None:
        config = self.host.server_config
        for cls in classes:
            options = config.module_options(getattr(cls, "name", cls.__name__))
            instance = cls(self.host, options)
            self.host.attach_module(instance)
            try:
                await instance.load()
                options.check_unread()
            except BaseException:
                self.host.detach_module(instance)
                await _unload_quietly(instance)
                raise
            self.loaded.append(instance)
            log.debug("%s: loaded module %s", self.host.domain, getattr(cls, "name", cls.__name__))

    async def unload(self) -> None:
        while self.loaded:
            instance = self.loaded.pop()
            await _unload_quietly(instance)
            self.host.detach_module(instance)


async def _unload_quietly(instance: ServerModule) -> None:
    try:
        await instance.unload()
    except Exception:
        # One broken module must not keep the others (and the storage they write to) from shutting down.
        log.exception("module %s failed to unload", type(instance).__name__)
