"""The federation service of one server: the s2s listener, the outgoing domains, the RemoteStanza handler."""

from __future__ import annotations

import asyncio
import logging
import secrets
import ssl
from collections.abc import Coroutine, Mapping, Sequence
from typing import Any

from jaybird.errors import StanzaErrorCondition, StreamError
from jaybird.jid import JIDError
from jaybird.server.config import ServerConfig
from jaybird.server.events import RemoteStanza
from jaybird.server.hooks import Registration
from jaybird.server.host import VirtualHost
from jaybird.server.router import Router
from jaybird.server.s2s.incoming import IncomingLink
from jaybird.server.s2s.link import Link
from jaybird.server.s2s.outgoing import RemoteDomain, verify_key
from jaybird.server.s2s.policy import incoming_context, outgoing_context, policy_for
from jaybird.stanza import Iq, Message, Presence, wrap
from jaybird.stream.feature import StreamFeature
from jaybird.stream.features.dialback import VerifyRequest, dialback_feature
from jaybird.transport.dns import Target
from jaybird.transport.pipe import BytePipe
from jaybird.xml.element import Element

__all__ = ["S2SService"]

log = logging.getLogger("jaybird.server.s2s")

RoutedStanza = Message | Presence | Iq
_SC = StanzaErrorCondition


class S2SService:
    """Started by the server core when ``listeners.s2s.enabled``; see docs/federation.md."""

    def __init__(
        self,
        config: ServerConfig,
        hosts: Mapping[str, VirtualHost],
        router: Router,
        starttls_context: ssl.SSLContext,
        *,
        overrides: Mapping[str, Sequence[Target]] | None = None,
    ) -> None:
        self.config = config
        self.hosts = hosts
        self.router = router
        self.overrides = overrides
        self.local_domains = tuple(hosts)
        self._secret = config.s2s.dialback_secret or secrets.token_hex(32)
        first = config.hosts[0]
        paths = config.certificate_for(first)
        self.incoming_context = incoming_context(config.s2s, starttls_context, paths.cert_file, paths.key_file)
        sni = starttls_context.sni_callback
        if sni is not None:
            self.incoming_context.sni_callback = self._sni
        self._host_contexts: dict[str, ssl.SSLContext] = {}
        for host in config.hosts:
            host_paths = config.certificate_for(host)
            self._host_contexts[host.domain] = incoming_context(
                config.s2s, starttls_context, host_paths.cert_file, host_paths.key_file
            )
        self.remotes: dict[str, RemoteDomain] = {}
        self.incoming: set[IncomingLink] = set()
        self._tasks: set[asyncio.Task[Any]] = set()
        self._servers: list[asyncio.Server] = []
        self._registrations: list[Registration] = []

    def _sni(self, ssl_object: ssl.SSLObject, server_name: str | None, _context: ssl.SSLContext) -> None:
        chosen = self._host_contexts.get((server_name or "").lower().rstrip("."))
        if chosen is not None:
            ssl_object.context = chosen

    # -- lifecycle --------------------------------------------------------------------------------------------------
    async def start(self) -> None:
        for host in self.hosts.values():
            self._registrations.append(host.hooks.on(RemoteStanza, self._on_remote_stanza))
        listener = self.config.listeners.s2s
        for interface in listener.interfaces:
            try:
                server = await asyncio.get_running_loop().create_server(
                    lambda: BytePipe(self._accepted), interface, listener.port, reuse_address=True
                )
            except OSError as exc:
                if interface == "::" and len(listener.interfaces) > 1:
                    log.warning("not listening for servers on %s: %s", interface, exc.strerror)
                    continue
                await self.stop()
                raise OSError(exc.errno, f"cannot listen on {interface} port {listener.port}: {exc.strerror}") from exc
            self._servers.append(server)
        for address in self.addresses:
            log.info("listening for servers on %s port %d", *address)

    @property
    def addresses(self) -> list[tuple[str, int]]:
        return [
            (str(sock.getsockname()[0]), int(sock.getsockname()[1]))
            for server in self._servers
            for sock in server.sockets
        ]

    async def stop(self, error: StreamError | None = None, timeout: float = 5.0) -> None:
        for registration in self._registrations:
            registration.cancel()
        self._registrations.clear()
        for server in self._servers:
            server.close()
            for sock in server.sockets:
                sock.close()
        self._servers.clear()
        for link in list(self.incoming):
            link.close(error)
        for remote in self.remotes.values():
            remote.close()
        pending = list(self._tasks)
        if pending:
            _done, still = await asyncio.wait(pending, timeout=timeout)
            for task in still:
                task.cancel()
            if still:
                await asyncio.wait(still, timeout=1.0)

    def spawn(self, coroutine: Coroutine[Any, Any, Any], name: str) -> asyncio.Task[Any]:
        task = asyncio.get_running_loop().create_task(coroutine, name=name)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    # -- the pieces links ask for -------------------------------------------------------------------------------------
    def dialback(self, *, authenticate: bool, verify: tuple[VerifyRequest, ...] = ()) -> StreamFeature:
        return dialback_feature(
            secret=self._secret, local_domains=self.local_domains, authenticate=authenticate, verify=verify
        )

    def outgoing_context(self, local: str, *, verify: bool) -> ssl.SSLContext:
        host = next((h for h in self.config.hosts if h.domain == local), self.config.hosts[0])
        paths = self.config.certificate_for(host)
        return outgoing_context(self.config.s2s, paths.cert_file, paths.key_file, verify=verify)

    async def verify_key(self, request: VerifyRequest) -> bool:
        return await verify_key(self, request)

    async def route_in(self, element: Element, name: str) -> None:
        """A stanza a remote server sent (its addresses already checked by the stream machine)."""
        try:
            stanza = wrap(element)
            await self.router.route(stanza, None)
        except (ValueError, JIDError) as exc:
            log.info("%s: unroutable stanza: %s", name, exc)
        except Exception:
            log.exception("%s: routing a stanza failed", name)

    async def bounce(self, stanza: RoutedStanza, condition: StanzaErrorCondition, text: str | None = None) -> None:
        await self.router.bounce(stanza, condition, text)

    # -- RemoteStanza ----------------------------------------------------------------------------------------------
    async def _on_remote_stanza(self, event: RemoteStanza) -> bool:
        remote = event.to.domain
        stanza = event.stanza
        sender = stanza.from_
        if sender is None or sender.domain not in self.hosts:
            return False  # not ours to send: the core's default bounce applies
        if policy_for(self.config.s2s, remote).blocked:
            await self.bounce(stanza, _SC.REMOTE_SERVER_NOT_FOUND, f"federation with {remote} is not allowed")
            return True
        domain = self.remotes.get(remote)
        if domain is None:
            domain = self.remotes[remote] = RemoteDomain(self, remote)
        await domain.send(stanza)
        return True

    # -- incoming --------------------------------------------------------------------------------------------------
    def _accepted(self, pipe: BytePipe) -> None:
        self.spawn(self._serve(pipe), name=f"s2s in {pipe.peer_address}")

    async def _serve(self, pipe: BytePipe) -> None:
        link = IncomingLink(self, pipe)
        log.info("%s: connection", link.name)
        self.incoming.add(link)
        try:
            await link.run()
        finally:
            self.incoming.discard(link)

    def links(self) -> list[Link]:
        found: list[Link] = list(self.incoming)
        found += [remote.link for remote in self.remotes.values() if remote.link is not None]
        return found
