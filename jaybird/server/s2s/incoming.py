"""Incoming federation: the receiving side of one stream another server opened to us.

STARTTLS as policy demands; SASL EXTERNAL offered when the peer's certificate (checked against the configured
CAs during the handshake) is valid for the domain its header names; dialback requests verified by connecting
back to the authoritative server. Stanzas are routed once the machine's check (RFC 6120 §4.9.3.9) passed.
"""

from __future__ import annotations

import logging
import ssl
from typing import TYPE_CHECKING

from jaybird.errors import StreamError, StreamErrorCondition
from jaybird.server.s2s.link import Link
from jaybird.server.s2s.policy import certificate_valid_for, policy_for
from jaybird.stream import events as ev
from jaybird.stream.config import ReceivingConfig
from jaybird.stream.features.dialback import DIALBACK_NAME, DialbackVerdict, VerifyRequest
from jaybird.stream.features.s2s import bidi_feature, s2s_features, sasl_external_feature
from jaybird.stream.machine import XMPPStream
from jaybird.stream.state import StreamKind
from jaybird.transport.pipe import BytePipe

if TYPE_CHECKING:
    from jaybird.server.s2s.service import S2SService

__all__ = ["IncomingLink"]

log = logging.getLogger("jaybird.server.s2s")
_C = StreamErrorCondition


class IncomingLink(Link):
    def __init__(self, service: S2SService, pipe: BytePipe) -> None:
        config = service.config
        peer = pipe.peer_address
        self.peer = f"{peer[0]}:{peer[1]}" if peer else "unknown"
        self.service = service
        self._chain_verified = False
        self.bidi = False
        receiving = ReceivingConfig(
            domains=frozenset(service.local_domains),
            kind=StreamKind.S2S,
            tls_offered=True,
            tls_required=config.s2s.require_tls,
            legacy_session=False,
        )
        features = s2s_features(
            dialback=service.dialback(authenticate=False),
            external=sasl_external_feature(certificate_valid=self._certificate_valid),
            bidi=bidi_feature(offer=True),
        )
        stream = XMPPStream(receiving, features, max_stanza_bytes=config.limits.max_stanza_bytes)
        super().__init__(
            stream,
            pipe,
            name=f"s2s in {self.peer}",
            negotiation_timeout=config.s2s.negotiation_timeout_s,
            idle_timeout=config.s2s.idle_timeout_s,
        )

    @property
    def secure(self) -> bool:
        return self.ssl_object is not None

    def _certificate_valid(self, domain: str) -> bool:
        if policy_for(self.service.config.s2s, domain).blocked:
            return False
        return certificate_valid_for(self.ssl_object, domain, chain_verified=self._chain_verified)

    async def handle(self, event: ev.Event) -> None:
        if isinstance(event, ev.StreamOpened):
            if event.from_ and policy_for(self.service.config.s2s, event.from_).blocked:
                log.warning("%s: %s is blocked", self.name, event.from_)
                self.close(StreamError(_C.POLICY_VIOLATION, "federation with this domain is not allowed"))
        elif isinstance(event, ev.TLSRequested):
            try:
                await self.start_tls(self.service.incoming_context, None)
            except (ssl.SSLError, ConnectionError, OSError, TimeoutError) as exc:
                self.reason = f"TLS handshake failed: {exc!r}"
                log.warning("%s: %s", self.name, self.reason)
                self.close()
                return
            ssl_object = self.ssl_object
            # With CERT_OPTIONAL, a certificate that is there at all passed OpenSSL's chain check.
            self._chain_verified = bool(ssl_object is not None and ssl_object.getpeercert())
            await self.answer(self.stream.tls_established(None))
        elif isinstance(event, ev.DialbackRequested):
            self.service.spawn(self._verify(event), f"dialback verify {event.originating}")
        elif isinstance(event, ev.Authenticated):
            log.info("%s: authenticated as %s (%s)", self.name, event.identity, event.mechanism)
            self.name = f"s2s in {event.identity}"
        elif isinstance(event, ev.BidiRequested):
            self.bidi = True
        elif isinstance(event, ev.StanzaReceived):
            await self.service.route_in(event.element, self.name)

    async def _verify(self, event: ev.DialbackRequested) -> None:
        valid = await self._judge(event)
        log.info(
            "%s: dialback for %s -> %s %s",
            self.name,
            event.originating,
            event.receiving,
            "valid" if valid else "refused",
        )
        if valid and self.name.startswith(f"s2s in {self.peer}"):
            self.name = f"s2s in {event.originating}"
        try:
            events = self.stream.answer_feature(
                DIALBACK_NAME, DialbackVerdict(event.originating, event.receiving, valid)
            )
        except ev.StreamViolation as exc:
            self.error = exc.error
            self.reason = f"stream error {exc.error.condition.value}"
            log.warning("%s: %s", self.name, exc.error)
            self.close()
            return
        await self.answer(events)
        self.flush()

    async def _judge(self, event: ev.DialbackRequested) -> bool:
        policy = policy_for(self.service.config.s2s, event.originating)
        if policy.blocked or (policy.require_tls and not self.secure):
            return False
        if self._certificate_valid(event.originating):
            return True  # the certificate already proves the domain; no need to ask it
        if policy.require_valid_certificate or not policy.allow_dialback:
            return False
        request = VerifyRequest(event.receiving, event.originating, event.stream_id, event.key)
        return await self.service.verify_key(request)
