"""An in-memory pump between an initiating and a receiving stream machine: no sockets, real TLS.

Each side may run TLS through ``ssl.MemoryBIO`` / ``SSLObject`` when its machine reports TLSRequested; the
receiving side answers CredentialsRequired from a dictionary of stored credentials and BindRequested with a
small policy (requested resource, generated resource, conflicts).
"""

from __future__ import annotations

import itertools
import ssl
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from jaybird.errors import StanzaError, StanzaErrorCondition
from jaybird.jid import JID
from jaybird.sasl import ChannelBinding, Credentials, tls_server_end_point
from jaybird.stream.events import (
    AuthenticationFailed,
    BindRequested,
    CredentialsRequired,
    Event,
    TLSRequested,
)
from jaybird.stream.machine import XMPPStream

#: Upper bound on pump rounds: a negotiation that needs more is stuck, not slow.
MAX_ROUNDS = 200


@dataclass
class TLSSetup:
    server_context: ssl.SSLContext
    client_context: ssl.SSLContext
    certificate_der: bytes
    hostname: str


@dataclass
class BindPolicy:
    """The server core's part of binding (RFC 6120 §7.6/§7.7): it chooses, the machine only carries."""

    taken: set[str] = field(default_factory=set)
    refuse: StanzaError | None = None
    counter: itertools.count[int] = field(default_factory=lambda: itertools.count(1))

    def __call__(self, identity: JID, resource: str | None) -> JID | StanzaError:
        if self.refuse is not None:
            return self.refuse
        if resource is None:
            resource = f"generated-{next(self.counter)}"
        if resource in self.taken:
            return StanzaError(StanzaErrorCondition.CONFLICT)
        return identity.with_resource(resource)


class Side:
    """One end: its machine, its TLS layer once started, and every event it reported."""

    def __init__(
        self,
        machine: XMPPStream,
        *,
        server: bool,
        tls: TLSSetup | None,
        chunk: int | None,
        answer: Callable[[Side, Event], None],
    ) -> None:
        self.machine = machine
        self.server = server
        self.tls_setup = tls
        self.chunk = chunk
        self.answer = answer
        self.events: list[Event] = []
        #: Everything the machine wrote, before any TLS.
        self.plaintext_out: list[bytes] = []
        self.tls: ssl.SSLObject | None = None
        self.tls_wanted = False
        self.handshaking = False
        self._in = ssl.MemoryBIO()
        self._out = ssl.MemoryBIO()

    def handle(self, events: list[Event]) -> None:
        for event in events:
            self.events.append(event)
            if isinstance(event, TLSRequested):
                self.tls_wanted = True
            else:
                self.answer(self, event)

    def flush(self) -> bytes:
        plain = self.machine.data_to_send()
        if plain:
            self.plaintext_out.append(plain)
        if self.tls is None:
            out = plain
            if self.tls_wanted:  # <proceed/> (or <starttls/>) went out in plain text above
                self._start_tls()
                out += self._out.read()
            return out
        if plain:
            self.tls.write(plain)
        return self._out.read()

    def deliver(self, wire: bytes) -> None:
        if self.tls is None:
            self._feed(wire)
            return
        self._in.write(wire)
        if self.handshaking:
            self._handshake()
        if self.handshaking:
            return
        while True:
            try:
                data = self.tls.read(65536)
            except (ssl.SSLWantReadError, ssl.SSLZeroReturnError):
                break
            if not data:
                break
            self._feed(data)

    def _feed(self, data: bytes) -> None:
        if self.chunk is None:
            self.handle(self.machine.receive_data(data))
            return
        for i in range(0, len(data), self.chunk):
            self.handle(self.machine.receive_data(data[i : i + self.chunk]))

    def _start_tls(self) -> None:
        setup = self.tls_setup
        assert setup is not None, "TLS was requested but the pump has no TLS setup"
        if self.server:
            self.tls = setup.server_context.wrap_bio(self._in, self._out, server_side=True)
        else:
            self.tls = setup.client_context.wrap_bio(self._in, self._out, server_hostname=setup.hostname)
        self.handshaking = True
        self._handshake()

    def _handshake(self) -> None:
        assert self.tls is not None and self.tls_setup is not None
        try:
            self.tls.do_handshake()
        except ssl.SSLWantReadError:
            return
        self.handshaking = False
        if self.server:
            der = self.tls_setup.certificate_der  # the server hashes its own certificate (RFC 5929 §4.1)
        else:
            peer = self.tls.getpeercert(binary_form=True)
            assert peer is not None
            der = peer
        binding = ChannelBinding("tls-server-end-point", tls_server_end_point(der))
        self.handle(self.machine.tls_established(binding))


class Pump:
    """Moves bytes both ways until neither side has anything left to say."""

    def __init__(
        self,
        client: XMPPStream,
        server: XMPPStream,
        *,
        accounts: Mapping[str, Credentials] | None = None,
        tls: TLSSetup | None = None,
        chunk: int | None = None,
        bind: BindPolicy | None = None,
        retry_password: str | None = None,
    ) -> None:
        self.accounts = dict(accounts or {})
        self.bind = bind or BindPolicy()
        self.retry_password = retry_password
        self.client = Side(client, server=False, tls=tls, chunk=chunk, answer=self._client_answer)
        self.server = Side(server, server=True, tls=tls, chunk=chunk, answer=self._server_answer)

    def run(self) -> None:
        for _ in range(MAX_ROUNDS):
            moved = False
            data = self.client.flush()
            if data:
                moved = True
                self.server.deliver(data)
            data = self.server.flush()
            if data:
                moved = True
                self.client.deliver(data)
            if not moved:
                return
        raise AssertionError("the pump did not settle")

    def _server_answer(self, side: Side, event: Event) -> None:
        machine = side.machine
        if isinstance(event, CredentialsRequired):
            side.handle(machine.provide_credentials(self.accounts.get(event.username)))
        elif isinstance(event, BindRequested):
            identity = machine.identity
            assert identity is not None
            outcome = self.bind(identity, event.resource)
            if isinstance(outcome, StanzaError):
                side.handle(machine.fail_bind(outcome))
            else:
                side.handle(machine.complete_bind(outcome))

    def _client_answer(self, side: Side, event: Event) -> None:
        if isinstance(event, AuthenticationFailed) and event.retry_allowed and self.retry_password:
            password, self.retry_password = self.retry_password, None
            side.handle(side.machine.retry_authentication(password))
