"""A real VirtualHost with modules loaded and fake sessions: module logic without sockets.

Shared by the tests of the disco, ping, version, time, last and offline modules.
"""

from __future__ import annotations

import inspect
import time
from collections.abc import Mapping
from dataclasses import replace
from typing import Any

from jaybird.errors import StreamError
from jaybird.jid import JID
from jaybird.server.api import Host, IqRequest, IqScope, ServerModule
from jaybird.server.config import HostConfig, LimitsConfig, ModuleOptions, ServerConfig
from jaybird.server.host import VirtualHost
from jaybird.server.storage import Storage, open_storage
from jaybird.stanza import Iq, IqType, Message, Presence, Stanza
from jaybird.xml.element import Element

DOMAIN = "example.com"


class FakeSession:
    """A bound session that records what is sent to it and whether it was closed."""

    def __init__(self, host: Host, jid: JID | str, *, available: bool = False, priority: int = 0) -> None:
        self._jid = JID(jid) if isinstance(jid, str) else jid
        self._host = host
        self.available = available
        self.interested = False
        self.priority = priority
        self.presence: Presence | None = None
        self.data: dict[type[Any], Any] = {}
        self.last_received = time.monotonic()
        self.sent: list[Element] = []
        self.closed: list[StreamError | None] = []

    @property
    def jid(self) -> JID:
        return self._jid

    @property
    def host(self) -> Host:
        return self._host

    async def send(self, stanza: Stanza | Element) -> None:
        self.sent.append(stanza.element if isinstance(stanza, Stanza) else stanza)

    @property
    def closing(self) -> bool:
        return bool(self.closed)

    def close(self, error: StreamError | None = None) -> None:
        self.closed.append(error)


class Harness:
    def __init__(self, host: VirtualHost) -> None:
        self.host = host
        self.routed: list[Message | Presence | Iq] = []

    def session(self, jid: str, *, available: bool = False, priority: int = 0) -> FakeSession:
        session = FakeSession(self.host, jid, available=available, priority=priority)
        self.host.sessions.add(session)
        return session

    async def ask(self, iq: Iq, scope: IqScope) -> Element | None:
        """Run the handler the core would pick for ``iq`` and return its result payload as an element.
        ``StanzaError`` propagates, as it does to the router."""
        payload = iq.payload
        assert payload is not None and iq.type is not None
        handler = self.host.iq_handler(iq.type, payload.name, scope)
        assert handler is not None, f"no handler for {payload.name} ({scope})"
        to = iq.to or (iq.from_.bare if iq.from_ else self.host.jid)
        result = handler(IqRequest(iq, to.bare if scope is IqScope.ACCOUNT else self.host.jid, None))
        if inspect.isawaitable(result):
            result = await result
        if result is None or isinstance(result, Element):
            return result
        return result.to_element()

    def get(self, payload: Element, *, sender: str, to: str = DOMAIN) -> Iq:
        return Iq.build(IqType.GET, payload, to=to, from_=sender)


async def make_harness(
    modules: list[type[ServerModule]],
    *,
    storage: Storage | None = None,
    limits: LimitsConfig | None = None,
    options: Mapping[str, Mapping[str, object]] | None = None,
) -> tuple[Harness, list[ServerModule]]:
    config = ServerConfig(hosts=(HostConfig(DOMAIN),), storage=replace(ServerConfig().storage, url="memory://"))
    if limits is not None:
        config = replace(config, limits=limits)
    harness: Harness

    async def route(stanza: Message | Presence | Iq, origin: object) -> None:
        harness.routed.append(stanza)

    if storage is None:
        storage = await open_storage("memory://")
    host = VirtualHost(config.hosts[0], config, storage, route)
    harness = Harness(host)
    loaded: list[ServerModule] = []
    for cls in modules:
        instance = cls(host, ModuleOptions(cls.name, (options or {}).get(cls.name, {})))
        host.attach_module(instance)
        await instance.load()
        loaded.append(instance)
    return harness, loaded


async def unload(modules: list[ServerModule]) -> None:
    for module in reversed(modules):
        await module.unload()
