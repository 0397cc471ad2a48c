"""Errors raised while finding, reaching and securing an XMPP server."""

from __future__ import annotations

import enum
from collections.abc import Sequence
from dataclasses import dataclass

from jaybird.errors import JaybirdError

__all__ = [
    "Attempt",
    "CertificateError",
    "CertificateProblem",
    "ConnectError",
    "ServiceNotAvailableError",
    "TransportError",
]


class TransportError(JaybirdError):
    """Base class of the errors of :mod:`jaybird.transport`."""


class ServiceNotAvailableError(TransportError):
    """DNS says the domain decidedly offers no XMPP service (an SRV record whose target is ``.``)."""

    def __init__(self, domain: str, service: str) -> None:
        super().__init__(
            f"{domain} publishes no {service} XMPP service: its SRV record points to '.' (RFC 2782, RFC 6120 §3.2.1)"
        )
        self.domain = domain
        self.service = service


class CertificateProblem(enum.Enum):
    """Why a peer certificate was refused, in the words a person can act on."""

    NAME_MISMATCH = "the certificate is not valid for this domain"
    SELF_SIGNED = "the certificate is self-signed"
    UNKNOWN_CA = "the certificate is signed by an unknown certificate authority"
    EXPIRED = "the certificate has expired"
    NOT_YET_VALID = "the certificate is not valid yet"
    REVOKED = "the certificate has been revoked"
    OTHER = "the certificate could not be verified"


class CertificateError(TransportError):
    """The peer's certificate did not verify for ``domain``: ``problem`` says why, ``detail`` is OpenSSL's."""

    def __init__(self, domain: str, problem: CertificateProblem, detail: str = "") -> None:
        message = f"TLS certificate of {domain} refused: {problem.value}"
        super().__init__(f"{message} ({detail})" if detail else message)
        self.domain = domain
        self.problem = problem
        self.detail = detail


@dataclass(frozen=True, slots=True)
class Attempt:
    """One address tried while connecting, and what went wrong there."""

    host: str
    port: int
    direct_tls: bool
    error: BaseException

    def describe(self) -> str:
        how = "direct TLS" if self.direct_tls else "TCP"
        reason = str(self.error) or type(self.error).__name__
        return f"{self.host}:{self.port} ({how}): {reason}"


class ConnectError(TransportError):
    """No address of ``domain`` could be reached; ``attempts`` lists every address tried and its failure."""

    def __init__(self, domain: str, attempts: Sequence[Attempt], reason: str | None = None) -> None:
        self.domain = domain
        self.attempts = tuple(attempts)
        head = f"could not connect to {domain}"
        if reason:
            head += f": {reason}"
        if self.attempts:
            head += "; tried " + "; ".join(a.describe() for a in self.attempts)
        super().__init__(head)

    @property
    def certificate_errors(self) -> tuple[CertificateError, ...]:
        """The attempts that reached a server whose certificate was refused (not worth blind retries)."""
        return tuple(a.error for a in self.attempts if isinstance(a.error, CertificateError))
