"""PLAIN (RFC 4616) on both sides. The server checks the password against stored SCRAM keys."""

from __future__ import annotations

import enum
import hmac
from collections.abc import Sequence
from typing import Final

from jaybird.errors import AuthenticationError, LocalProtocolError, SASLCondition
from jaybird.sasl.credentials import SCRAM_MECHANISMS, ScramCredentials, decoy_credentials, stored_key_for
from jaybird.sasl.mechanism import Challenge, Credentials, NeedCredentials, ServerStep, Success
from jaybird.sasl.prep import prepare_password, prepare_username

__all__ = ["ClientPlain", "ServerPlain"]

_C = SASLCondition
_MAX_FIELD: Final = 255  # RFC 4616 §2: each field is 1 to 255 octets


class ClientPlain:
    name = "PLAIN"

    def __init__(self, *, username: str, password: str, authzid: str | None = None) -> None:
        fields = (authzid or "", prepare_username(username), prepare_password(password))
        if any("\0" in f for f in fields):
            raise ValueError("PLAIN fields cannot contain NUL")
        self._message = "\0".join(fields).encode()
        self._sent = False

    def initial_response(self) -> bytes | None:
        if self._sent:
            raise LocalProtocolError("the initial response was already sent")
        self._sent = True
        return self._message

    def challenge(self, data: bytes) -> bytes:
        if not self._sent and not data:  # the server wanted no initial response (RFC 4422 §5)
            self._sent = True
            return self._message
        raise AuthenticationError(_C.MALFORMED_REQUEST, "PLAIN takes no challenge")

    def success(self, data: bytes | None) -> None:
        """PLAIN proves nothing about the server; there is nothing to check."""


class _State(enum.Enum):
    START = enum.auto()
    AWAIT_MESSAGE = enum.auto()
    AWAIT_CREDENTIALS = enum.auto()
    DONE = enum.auto()


class ServerPlain:
    name = "PLAIN"

    def __init__(self, *, scram: Sequence[str] = SCRAM_MECHANISMS, decoy_key: bytes | None = None) -> None:
        """``scram``: the SCRAM families accounts are stored with; an unknown account costs the strongest."""
        self._decoy_family = next((m for m in SCRAM_MECHANISMS if m in scram), "SCRAM-SHA-256")
        self._decoy_key = decoy_key
        self._state = _State.START
        self._authzid: str | None = None
        self._username = ""
        self._password = ""

    def start(self, initial: bytes | None) -> ServerStep:
        self._expect(_State.START)
        if initial is None:
            self._state = _State.AWAIT_MESSAGE
            return Challenge(b"")
        return self._message(initial)

    def respond(self, data: bytes) -> ServerStep:
        self._expect(_State.AWAIT_MESSAGE)
        return self._message(data)

    def provide(self, creds: Credentials | None) -> ServerStep:
        self._expect(_State.AWAIT_CREDENTIALS)
        self._state = _State.DONE
        chosen = _strongest(creds or ())
        if chosen is None:
            # Unknown account: derive against a decoy so the answer takes as long as a wrong password.
            chosen = decoy_credentials(self._username, self._decoy_family, self._decoy_key)
        try:
            derived = stored_key_for(chosen, self._password)
        except ValueError:
            derived = b""
        self._password = ""
        if not hmac.compare_digest(derived, chosen.stored_key):
            raise AuthenticationError(_C.NOT_AUTHORIZED)
        return Success(self._username, self._authzid, None)

    def _expect(self, state: _State) -> None:
        if self._state is not state:
            raise LocalProtocolError(f"PLAIN server is in state {self._state.name}, not {state.name}")

    def _message(self, data: bytes) -> ServerStep:
        self._state = _State.DONE
        fields = data.split(b"\0")
        if len(fields) != 3:
            raise AuthenticationError(_C.MALFORMED_REQUEST, "PLAIN needs authzid NUL authcid NUL passwd")
        _authzid, authcid, passwd = fields
        if not authcid or not passwd or any(len(f) > _MAX_FIELD for f in fields):
            raise AuthenticationError(_C.MALFORMED_REQUEST, "PLAIN field empty or longer than 255 octets")
        try:
            texts = [f.decode("utf-8") for f in fields]
        except UnicodeDecodeError:
            raise AuthenticationError(_C.MALFORMED_REQUEST, "PLAIN message is not UTF-8") from None
        try:
            self._username = prepare_username(texts[1])
            self._password = prepare_password(texts[2])
        except ValueError:
            # No stored account can have such a name or password; saying so reveals no account.
            raise AuthenticationError(_C.NOT_AUTHORIZED) from None
        self._authzid = texts[0] or None
        self._state = _State.AWAIT_CREDENTIALS
        return NeedCredentials(self._username)


def _strongest(creds: Credentials) -> ScramCredentials | None:
    for family in SCRAM_MECHANISMS:
        for c in creds:
            if c.mechanism == family:
                return c
    return None
