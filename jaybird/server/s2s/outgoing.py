"""Outgoing federation: one :class:`RemoteDomain` per remote domain queues stanzas, opens one stream, and
authenticates each of our domains on it (SASL EXTERNAL for the first when the peer trusts our certificate,
dialback otherwise and for every further domain: XEP-0220 §2.5 piggy-backing).

Failures bounce what was queued (RFC 6120 §10.4.3): ``remote-server-not-found`` when DNS or every connection
attempt failed or the peer refused us, ``remote-server-timeout`` when it did not finish in time.
"""

from __future__ import annotations

import asyncio
import collections
import logging
import ssl
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Final

from jaybird.errors import StanzaErrorCondition, StreamErrorCondition
from jaybird.jid import JID
from jaybird.server.s2s.link import Link
from jaybird.server.s2s.policy import certificate_valid_for, policy_for, route_override
from jaybird.stanza import Iq, Message, Presence
from jaybird.stream import events as ev
from jaybird.stream.config import InitiatingConfig
from jaybird.stream.feature import StreamFeature
from jaybird.stream.features.dialback import DIALBACK_NAME, DialbackRequest, VerifyRequest
from jaybird.stream.features.s2s import bidi_feature, s2s_features, sasl_external_feature
from jaybird.stream.machine import XMPPStream
from jaybird.stream.state import StreamKind
from jaybird.transport.dns import Target, resolve_xmpp
from jaybird.transport.errors import ServiceNotAvailableError
from jaybird.transport.pipe import BytePipe
from jaybird.transport.tls import ALPN_SERVER

if TYPE_CHECKING:
    from jaybird.server.s2s.service import S2SService

__all__ = ["OutgoingLink", "RemoteDomain", "open_link"]

log = logging.getLogger("jaybird.server.s2s")

RoutedStanza = Message | Presence | Iq
_SC = StanzaErrorCondition
_HAPPY_EYEBALLS_DELAY: Final = 0.25


class _CertificateRefused(Exception):
    pass


class OutgoingLink(Link):
    """The initiating side of one stream from ``local`` to ``remote``."""

    def __init__(
        self,
        service: S2SService,
        remote: str,
        local: str,
        stream: XMPPStream,
        pipe: BytePipe,
        *,
        verify_chain: bool,
        on_event: Callable[[OutgoingLink, ev.Event], Awaitable[None]],
    ) -> None:
        config = service.config.s2s
        super().__init__(
            stream,
            pipe,
            name=f"s2s out {local}->{remote}",
            negotiation_timeout=config.negotiation_timeout_s,
            idle_timeout=config.idle_timeout_s,
        )
        self.service = service
        self.remote = remote
        self.local = local
        self.verify_chain = verify_chain
        self.cert_refused = False
        self.cert_valid = False
        self.authed: set[str] = set()
        self.asked: set[str] = set()
        self._on_event = on_event

    def check_certificate(self) -> None:
        self.cert_valid = certificate_valid_for(self.ssl_object, self.remote, chain_verified=self.verify_chain)
        if policy_for(self.service.config.s2s, self.remote).require_valid_certificate and not self.cert_valid:
            self.reason = f"{self.remote} has no certificate valid for its domain"
            self.cert_refused = True
            log.warning("%s: %s; refused by policy", self.name, self.reason)
            self.close()

    async def handle(self, event: ev.Event) -> None:
        if isinstance(event, ev.TLSRequested):
            try:
                await self.start_tls(self.service.outgoing_context(self.local, verify=self.verify_chain), self.remote)
            except ssl.SSLCertVerificationError as exc:
                self.reason = f"certificate refused: {exc.verify_message}"
                self.cert_refused = True
                self.close()
                return
            except (ssl.SSLError, ConnectionError, OSError, TimeoutError) as exc:
                self.reason = f"TLS handshake failed: {exc!r}"
                self.close()
                return
            self.check_certificate()
            if not self.cert_refused:
                await self.answer(self.stream.tls_established(None))
            return
        if isinstance(event, ev.Ready) and self.stream.identity is not None:
            self.authed.add(self.local)
        elif isinstance(event, ev.Authenticated):
            log.info("%s: accepted by %s (%s)", self.name, event.identity, event.mechanism)
        elif isinstance(event, ev.DialbackResult):
            log.info(
                "%s: dialback for %s -> %s %s",
                self.name,
                event.local,
                event.remote,
                "accepted" if event.valid else "refused",
            )
            if event.valid:
                self.authed.add(event.local)
        elif isinstance(event, ev.StanzaReceived):
            await self.service.route_in(event.element, self.name)
        await self._on_event(self, event)

    def ask(self, local: str) -> None:
        """Ask to send as ``local`` too (dialback piggy-backing, XEP-0220 §2.5)."""
        if local in self.asked or local in self.authed or not self.usable:
            return
        self.asked.add(local)
        try:
            events = self.stream.answer_feature(DIALBACK_NAME, DialbackRequest(local, self.remote))
        except ev.StreamViolation as exc:
            self.error = exc.error
            self.close()
            return
        assert not events
        self.flush()


