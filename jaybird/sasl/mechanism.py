"""The values and protocols every SASL mechanism shares, on both sides.

Payloads are raw bytes: base64 (and the ``=`` of an empty response, RFC 6120 §6.4.2) belong to the stream
machine. A server mechanism never looks up an account itself: it returns :class:`NeedCredentials` and the
driver answers with :meth:`ServerMechanism.provide`, because storage is asynchronous and mechanisms are not.
Failures raise :class:`jaybird.errors.AuthenticationError` on both sides.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol, TypeAlias

from jaybird.sasl.credentials import ScramCredentials

__all__ = [
    "Challenge",
    "ChannelBinding",
    "ClientMechanism",
    "Credentials",
    "NeedCredentials",
    "ServerMechanism",
    "ServerStep",
    "Success",
]

#: Everything stored for one account: one :class:`ScramCredentials` per SCRAM hash (SHA-1, SHA-256, ...).
#: The mechanism picks the entry it needs; ``None`` or an empty sequence means "no such account".
Credentials: TypeAlias = Sequence[ScramCredentials]


@dataclass(frozen=True, slots=True)
class ChannelBinding:
    """Channel-binding data of the TLS session under the stream (RFC 5929, RFC 9266)."""

    type: str  # "tls-server-end-point", "tls-unique", ...
    data: bytes = field(repr=False)


@dataclass(frozen=True, slots=True)
class Challenge:
    """Send ``<challenge/>`` with these bytes and pass the peer's ``<response/>`` to ``respond``."""

    data: bytes


@dataclass(frozen=True, slots=True)
class NeedCredentials:
    """Look up the stored credentials of ``username`` (PRECIS-prepared) and pass them to ``provide``."""

    username: str


@dataclass(frozen=True, slots=True)
class Success:
    """Authentication succeeded: send ``<success/>`` carrying ``additional`` (if not None).

    ``username`` is the authenticated identity (a prepared localpart, or for EXTERNAL the verified identity);
    ``authzid`` is the identity the peer asked to act as, if any: the driver decides whether that is allowed
    and answers ``invalid-authzid`` otherwise.
    """

    username: str
    authzid: str | None = None
    additional: bytes | None = None


ServerStep: TypeAlias = Challenge | NeedCredentials | Success


class ClientMechanism(Protocol):
    """The initiating side of one mechanism; one object serves one authentication attempt."""

    name: str

    def initial_response(self) -> bytes | None:
        """The initial response to put in ``<auth/>``; ``None`` for none, ``b""`` for an empty one."""
        ...

    def challenge(self, data: bytes) -> bytes:
        """Answer a ``<challenge/>``; raises AuthenticationError when the challenge is bad."""
        ...

    def success(self, data: bytes | None) -> None:
        """Check the ``<success/>`` payload (SCRAM verifies the server signature); raises on mismatch."""
        ...


class ServerMechanism(Protocol):
    """The receiving side of one mechanism; one object serves one authentication attempt."""

    name: str

    def start(self, initial: bytes | None) -> ServerStep:
        """Handle ``<auth/>`` and its initial response (``None`` when there was none)."""
        ...

    def respond(self, data: bytes) -> ServerStep:
        """Handle a ``<response/>``."""
        ...

    def provide(self, creds: Credentials | None) -> ServerStep:
        """Answer a :class:`NeedCredentials` step; ``None`` when the account does not exist."""
        ...
