"""Self-signed certificates for hosts without one, and the checks ``jaybird check`` runs on certificates.

A fresh server needs *some* certificate to offer STARTTLS at all (RFC 6120 §5 makes TLS mandatory to
implement and jaybird requires it by default); a self-signed one lets a first run work, and clients that pin
or trust it explicitly can connect until a real one is configured.
"""

from __future__ import annotations

import datetime
import enum
import ipaddress
import logging
import os
import ssl
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from jaybird.transport.tls import ALPN_CLIENT, certificate_der, identities_from_certificate, server_context

__all__ = [
    "CertCheck",
    "CertState",
    "ServerTLS",
    "check_certificate",
    "ensure_certificate",
    "generate_self_signed",
]

log = logging.getLogger("jaybird.server.certs")

#: Back-dated so a client whose clock is a little behind still accepts a certificate made a moment ago.
_BACKDATE = datetime.timedelta(minutes=10)
DEFAULT_DAYS = 365
#: ``jaybird check`` warns when a certificate expires sooner than this.
EXPIRY_WARNING = datetime.timedelta(days=14)


def _san(domain: str) -> x509.SubjectAlternativeName:
    try:
        return x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address(domain))])
    except ValueError:
        return x509.SubjectAlternativeName([x509.DNSName(domain), x509.DNSName(f"*.{domain}")])


def generate_self_signed(domain: str, cert_file: Path, key_file: Path, *, days: int = DEFAULT_DAYS) -> None:
    """Write a new ECDSA P-256 key and a self-signed certificate naming ``domain`` (and ``*.domain``)."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, domain)])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - _BACKDATE)
        .not_valid_after(now + datetime.timedelta(days=days))
        .add_extension(_san(domain), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .sign(key, hashes.SHA256())
    )
    cert_file.parent.mkdir(parents=True, exist_ok=True)
    key_file.parent.mkdir(parents=True, exist_ok=True)
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    # The key is written owner-only from the start: never readable by others, not even for an instant.
    fd = os.open(key_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as out:
        out.write(pem)
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    log.info("generated a self-signed certificate for %s in %s", domain, cert_file)


def ensure_certificate(domain: str, cert_file: Path, key_file: Path) -> bool:
    """Generate a self-signed certificate unless both files exist; True when one was made."""
    if cert_file.exists() and key_file.exists():
        return False
    generate_self_signed(domain, cert_file, key_file)
    return True


class CertState(enum.Enum):
    OK = "ok"
    WARN = "warn"
    FAIL = "fail"


@dataclass(frozen=True, slots=True)
class CertCheck:
    state: CertState
    message: str


def check_certificate(
    domain: str, cert_file: Path, key_file: Path, *, now: datetime.datetime | None = None
) -> CertCheck:
    """Present, readable, valid now, naming ``domain``, and not about to expire."""
    if not cert_file.exists():
        return CertCheck(CertState.FAIL, f"{cert_file} does not exist (run: jaybird cert {domain})")
    if not key_file.exists():
        return CertCheck(CertState.FAIL, f"{key_file} does not exist (run: jaybird cert {domain})")
    try:
        certs = x509.load_pem_x509_certificates(cert_file.read_bytes())
    except (OSError, ValueError) as exc:
        return CertCheck(CertState.FAIL, f"{cert_file} cannot be read: {exc}")
    leaf = certs[0]
    now = now or datetime.datetime.now(datetime.UTC)
    if leaf.not_valid_after_utc < now:
        return CertCheck(CertState.FAIL, f"{cert_file} expired on {leaf.not_valid_after_utc:%Y-%m-%d}")
    if leaf.not_valid_before_utc > now:
        return CertCheck(CertState.FAIL, f"{cert_file} is not valid before {leaf.not_valid_before_utc:%Y-%m-%d}")
    identities = identities_from_certificate(leaf.public_bytes(serialization.Encoding.DER))
    if not identities.matches(domain, service="xmpp-client") and domain not in identities.dns:
        return CertCheck(CertState.FAIL, f"{cert_file} does not name {domain}")
    self_signed = leaf.issuer == leaf.subject
    left = leaf.not_valid_after_utc - now
    if left < EXPIRY_WARNING:
        return CertCheck(CertState.WARN, f"{cert_file} expires in {left.days} days")
    if self_signed:
        return CertCheck(CertState.WARN, f"{cert_file} is self-signed: clients will not trust it without help")
    return CertCheck(CertState.OK, f"{cert_file} valid until {leaf.not_valid_after_utc:%Y-%m-%d}")


class ServerTLS:
    """The TLS contexts of the server: one per host (chosen by SNI), for STARTTLS and for direct TLS.

    A server-side ``SSLObject`` does not expose its own certificate, yet SCRAM-*-PLUS needs its hash
    (``tls-server-end-point``, RFC 5929 §4): each context is mapped to the DER of the certificate it serves.
    """

    def __init__(self, certificates: Sequence[tuple[str, Path, Path]]) -> None:
        if not certificates:
            raise ValueError("TLS needs at least one certificate")
        self._der: dict[int, bytes] = {}
        self._starttls: dict[str, ssl.SSLContext] = {}
        self._direct: dict[str, ssl.SSLContext] = {}
        for domain, cert_file, key_file in certificates:
            der = certificate_der(cert_file)
            for table, alpn in ((self._starttls, None), (self._direct, [ALPN_CLIENT])):
                context = server_context(cert_file, key_file, alpn=alpn)
                context.sni_callback = self._sni(table)
                table[domain] = context
                self._der[id(context)] = der
        first = certificates[0][0]
        self.starttls_context = self._starttls[first]
        self.direct_context = self._direct[first]

    @staticmethod
    def _sni(table: dict[str, ssl.SSLContext]) -> Callable[[ssl.SSLObject, str | None, ssl.SSLContext], None]:
        def choose(ssl_object: ssl.SSLObject, server_name: str | None, current: ssl.SSLContext) -> None:
            chosen = table.get((server_name or "").lower().rstrip("."))
            if chosen is not None and chosen is not current:  # switching contexts costs OpenSSL a certificate reload
                ssl_object.context = chosen

        return choose

    def own_certificate(self, ssl_object: ssl.SSLObject) -> bytes | None:
        """The DER certificate this connection presented (after SNI picked the host's context)."""
        return self._der.get(id(ssl_object.context))
