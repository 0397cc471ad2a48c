"""SCRAM-SHA-1/256/512 and their -PLUS variants (RFC 5802, RFC 7677) on both sides, built on ``scramp``.

jaybird adds what scramp leaves to the application: the GS2 authzid (see :mod:`jaybird.sasl.gs2`), PRECIS
preparation, asking the driver for credentials between the first two messages, a decoy exchange for unknown
accounts, and the RFC 5802 §6 downgrade rule checked before scramp sees the message.
"""

from __future__ import annotations

import enum
import functools
import secrets
from collections.abc import Sequence
from typing import Any, Final

from scramp import ScramClient, ScramException, ScramMechanism

from jaybird.errors import AuthenticationError, LocalProtocolError, SASLCondition
from jaybird.sasl.credentials import SCRAM_MECHANISMS, ScramCredentials, base_mechanism, decoy_credentials
from jaybird.sasl.gs2 import CbindInput, Gs2Header, split_client_first
from jaybird.sasl.mechanism import (
    Challenge,
    ChannelBinding,
    Credentials,
    NeedCredentials,
    ServerStep,
    Success,
)
from jaybird.sasl.prep import prepare_password, prepare_username

__all__ = ["SCRAM_NAMES", "SUPPORTED_CHANNEL_BINDING_TYPES", "ClientScram", "ServerScram"]

#: Every SCRAM mechanism name jaybird speaks, strongest first.
SCRAM_NAMES: Final = tuple(f"{m}-PLUS" for m in SCRAM_MECHANISMS) + SCRAM_MECHANISMS
#: What scramp 1.5 accepts; it refuses "tls-exporter" (RFC 9266), which the stdlib cannot compute anyway.
SUPPORTED_CHANNEL_BINDING_TYPES: Final = ("tls-server-end-point", "tls-unique")
MIN_ITERATIONS: Final = 4096  # RFC 7677 §4
#: Random bytes in the server's part of the nonce (RFC 5802 §5.1 "r"), sent in URL-safe base64: 144 bits, 24
#: characters. scramp's own default is 64 hex characters, which it then checks one by one at every step.
SERVER_NONCE_BYTES: Final = 18

_C = SASLCondition
# scramp's RFC 5802 server-error values -> RFC 6120 §6.5 conditions.
_SERVER_ERRORS: Final = {
    "invalid-encoding": _C.INCORRECT_ENCODING,
    "extensions-not-supported": _C.MALFORMED_REQUEST,
    "invalid-proof": _C.NOT_AUTHORIZED,
    "channel-bindings-dont-match": _C.NOT_AUTHORIZED,
    "server-does-support-channel-binding": _C.NOT_AUTHORIZED,
    "channel-binding-not-supported": _C.NOT_AUTHORIZED,
    "unsupported-channel-binding-type": _C.NOT_AUTHORIZED,
    "unknown-user": _C.NOT_AUTHORIZED,
    "invalid-username-encoding": _C.MALFORMED_REQUEST,
    "no-resources": _C.TEMPORARY_AUTH_FAILURE,
    "other-error": _C.MALFORMED_REQUEST,
}


def _decode(data: bytes) -> str:
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        raise AuthenticationError(_C.MALFORMED_REQUEST, "SCRAM message is not UTF-8") from None


def _server_error(e: ScramException) -> AuthenticationError:
    code = getattr(e.server_error, "value", "other-error")
    condition = _SERVER_ERRORS.get(code, _C.MALFORMED_REQUEST)
    # A failed proof says nothing more on the wire: the same bare condition for every account (no oracle).
    return AuthenticationError(condition, None if condition is _C.NOT_AUTHORIZED else str(e))


def _check_name(name: str) -> None:
    if name not in SCRAM_NAMES:
        raise ValueError(f"not a SCRAM mechanism jaybird supports: {name!r}")


def _check_binding(binding: ChannelBinding) -> None:
    if binding.type not in SUPPORTED_CHANNEL_BINDING_TYPES:
        raise ValueError(f"channel binding {binding.type!r} is not supported by scramp")
    if not binding.data:
        raise ValueError("empty channel-binding data")


def _attribute(message: str, key: str) -> str | None:
    for part in message.split(","):
        if part.startswith(f"{key}="):
            return part[2:]
    return None


class _ClientState(enum.Enum):
    INITIAL = enum.auto()
    SENT_FIRST = enum.auto()
    SENT_FINAL = enum.auto()
    VERIFIED = enum.auto()


