"""Typed, frozen configuration of the stream machine, one class per role."""

from __future__ import annotations

import secrets
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from jaybird.jid import JID
from jaybird.sasl import ChannelBinding, ClientMechanism
from jaybird.stream.state import StreamKind

__all__ = ["InitiatingConfig", "MechanismFactory", "ReceivingConfig", "random_stream_id"]


def random_stream_id() -> str:
    """128 random bits (RFC 6120 §4.7.3 asks for unpredictable stream ids)."""
    return secrets.token_urlsafe(16)


#: Builds the SASL mechanism candidates once the channel binding (if any) is known.
MechanismFactory = Callable[[ChannelBinding | None], Sequence[ClientMechanism]]


@dataclass(frozen=True, slots=True)
class InitiatingConfig:
    """What the initiating entity (a client, or a server opening s2s) wants from the stream."""

    #: Our address: ``user@domain`` (a resource here is the one asked for when binding unless ``resource``);
    #: a component's own domain on a component stream (XEP-0114).
    jid: JID
    #: The domain we connect to (the header's ``to``); the JID's domain when None.
    to: str | None = None
    kind: StreamKind = StreamKind.C2S
    #: The SASL password; on a component stream, the secret shared with the server (XEP-0114 §3).
    password: str | None = field(default=None, repr=False)
    authzid: str | None = None
    #: Overrides the mechanisms built from ``password`` (strongest first).
    mechanisms: MechanismFactory | None = None
    #: The resource to ask for; None lets the server choose (RFC 6120 §7.6).
    resource: str | None = None
    #: Refuse to authenticate over a stream that is not encrypted.
    require_tls: bool = True
    #: Whether the driver can run a TLS handshake when asked (STARTTLS).
    tls_available: bool = True
    #: The connection is already TLS (XEP-0368 direct TLS): STARTTLS is neither needed nor offered.
    already_secure: bool = False
    #: PLAIN sends the password itself: only over TLS unless explicitly allowed.
    allow_plain: bool = False
    lang: str | None = "en"

    @property
    def domain(self) -> str:
        return self.to if self.to is not None else self.jid.domain


@dataclass(frozen=True, slots=True)
class ReceivingConfig:
    """What the receiving entity (a server) offers and requires."""

    domains: frozenset[str]
    kind: StreamKind = StreamKind.C2S
    #: Offer STARTTLS (the driver must then be able to run a TLS handshake).
    tls_offered: bool = True
    #: Advertise STARTTLS with ``<required/>`` and nothing else before it (RFC 6120 §5.3.1).
    tls_required: bool = True
    #: The connection is already TLS (XEP-0368 direct TLS).
    already_secure: bool = False
    #: Mechanisms offered over a secure stream / over a plain one. ``-PLUS`` variants are offered only when
    #: the driver gave a channel binding.
    mechanisms_secure: tuple[str, ...] = (
        "SCRAM-SHA-512-PLUS",
        "SCRAM-SHA-256-PLUS",
        "SCRAM-SHA-1-PLUS",
        "SCRAM-SHA-512",
        "SCRAM-SHA-256",
        "SCRAM-SHA-1",
        "PLAIN",
    )
    mechanisms_plain: tuple[str, ...] = ("SCRAM-SHA-512", "SCRAM-SHA-256", "SCRAM-SHA-1")
    #: Failed SASL attempts tolerated on one stream; RFC 6120 §6.4.5 asks for 2 to 5 retries.
    max_auth_attempts: int = 3
    #: Advertise the legacy ``<session/>`` feature, marked ``<optional/>`` (draft-cridland-xmpp-session).
    legacy_session: bool = True
    #: Redirect every new stream to this host (``see-other-host``, RFC 6120 §4.9.3.19).
    see_other_host: str | None = None
    default_lang: str = "en"
    stream_id: Callable[[], str] = field(default=random_stream_id)
    #: Component streams (XEP-0114): the shared secret of a component domain, None when it has none. ``domains``
    #: are then the component domains accepted; a callable keeps the secrets out of reprs and lets the
    #: server look them up in its own configuration.
    component_secret: Callable[[str], str | None] | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        if not self.domains:
            raise ValueError("a receiving stream needs at least one served domain")
        if self.max_auth_attempts < 1:
            raise ValueError("max_auth_attempts must be at least 1")
        if self.tls_required and not (self.tls_offered or self.already_secure):
            raise ValueError("tls_required needs tls_offered (or an already secure connection)")
