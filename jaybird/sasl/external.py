"""EXTERNAL (RFC 4422 Appendix A) as XMPP uses it with certificates (XEP-0178, RFC 6120 §6.4.2).

The driver verifies the peer's certificate (and for s2s its domain) before this mechanism runs, and
constructs the server side with the identities it verified, preferred first (XEP-0178: the one matching
the stream's addressing). An empty response means "use the identity the certificate gives".
"""

from __future__ import annotations

from collections.abc import Sequence

from jaybird.errors import AuthenticationError, LocalProtocolError, SASLCondition
from jaybird.sasl.mechanism import Challenge, Credentials, ServerStep, Success

__all__ = ["ClientExternal", "ServerExternal"]

_C = SASLCondition


class ClientExternal:
    """``authzid``: the identity to act as (for s2s, our domain) or None to let the certificate decide."""

    name = "EXTERNAL"

    def __init__(self, authzid: str | None = None) -> None:
        self._message = (authzid or "").encode()
        self._sent = False

    def initial_response(self) -> bytes | None:
        # Always present, possibly empty: the stream machine writes an empty one as "=" (RFC 6120 §6.4.2).
        if self._sent:
            raise LocalProtocolError("the initial response was already sent")
        self._sent = True
        return self._message

    def challenge(self, data: bytes) -> bytes:
        if not self._sent and not data:
            self._sent = True
            return self._message
        raise AuthenticationError(_C.MALFORMED_REQUEST, "EXTERNAL takes no challenge")

    def success(self, data: bytes | None) -> None:
        """Nothing to verify: TLS already authenticated the server."""


class ServerExternal:
    name = "EXTERNAL"

    def __init__(self, verified_identities: Sequence[str]) -> None:
        self._identities = tuple(verified_identities)
        self._started = False
        self._done = False

    def start(self, initial: bytes | None) -> ServerStep:
        if self._started:
            raise LocalProtocolError("EXTERNAL was already started")
        self._started = True
        if initial is None:
            return Challenge(b"")
        return self._authorize(initial)

    def respond(self, data: bytes) -> ServerStep:
        if not self._started or self._done:
            raise LocalProtocolError("EXTERNAL is not waiting for a response")
        return self._authorize(data)

    def provide(self, creds: Credentials | None) -> ServerStep:
        raise LocalProtocolError("EXTERNAL never asks for credentials")

    def _authorize(self, data: bytes) -> ServerStep:
        self._done = True
        if not self._identities:
            raise AuthenticationError(_C.NOT_AUTHORIZED, "no verified identity")
        if not data:
            return Success(self._identities[0], None, None)
        try:
            authzid = data.decode("utf-8")
        except UnicodeDecodeError:
            raise AuthenticationError(_C.MALFORMED_REQUEST, "authzid is not UTF-8") from None
        # Domains and case-mapped localparts compare without case; the verified spelling is returned.
        for identity in self._identities:
            if identity.lower() == authzid.lower():
                return Success(identity, authzid, None)
        raise AuthenticationError(_C.INVALID_AUTHZID, "the certificate does not prove this identity")