class ClientScram:
    """The client side. With a channel binding, the non-PLUS names send ``y`` (RFC 5802 §6)."""

    def __init__(
        self,
        name: str,
        *,
        username: str,
        password: str,
        authzid: str | None = None,
        channel_binding: ChannelBinding | None = None,
        nonce: str | None = None,
    ) -> None:
        _check_name(name)
        plus = name.endswith("-PLUS")
        if plus and channel_binding is None:
            raise ValueError(f"{name} needs a channel binding")
        if channel_binding is not None:
            _check_binding(channel_binding)
        self.name = name
        cb = None if channel_binding is None else (channel_binding.type, channel_binding.data)
        try:
            user, secret = prepare_username(username), prepare_password(password)
            self._scram: Any = ScramClient([name], user, secret, channel_binding=cb, c_nonce=nonce)
        except ScramException as e:
            raise ValueError(str(e)) from e
        if channel_binding is None:
            self._header = Gs2Header("n", None, authzid or None)
        elif plus:
            self._header = Gs2Header("p", channel_binding.type, authzid or None)
        else:
            self._header = Gs2Header("y", None, authzid or None)
        self._cb_data = channel_binding.data if channel_binding is not None else b""
        self._state = _ClientState.INITIAL

    def initial_response(self) -> bytes | None:
        if self._state is not _ClientState.INITIAL:
            raise LocalProtocolError("the initial response was already sent")
        self._state = _ClientState.SENT_FIRST
        # scramp's header never carries an authzid, so its bare part starts after its second comma.
        bare = str(self._scram.get_client_first()).split(",", 2)[2]
        if self._header.authzid:
            # scramp builds c= from this attribute; the authzid tests fail loudly if scramp renames it.
            self._scram.gs2_header = CbindInput(self._header, self._cb_data)
        return f"{self._header}{bare}".encode()

    def challenge(self, data: bytes) -> bytes:
        if self._state is _ClientState.INITIAL and not data:  # the server wanted no initial response
            first = self.initial_response()
            assert first is not None
            return first
        if self._state is _ClientState.SENT_FIRST:
            return self._server_first(_decode(data))
        if self._state is _ClientState.SENT_FINAL:  # some servers send server-final as a challenge
            self._server_final(_decode(data))
            return b""
        raise AuthenticationError(_C.MALFORMED_REQUEST, "unexpected SCRAM challenge")

    def success(self, data: bytes | None) -> None:
        if self._state is _ClientState.SENT_FINAL:
            if not data:
                raise AuthenticationError(_C.NOT_AUTHORIZED, "the server did not prove it knows the password")
            self._server_final(_decode(data))
        elif self._state is not _ClientState.VERIFIED:
            raise AuthenticationError(_C.NOT_AUTHORIZED, "success before the SCRAM exchange completed")

    def _server_first(self, text: str) -> bytes:
        if text.startswith("e="):
            raise AuthenticationError(_C.NOT_AUTHORIZED, f"server error: {text[2:]}")
        count = _attribute(text, "i")
        if count is not None and count.isdigit() and int(count) < MIN_ITERATIONS:
            raise AuthenticationError(_C.MECHANISM_TOO_WEAK, f"iteration count {count} < {MIN_ITERATIONS}")
        try:
            self._scram.set_server_first(text)
            final = str(self._scram.get_client_final())
        except ScramException as e:
            invalid = getattr(e.server_error, "value", None) == "invalid-encoding"
            condition = _C.INCORRECT_ENCODING if invalid else _C.MALFORMED_REQUEST
            raise AuthenticationError(condition, str(e)) from e
        self._state = _ClientState.SENT_FINAL
        return final.encode()

    def _server_final(self, text: str) -> None:
        if text.startswith("e="):
            raise AuthenticationError(_C.NOT_AUTHORIZED, f"server error: {text[2:]}")
        if not text.startswith("v="):
            raise AuthenticationError(_C.MALFORMED_REQUEST, "server-final must start with v= or e=")
        try:
            self._scram.set_server_final(text)
        except ScramException as e:
            invalid = getattr(e.server_error, "value", None) == "invalid-encoding"
            condition = _C.INCORRECT_ENCODING if invalid else _C.NOT_AUTHORIZED
            raise AuthenticationError(condition, f"server signature not verified: {e}") from e
        self._state = _ClientState.VERIFIED


class _ServerState(enum.Enum):
    START = enum.auto()
    AWAIT_FIRST = enum.auto()
    AWAIT_CREDENTIALS = enum.auto()
    AWAIT_FINAL = enum.auto()
    DONE = enum.auto()


@functools.lru_cache(maxsize=16)
def _mechanism(name: str) -> ScramMechanism:
    """scramp's mechanism objects hold only their name and hash: one per name serves every exchange."""
    return ScramMechanism(name)


