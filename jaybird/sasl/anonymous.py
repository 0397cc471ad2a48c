"""ANONYMOUS (RFC 4505): the client may send a trace; the server invents a throwaway username."""

from __future__ import annotations

import secrets
from typing import Final

from jaybird.errors import AuthenticationError, LocalProtocolError, SASLCondition
from jaybird.sasl.mechanism import Challenge, Credentials, ServerStep, Success

__all__ = ["ClientAnonymous", "ServerAnonymous"]

_C = SASLCondition
_MAX_TRACE: Final = 255  # RFC 4505 §2: at most 255 characters


class ClientAnonymous:
    name = "ANONYMOUS"

    def __init__(self, trace: str | None = None) -> None:
        if trace is not None and len(trace) > _MAX_TRACE:
            raise ValueError("an ANONYMOUS trace is at most 255 characters")
        self._message = (trace or "").encode()
        self._sent = False

    def initial_response(self) -> bytes | None:
        if self._sent:
            raise LocalProtocolError("the initial response was already sent")
        self._sent = True
        return self._message

    def challenge(self, data: bytes) -> bytes:
        if not self._sent and not data:
            self._sent = True
            return self._message
        raise AuthenticationError(_C.MALFORMED_REQUEST, "ANONYMOUS takes no challenge")

    def success(self, data: bytes | None) -> None:
        """Nothing to verify."""


class ServerAnonymous:
    name = "ANONYMOUS"

    def __init__(self) -> None:
        self._started = False
        self._done = False
        #: The trace the client sent, for the server's log (RFC 4505 §3), once known.
        self.trace: str | None = None

    def start(self, initial: bytes | None) -> ServerStep:
        if self._started:
            raise LocalProtocolError("ANONYMOUS was already started")
        self._started = True
        if initial is None:
            return Challenge(b"")
        return self._accept(initial)

    def respond(self, data: bytes) -> ServerStep:
        if not self._started or self._done:
            raise LocalProtocolError("ANONYMOUS is not waiting for a response")
        return self._accept(data)

    def provide(self, creds: Credentials | None) -> ServerStep:
        raise LocalProtocolError("ANONYMOUS never asks for credentials")

    def _accept(self, data: bytes) -> ServerStep:
        self._done = True
        try:
            trace = data.decode("utf-8")
        except UnicodeDecodeError:
            raise AuthenticationError(_C.MALFORMED_REQUEST, "trace is not UTF-8") from None
        if len(trace) > _MAX_TRACE:
            raise AuthenticationError(_C.MALFORMED_REQUEST, "trace longer than 255 characters")
        self.trace = trace or None
        # 128 random bits, lowercase hex: a valid UsernameCaseMapped localpart nobody can guess.
        return Success(secrets.token_hex(16), None, None)
