"""``jaybird check``: what can be known about a deployment before clients find out (like ``prosodyctl check``).

Each check gives one line: ok, warn (works, but look at it) or fail (will not work as configured).
"""

from __future__ import annotations

import enum
import errno
import ipaddress
import socket
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Final

import dns.exception
import dns.resolver

from jaybird.server.certs import CertState, check_certificate
from jaybird.server.config import LOOPBACK, ServerConfig

__all__ = ["Check", "State", "run_checks"]

#: Names that never have public DNS (RFC 6761, RFC 2606): their SRV lookup is skipped.
_RESERVED_SUFFIXES: Final = ("localhost", "test", "invalid", "example", "local")
DNS_TIMEOUT_S: Final = 3.0


class State(enum.Enum):
    OK = "ok"
    WARN = "warn"
    FAIL = "fail"


@dataclass(frozen=True, slots=True)
class Check:
    state: State
    subject: str
    message: str

    def __str__(self) -> str:
        return f"{self.state.value:<4} {self.subject}: {self.message}"


def run_checks(config: ServerConfig, *, dns_timeout: float = DNS_TIMEOUT_S) -> Iterator[Check]:
    yield Check(State.OK, "config", f"{config.source} is valid ({len(config.hosts)} host(s))")
    for host in config.hosts:
        paths = config.certificate_for(host)
        result = check_certificate(host.domain, paths.cert_file, paths.key_file)
        state = {CertState.OK: State.OK, CertState.WARN: State.WARN, CertState.FAIL: State.FAIL}[result.state]
        if paths.self_signed and result.state is CertState.FAIL and not paths.cert_file.exists():
            # `jaybird serve` makes it on first run: not a failure of the configuration.
            state = State.WARN
            result = type(result)(result.state, f"{paths.cert_file} not generated yet (jaybird serve makes it)")
        yield Check(state, f"certificate {host.domain}", result.message)
    yield from _ports(config)
    for host in config.hosts:
        yield _dns(host.domain, dns_timeout)


def _ports(config: ServerConfig) -> Iterator[Check]:
    listeners = config.listeners
    wanted = [("c2s", listeners.c2s.interfaces, listeners.c2s.port)]
    wanted.append(("c2s direct TLS", listeners.c2s.interfaces, listeners.c2s.tls_port))
    if listeners.s2s.enabled:
        wanted.append(("s2s", listeners.s2s.interfaces, listeners.s2s.port))
    if listeners.http.enabled:
        wanted.append(("http", listeners.http.interfaces, listeners.http.port))
        wanted.append(("https", listeners.http.interfaces, listeners.http.tls_port))
    for name, interfaces, port in wanted:
        for interface in interfaces:
            yield _bind(name, interface, port)


def _bind(name: str, interface: str, port: int) -> Check:
    subject = f"port {name} {interface}:{port}"
    family = socket.AF_INET6 if ":" in interface else socket.AF_INET
    try:
        with socket.socket(family, socket.SOCK_STREAM) as sock:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            if family == socket.AF_INET6:
                sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
            sock.bind((interface, port))
    except OSError as exc:
        if exc.errno == errno.EADDRINUSE:
            return Check(State.FAIL, subject, "already in use (is a server running already?)")
        if exc.errno in (errno.EADDRNOTAVAIL, errno.EAFNOSUPPORT) and interface not in LOOPBACK:
            return Check(State.WARN, subject, f"no such address here: {exc.strerror}")
        return Check(State.FAIL, subject, f"cannot bind: {exc.strerror or exc}")
    return Check(State.OK, subject, "free")


def _reserved(domain: str) -> bool:
    try:
        ipaddress.ip_address(domain.strip("[]"))
        return True
    except ValueError:
        return domain.rsplit(".", 1)[-1] in _RESERVED_SUFFIXES


def _dns(domain: str, timeout: float) -> Check:
    subject = f"dns {domain}"
    if _reserved(domain):
        return Check(State.OK, subject, "a local name: no SRV records needed")
    resolver = dns.resolver.Resolver()
    resolver.lifetime = timeout
    found: list[str] = []
    failures: list[str] = []
    for service in ("_xmpp-client._tcp", "_xmpps-client._tcp"):
        try:
            answer = resolver.resolve(f"{service}.{domain}", "SRV")
        except (dns.resolver.NXDOMAIN, dns.resolver.NoAnswer):
            continue
        except dns.exception.DNSException as exc:
            failures.append(f"{service}: {exc.__class__.__name__}")
            continue
        found += [f"{service} -> {r.target.to_text(omit_final_dot=True)}:{r.port}" for r in answer]
    if found:
        return Check(State.OK, subject, "; ".join(found))
    if failures:
        return Check(State.WARN, subject, "lookup failed: " + "; ".join(failures))
    return Check(State.WARN, subject, f"no SRV records: clients will try {domain} port 5222")