class ServerScram:
    """The server side. Give it the session's channel bindings when the server offers -PLUS at all, even for
    a non-PLUS name: a client sending ``y`` to such a server is the downgrade of RFC 5802 §6 and fails."""

    def __init__(
        self,
        name: str,
        *,
        channel_bindings: Sequence[ChannelBinding] = (),
        nonce: str | None = None,
        decoy_key: bytes | None = None,
    ) -> None:
        _check_name(name)
        for binding in channel_bindings:
            _check_binding(binding)
        if name.endswith("-PLUS") and not channel_bindings:
            raise ValueError(f"{name} needs a channel binding")
        self.name = name
        self._plus = name.endswith("-PLUS")
        self._bindings = tuple(channel_bindings)
        self._nonce = secrets.token_urlsafe(SERVER_NONCE_BYTES) if nonce is None else nonce
        self._decoy_key = decoy_key
        self._state = _ServerState.START
        self._header = Gs2Header("n")
        self._binding: ChannelBinding | None = None
        self._first = ""
        self._username = ""
        self._scram: Any = None

    def start(self, initial: bytes | None) -> ServerStep:
        self._expect(_ServerState.START)
        if initial is None:
            self._state = _ServerState.AWAIT_FIRST
            return Challenge(b"")
        return self._client_first(initial)

    def respond(self, data: bytes) -> ServerStep:
        if self._state is _ServerState.AWAIT_FIRST:
            return self._client_first(data)
        self._expect(_ServerState.AWAIT_FINAL)
        return self._client_final(data)

    def provide(self, creds: Credentials | None) -> ServerStep:
        self._expect(_ServerState.AWAIT_CREDENTIALS)
        family = base_mechanism(self.name)
        chosen: ScramCredentials | None = next((c for c in creds or () if c.mechanism == family), None)
        if chosen is None:
            # Unknown account (or none for this hash): run the same exchange with keys nothing matches.
            chosen = decoy_credentials(self._username, family, self._decoy_key)
        stored = (chosen.salt, chosen.stored_key, chosen.server_key, chosen.iterations)
        binding = self._binding
        cb = None if binding is None else (binding.type, binding.data)
        try:
            self._scram = _mechanism(self.name).make_server(lambda _name: stored, cb, s_nonce=self._nonce)
            self._scram.set_client_first(self._header.without_authzid() + self._first)
            server_first = str(self._scram.get_server_first())
        except ScramException as e:
            self._state = _ServerState.DONE
            raise _server_error(e) from e
        if self._header.authzid:
            # scramp saw the header without the authzid; c= must be checked against the one the client sent.
            self._scram.gs2_header = CbindInput(self._header, binding.data if binding else b"")
        self._state = _ServerState.AWAIT_FINAL
        return Challenge(server_first.encode())

    def _expect(self, state: _ServerState) -> None:
        if self._state is not state:
            raise LocalProtocolError(f"SCRAM server is in state {self._state.name}, not {state.name}")

    def _client_first(self, data: bytes) -> ServerStep:
        self._state = _ServerState.DONE  # until proven otherwise: any failure ends the attempt
        header, bare, username = split_client_first(_decode(data))
        if self._plus and header.flag != "p":
            raise AuthenticationError(_C.MALFORMED_REQUEST, f"{self.name} needs the p= GS2 flag")
        if not self._plus and header.flag == "p":
            raise AuthenticationError(_C.MALFORMED_REQUEST, f"{self.name} cannot carry channel binding")
        if header.flag == "y" and self._bindings:
            raise AuthenticationError(_C.NOT_AUTHORIZED, "channel binding downgrade (RFC 5802 §6)")
        if header.flag == "p":
            self._binding = next((b for b in self._bindings if b.type == header.cb_type), None)
            if self._binding is None:
                raise AuthenticationError(_C.NOT_AUTHORIZED, f"no {header.cb_type} channel binding here")
        elif self._bindings:
            self._binding = self._bindings[0]  # lets scramp check the y flag too
        try:
            self._username = prepare_username(username)
        except ValueError:
            raise AuthenticationError(_C.NOT_AUTHORIZED) from None
        self._header, self._first = header, bare
        self._state = _ServerState.AWAIT_CREDENTIALS
        return NeedCredentials(self._username)

    def _client_final(self, data: bytes) -> ServerStep:
        self._state = _ServerState.DONE
        try:
            self._scram.set_client_final(_decode(data))
            server_final = str(self._scram.get_server_final())
        except ScramException as e:
            raise _server_error(e) from e
        return Success(self._username, self._header.authzid, server_final.encode())
