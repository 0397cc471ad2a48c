"""A tiny authoritative DNS server on a loopback UDP port, for pointing a peer server at jaybird's s2s port.

Prosody resolves through libunbound; its ``unbound = { forward = "127.0.0.1@PORT" }`` setting sends every
query here, so a domain that exists nowhere else resolves to ``_xmpp-server._tcp`` SRV records naming a
loopback port, without touching the system's resolver.
"""

from __future__ import annotations

import socket
import threading
from collections.abc import Mapping
from types import TracebackType
from typing import Self

import dns.flags
import dns.message
import dns.rcode
import dns.rdataclass
import dns.rdatatype
import dns.rrset

__all__ = ["TestDNS"]


class TestDNS:
    """Answers SRV ``_xmpp-server._tcp.<domain>`` with ``0 0 <port> <domain>.`` and A ``<domain>`` with
    127.0.0.1 for each domain in ``routes`` (domain -> port); NXDOMAIN for everything else."""

    __test__ = False  # not a pytest class

    def __init__(self, routes: Mapping[str, int]) -> None:
        self._routes = {domain.lower().rstrip("."): port for domain, port in routes.items()}
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self._sock.bind(("127.0.0.1", 0))
        self._sock.settimeout(0.2)
        self.port: int = self._sock.getsockname()[1]
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, name="test-dns", daemon=True)
        self.queries: list[str] = []

    def __enter__(self) -> Self:
        self._thread.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._stop.set()
        self._thread.join(timeout=2.0)
        self._sock.close()

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                wire, address = self._sock.recvfrom(4096)
            except TimeoutError:
                continue
            except OSError:
                return
            try:
                query = dns.message.from_wire(wire)
            except Exception:  # garbage on a test port: ignore it
                continue
            self._sock.sendto(self._answer(query).to_wire(), address)

    def _answer(self, query: dns.message.Message) -> dns.message.Message:
        response = dns.message.make_response(query)
        response.flags |= dns.flags.AA | dns.flags.RA
        if not query.question:
            return response
        question = query.question[0]
        name = question.name.to_text().lower().rstrip(".")
        self.queries.append(f"{name} {dns.rdatatype.to_text(question.rdtype)}")
        srv_prefix = "_xmpp-server._tcp."
        if name.startswith(srv_prefix) and name[len(srv_prefix) :] in self._routes:
            domain = name[len(srv_prefix) :]
            if question.rdtype == dns.rdatatype.SRV:
                response.answer.append(
                    dns.rrset.from_text(question.name, 60, "IN", "SRV", f"0 0 {self._routes[domain]} {domain}.")
                )
            return response
        if name in self._routes:
            if question.rdtype == dns.rdatatype.A:
                response.answer.append(dns.rrset.from_text(question.name, 60, "IN", "A", "127.0.0.1"))
            return response  # NOERROR, no data for other types
        response.set_rcode(dns.rcode.NXDOMAIN)
        return response