async def _targets(service: S2SService, remote: str) -> list[Target]:
    override = route_override(service.config.s2s, remote)
    if override is not None:
        return override
    return await resolve_xmpp(remote, service="server", overrides=service.overrides)


async def open_link(
    service: S2SService,
    remote: str,
    local: str,
    features: tuple[StreamFeature, ...],
    *,
    verify_chain: bool,
    on_event: Callable[[OutgoingLink, ev.Event], Awaitable[None]],
) -> OutgoingLink:
    """Connect to ``remote`` (configured route, else SRV with the 5269 fallback) and wrap the socket in a link;
    raises OSError (with every attempt's reason) when no target accepts."""
    config = service.config.s2s
    policy = policy_for(config, remote)
    errors: list[str] = []
    try:
        targets = await _targets(service, remote)
    except ServiceNotAvailableError as exc:
        raise OSError(str(exc)) from exc
    for target in targets:
        context = None
        if target.direct_tls:
            context = service.outgoing_context(local, verify=verify_chain)
            context.set_alpn_protocols([ALPN_SERVER])
        try:
            async with asyncio.timeout(config.connect_timeout_s):
                _, pipe = await asyncio.get_running_loop().create_connection(
                    BytePipe, target.host, target.port, happy_eyeballs_delay=_HAPPY_EYEBALLS_DELAY
                )
                if context is not None:  # XEP-0368 direct TLS: the certificate is checked against the domain
                    await pipe.start_tls(
                        context, server_side=False, server_hostname=remote, timeout=config.connect_timeout_s
                    )
        except ssl.SSLCertVerificationError as exc:
            raise _CertificateRefused(str(exc)) from exc
        except (OSError, TimeoutError) as exc:
            errors.append(f"{target.host}:{target.port}: {exc or type(exc).__name__}")
            continue
        initiating = InitiatingConfig(
            JID(local),
            to=remote,
            kind=StreamKind.S2S,
            require_tls=policy.require_tls,
            already_secure=context is not None,
        )
        stream = XMPPStream(initiating, features, max_stanza_bytes=service.config.limits.max_stanza_bytes)
        link = OutgoingLink(service, remote, local, stream, pipe, verify_chain=verify_chain, on_event=on_event)
        if context is not None:
            link.check_certificate()
        link.flush()
        return link
    raise OSError("; ".join(errors) or f"no address for {remote}")


