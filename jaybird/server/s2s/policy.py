"""Per-domain federation policy and the TLS pieces it needs: contexts, and what a peer's certificate proves."""

from __future__ import annotations

import ssl
from dataclasses import dataclass
from pathlib import Path

from jaybird.server.config import S2SConfig
from jaybird.transport.dns import DEFAULT_PORTS, Target
from jaybird.transport.tls import client_context, identities_from_certificate

__all__ = ["Policy", "certificate_valid_for", "incoming_context", "outgoing_context", "policy_for", "route_override"]


@dataclass(frozen=True, slots=True)
class Policy:
    """What we demand of one remote domain (``[s2s]`` defaults with its ``[[s2s.peers]]`` overrides)."""

    require_tls: bool
    require_valid_certificate: bool
    allow_dialback: bool
    blocked: bool


def policy_for(config: S2SConfig, domain: str) -> Policy:
    peer = config.peer(domain)

    def pick(value: bool | None, default: bool) -> bool:
        return default if value is None else value

    if peer is None:
        return Policy(config.require_tls, config.require_valid_certificate, config.allow_dialback, False)
    return Policy(
        pick(peer.require_tls, config.require_tls),
        pick(peer.require_valid_certificate, config.require_valid_certificate),
        pick(peer.allow_dialback, config.allow_dialback),
        peer.blocked,
    )


def route_override(config: S2SConfig, domain: str) -> list[Target] | None:
    """Where an operator (or a test) said to reach ``domain``, skipping DNS."""
    peer = config.peer(domain)
    if peer is None or (peer.host is None and peer.port is None):
        return None
    return [Target(peer.host or domain, peer.port or DEFAULT_PORTS["server"], False)]


def outgoing_context(config: S2SConfig, cert_file: Path, key_file: Path, *, verify: bool) -> ssl.SSLContext:
    """The initiating side's context: our certificate (for the peer's SASL EXTERNAL) and, when ``verify``,
    a chain check against ``ca_file`` or the system CAs. The name is checked by us, not OpenSSL: an XMPP
    certificate may name the domain in an XmppAddr or SRV-ID rather than a DNS-ID (RFC 6120 §13.7.1.2)."""
    context = client_context(ca_file=config.ca_file)
    context.check_hostname = False
    if not verify:
        context.verify_mode = ssl.CERT_NONE
    context.load_cert_chain(cert_file, key_file)
    return context


def incoming_context(config: S2SConfig, base: ssl.SSLContext, cert_file: Path, key_file: Path) -> ssl.SSLContext:
    """A server context like ``base`` that also asks the connecting server for its certificate. Python's ``ssl``
    has no verification callback, so a certificate the CAs do not trust fails the handshake."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = base.minimum_version
    context.options = base.options
    context.load_cert_chain(cert_file, key_file)
    if config.request_client_certificates:
        context.verify_mode = ssl.CERT_OPTIONAL
        if config.ca_file is not None:
            context.load_verify_locations(cafile=config.ca_file)
        else:
            context.load_default_certs(ssl.Purpose.CLIENT_AUTH)
    return context


def certificate_valid_for(ssl_object: ssl.SSLObject | None, domain: str, *, chain_verified: bool) -> bool:
    """Whether the peer's certificate (already chain-verified by OpenSSL when ``chain_verified``) names
    ``domain`` as an XMPP server (RFC 6125 §6, RFC 7712)."""
    if ssl_object is None or not chain_verified:
        return False
    der = ssl_object.getpeercert(binary_form=True)
    if not der:
        return False
    return identities_from_certificate(der).matches(domain, service="xmpp-server")
