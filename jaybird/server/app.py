"""The server: configuration in, storage, hosts, modules and listeners up; graceful shutdown out.

::

    async with Server(config) as server:   # started: listening, modules loaded
        await server.wait_stopped()         # until stop() (SIGTERM/SIGINT under run())

Shutdown order (nothing stored is lost): stop accepting, send every stream ``system-shutdown`` and the close
tag, wait (bounded) for the writes and for SessionEnded handlers, unload modules in reverse, close storage.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import signal
from pathlib import Path
from types import TracebackType
from typing import Final, Self

from jaybird.errors import StreamError, StreamErrorCondition
from jaybird.server.api import Session
from jaybird.server.auth import FailedLoginThrottle
from jaybird.server.c2s import C2SContext
from jaybird.server.certs import ServerTLS, ensure_certificate
from jaybird.server.components import ComponentListeners, ComponentRegistry
from jaybird.server.config import ServerConfig
from jaybird.server.host import VirtualHost
from jaybird.server.http import HTTPListener
from jaybird.server.listeners import C2SListeners
from jaybird.server.modules import ModuleSet, resolve_modules
from jaybird.server.router import RoutedStanza, Router
from jaybird.server.s2s import S2SService
from jaybird.server.storage import Storage, open_storage
from jaybird.server.workers.mesh import WorkerMesh

__all__ = ["Server", "run_server"]

log = logging.getLogger("jaybird.server")

#: How long shutdown waits for sessions to flush and end before cutting them off.
SHUTDOWN_TIMEOUT_S: Final = 5.0


class Server:
    """One server process's worth of hosts and listeners."""

    def __init__(self, config: ServerConfig, *, storage: Storage | None = None, mesh: WorkerMesh | None = None) -> None:
        """``mesh``: this process is one of ``config.workers`` worker processes (see :mod:`jaybird.server.workers`)."""
        self.config = config
        self.mesh = mesh
        self._given_storage = storage
        self._storage: Storage | None = None
        self.hosts: dict[str, VirtualHost] = {}
        self.router = Router(self.hosts)
        #: External components (XEP-0114) by domain; the router sends their domains' stanzas there.
        self.components = ComponentRegistry(config.listeners.components)
        self.router.components = self.components
        self._modules: list[ModuleSet] = []
        self._listeners: C2SListeners | None = None
        self._s2s: S2SService | None = None
        self._http: HTTPListener | None = None
        self._components: ComponentListeners | None = None
        self._stopped = asyncio.Event()
        self._started = False
        self._stopping = False

    # -- lifecycle ------------------------------------------------------------------------------------------------
    @property
    def storage(self) -> Storage:
        if self._storage is None:
            raise RuntimeError("the server is not started")
        return self._storage

    @property
    def listeners(self) -> C2SListeners:
        if self._listeners is None:
            raise RuntimeError("the server is not started")
        return self._listeners

    async def start(self) -> None:
        """Open storage, make certificates, load modules and listen. Raises ConfigError / OSError on failure
        (having undone whatever it had started)."""
        config = self.config
        try:
            config.data_dir.mkdir(parents=True, exist_ok=True)
            self._storage = self._given_storage or await open_storage(config.storage.url)
            tls = ServerTLS(self._certificates())
            for host_config in config.hosts:
                self.hosts[host_config.domain] = VirtualHost(host_config, config, self._storage, self._route)
            for host_config in config.hosts:
                modules = ModuleSet(self.hosts[host_config.domain])
                self._modules.append(modules)
                await modules.load(resolve_modules(config, config.modules_for(host_config)))
            context = C2SContext(
                config, self.hosts, self.router, tls, FailedLoginThrottle(config.auth.failed_login_throttle)
            )
            if self.mesh is None:
                self._listeners = C2SListeners(context)
            else:
                # Linked to the other workers before taking clients, so that no session goes unannounced.
                self.mesh.attach(self.hosts)
                await self.mesh.start()
                self._listeners = C2SListeners(context, reuse_port=True, connection_class=self.mesh.connection_class)
            await self._listeners.start()
            if config.listeners.components:
                self._components = ComponentListeners(config, self.router, self.components, self.hosts)
                await self._components.start()
            if config.listeners.s2s.enabled:
                self._s2s = S2SService(config, self.hosts, self.router, tls.starttls_context)
                await self._s2s.start()
            if config.listeners.http.enabled:
                self._http = HTTPListener(context)
                await self._http.start()
        except BaseException:
            await self._teardown()
            raise
        self._started = True
        log.info("jaybird serving %s", ", ".join(self.hosts))

    @property
    def http(self) -> HTTPListener:
        """The BOSH / WebSocket / host-meta listener (``listeners.http``)."""
        if self._http is None:
            raise RuntimeError("the HTTP listener is not running")
        return self._http

    @property
    def component_listeners(self) -> ComponentListeners:
        """The XEP-0114 component listeners (``[[listeners.components]]``)."""
        if self._components is None:
            raise RuntimeError("no component listener is running")
        return self._components

    def _certificates(self) -> list[tuple[str, Path, Path]]:
        found = []
        for host in self.config.hosts:
            paths = self.config.certificate_for(host)
            if paths.self_signed:
                ensure_certificate(host.domain, paths.cert_file, paths.key_file)
            found.append((host.domain, paths.cert_file, paths.key_file))
        return found

    async def _route(self, stanza: RoutedStanza, origin: Session | None) -> None:
        await self.router.route(stanza, origin)

    async def stop(self) -> None:
        """Graceful shutdown; idempotent."""
        if self._stopping:
            await self._stopped.wait()
            return
        self._stopping = True
        log.info("shutting down")
        try:
            await self._teardown()
        finally:
            self._stopped.set()
            log.info("stopped")

    @property
    def s2s(self) -> S2SService:
        """Federation (listeners.s2s.enabled)."""
        if self._s2s is None:
            raise RuntimeError("federation is not enabled")
        return self._s2s

    async def _teardown(self) -> None:
        s2s, self._s2s = self._s2s, None
        if s2s is not None:
            await s2s.stop(StreamError(StreamErrorCondition.SYSTEM_SHUTDOWN, "the server is shutting down"))
        listeners, self._listeners = self._listeners, None
        http, self._http = self._http, None
        components, self._components = self._components, None
        if components is not None:
            await components.stop_accepting()
        if http is not None:
            await http.stop_accepting()
        if listeners is not None:
            await listeners.stop_accepting()
        error = StreamError(StreamErrorCondition.SYSTEM_SHUTDOWN, "the server is shutting down")
        if http is not None:
            await http.close_all(error, SHUTDOWN_TIMEOUT_S)
        if listeners is not None:
            await listeners.close_all(error, SHUTDOWN_TIMEOUT_S)
        if components is not None:
            await components.close_all(error, SHUTDOWN_TIMEOUT_S)
        if self.mesh is not None:
            await self.mesh.stop()  # after the sessions ended: the other workers heard of each
        while self._modules:
            await self._modules.pop().unload()
        storage, self._storage = self._storage, None
        if storage is not None and self._given_storage is None:
            try:
                await storage.close()
            except Exception:
                log.exception("closing the storage failed")

    async def wait_stopped(self) -> None:
        await self._stopped.wait()

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.stop()


def freeze_startup_objects() -> None:
    """Move everything alive once the server has started (modules, configuration, hosts: most of the objects
    the process will ever track) out of reach of the cyclic garbage collector (``gc.freeze``). A full
    collection otherwise walks all of them again and again, and the loop stands still meanwhile: with 1,000
    BOSH sessions that was the whole of the delivery p99 (141 ms -> 2.5 ms, docs/benchmarks.md). For a
    serving process only; objects made later are collected as before."""
    gc.collect()
    gc.freeze()
    log.debug("%d objects frozen out of garbage collection", gc.get_freeze_count())


async def run_server(config: ServerConfig, *, on_started: object = None) -> None:
    """Run until SIGTERM or SIGINT, then shut down gracefully."""
    server = Server(config)
    await server.start()
    freeze_startup_objects()
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(signum, stop.set)
    try:
        if callable(on_started):
            on_started(server)
        await stop.wait()
    finally:
        for signum in (signal.SIGTERM, signal.SIGINT):
            with contextlib.suppress(NotImplementedError, RuntimeError):
                loop.remove_signal_handler(signum)
        await server.stop()