class RemoteDomain:
    """Everything we send to one remote domain: a bounded queue and at most one outgoing stream."""

    def __init__(self, service: S2SService, remote: str) -> None:
        self.service = service
        self.remote = remote
        self._queue: collections.deque[RoutedStanza] = collections.deque()
        self.link: OutgoingLink | None = None
        self._task: asyncio.Task[None] | None = None

    @property
    def queued(self) -> int:
        return len(self._queue)

    async def send(self, stanza: RoutedStanza) -> None:
        sender = stanza.from_
        local = sender.domain if sender is not None else ""
        link = self.link
        if link is not None and link.usable and local in link.authed and not self._queue:
            link.send(stanza.element)
            return
        if len(self._queue) >= self.service.config.s2s.max_queued_stanzas:
            await self.service.bounce(stanza, _SC.RESOURCE_CONSTRAINT, f"too many stanzas waiting for {self.remote}")
            return
        self._queue.append(stanza)
        if link is not None and link.usable:
            link.ask(local)
            self._drain(link)
        elif self._task is None:
            self._task = self.service.spawn(self._connect(local), f"s2s connect {self.remote}")

    def _drain(self, link: OutgoingLink) -> None:
        """Send what is queued for authenticated domains, in order per domain; the rest waits."""
        kept: collections.deque[RoutedStanza] = collections.deque()
        while self._queue:
            stanza = self._queue.popleft()
            sender = stanza.from_
            local = sender.domain if sender is not None else ""
            if local in link.authed and link.usable:
                link.send(stanza.element)
            else:
                kept.append(stanza)
                link.ask(local)
        self._queue = kept

    async def _on_event(self, link: OutgoingLink, event: ev.Event) -> None:
        if isinstance(event, ev.Ready | ev.DialbackResult):
            if isinstance(event, ev.DialbackResult) and not event.valid:
                await self._bounce_for(event.local, _SC.REMOTE_SERVER_NOT_FOUND, "dialback refused")
            self._drain(link)

    async def _bounce_for(self, local: str, condition: StanzaErrorCondition, text: str) -> None:
        kept: collections.deque[RoutedStanza] = collections.deque()
        while self._queue:
            stanza = self._queue.popleft()
            sender = stanza.from_
            if sender is not None and sender.domain == local:
                await self.service.bounce(stanza, condition, text)
            else:
                kept.append(stanza)
        self._queue = kept

    async def _connect(self, local: str) -> None:
        service = self.service
        policy = policy_for(service.config.s2s, self.remote)
        condition = _SC.REMOTE_SERVER_NOT_FOUND
        reason = "not connected"
        try:
            for verify_chain in (True, False):
                if not verify_chain and (policy.require_valid_certificate or not policy.allow_dialback):
                    break
                features = s2s_features(
                    dialback=service.dialback(authenticate=True) if policy.allow_dialback else None,
                    external=sasl_external_feature(use=True),
                    bidi=bidi_feature(offer=False, use=False),
                )
                try:
                    link = await open_link(
                        service, self.remote, local, features, verify_chain=verify_chain, on_event=self._on_event
                    )
                except _CertificateRefused as exc:
                    reason = f"certificate refused: {exc}"
                    continue
                except OSError as exc:
                    reason = f"cannot connect: {exc}"
                    break
                self.link = link
                await link.run()
                self.link = None
                reason = link.reason or "stream closed"
                if link.error is not None and link.error.condition is StreamErrorCondition.CONNECTION_TIMEOUT:
                    condition = _SC.REMOTE_SERVER_TIMEOUT
                if not link.cert_refused or link.authed:
                    break
        finally:
            self._task = None
            self.link = None
            if self._queue:
                log.warning("s2s %s: %d stanza(s) undeliverable: %s", self.remote, len(self._queue), reason)
            while self._queue:
                await service.bounce(self._queue.popleft(), condition, f"{self.remote}: {reason}")

    def close(self) -> None:
        if self.link is not None:
            self.link.close()


async def verify_key(service: S2SService, request: VerifyRequest) -> bool:
    """Ask the authoritative server of ``request.originating`` whether it made ``request.key`` (XEP-0220
    §2.1.2), on a stream of its own; False on any failure or after the negotiation timeout."""
    verdict: asyncio.Future[bool] = asyncio.get_running_loop().create_future()

    async def on_event(link: OutgoingLink, event: ev.Event) -> None:
        if isinstance(event, ev.DialbackVerified) and not verdict.done():
            verdict.set_result(event.valid)
            link.close()

    features = s2s_features(dialback=service.dialback(authenticate=False, verify=(request,)))
    try:
        async with asyncio.timeout(service.config.s2s.negotiation_timeout_s):
            link = await open_link(
                service, request.originating, request.receiving, features, verify_chain=False, on_event=on_event
            )
            await link.run()
    except (OSError, TimeoutError, _CertificateRefused) as exc:
        log.info("dialback: cannot reach %s to verify a key: %s", request.originating, exc)
    return verdict.result() if verdict.done() else False
