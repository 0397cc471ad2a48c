"""TLS for XMPP streams: contexts, certificate identities, channel binding, readable verification failures.

Identity checks (RFC 6120 §13.7.1.2, RFC 6125). The reference identity is the XMPP domain (the JID's
domainpart), never the host an SRV record pointed to: callers pass ``server_hostname=<xmpp domain>``, which
also sets SNI to the domain as XEP-0368 §3 requires for direct TLS.

What Python's own check (``check_hostname``, done by OpenSSL's ``X509_check_host``) covers:

* DNS-ID: ``subjectAltName`` dNSName entries, with a wildcard allowed only as the whole leftmost label
  (RFC 6125 §6.4.3; partial wildcards such as ``x*.example.com`` are refused);
* iPAddress entries when the domain is an IP literal.

The contexts made here also turn off the fallback to the subject's Common Name (RFC 6125 §6.4.4 allows it
only as a legacy practice; certificate authorities have not issued CN-only certificates for years).

What it does not cover:

* SRV-ID (RFC 4985 ``SRVName`` otherName, ``_xmpp-client.example.com`` / ``_xmpp-server.example.com``);
* XmppAddr (the ``id-on-xmppAddr`` otherName of RFC 6120 §13.7.1.4), which RFC 6120 lets a server present
  instead of, or next to, a DNS-ID;
* the server-to-server rules of RFC 7712 (domain name associations, POSH/DANE delegation).

:func:`identities_from_certificate` reads all three kinds of identifier with ``cryptography`` and
:meth:`CertIdentities.matches` applies the RFC 6125 / RFC 6120 rules to them, so that s2s code can verify a
peer itself (with ``check_hostname`` off) after OpenSSL has verified the chain.
"""

from __future__ import annotations

import logging
import ssl
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Final

import idna
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.x509.oid import ObjectIdentifier

from jaybird.sasl import ChannelBinding
from jaybird.sasl.binding import tls_server_end_point
from jaybird.transport.errors import CertificateError, CertificateProblem

__all__ = [
    "ALPN_CLIENT",
    "ALPN_SERVER",
    "CertIdentities",
    "certificate_der",
    "certificate_error",
    "channel_binding",
    "channel_bindings",
    "client_context",
    "identities_from_certificate",
    "server_context",
]

log = logging.getLogger(__name__)

#: XEP-0368 §3 / §8: ALPN protocol ids for direct TLS.
ALPN_CLIENT: Final = "xmpp-client"
ALPN_SERVER: Final = "xmpp-server"

#: RFC 6120 §13.7.1.4.
ID_ON_XMPPADDR: Final = ObjectIdentifier("1.3.6.1.5.5.7.8.5")
#: RFC 4985 §2.
ID_ON_DNSSRV: Final = ObjectIdentifier("1.3.6.1.5.5.7.8.7")

_UTF8STRING: Final = 0x0C
_IA5STRING: Final = 0x16


def _harden(context: ssl.SSLContext) -> ssl.SSLContext:
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.options |= ssl.OP_NO_COMPRESSION  # CRIME; RFC 7590 §3.3
    return context


def client_context(
    *, verify: bool = True, ca_file: str | Path | None = None, alpn: Sequence[str] | None = None
) -> ssl.SSLContext:
    """A context for the initiating side: TLS 1.2 or later, the system's CAs unless ``ca_file`` is given.

    ``verify=False`` accepts any certificate (for tests and for s2s code that checks identities itself);
    ``alpn`` is ``[ALPN_CLIENT]`` for direct TLS to a client port (XEP-0368 §3) and None for STARTTLS.
    """
    context = _harden(ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=ca_file))
    context.hostname_checks_common_name = False
    if not verify:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    if alpn:
        context.set_alpn_protocols(list(alpn))
    return context


def server_context(cert_file: str | Path, key_file: str | Path, *, alpn: Sequence[str] | None = None) -> ssl.SSLContext:
    """A context for the receiving side, serving ``cert_file`` (the chain, leaf first) with ``key_file``."""
    context = _harden(ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER))
    context.load_cert_chain(cert_file, key_file)
    if alpn:
        context.set_alpn_protocols(list(alpn))
    return context


def certificate_der(cert_file: str | Path) -> bytes:
    """The DER form of the first (leaf) certificate in a PEM file: what a server hashes for binding."""
    certs = x509.load_pem_x509_certificates(Path(cert_file).read_bytes())
    if not certs:
        raise ValueError(f"no certificate in {cert_file}")
    return certs[0].public_bytes(serialization.Encoding.DER)


def channel_binding(
    ssl_object: ssl.SSLObject | ssl.SSLSocket, *, server_side: bool, own_cert_der: bytes | None = None
) -> ChannelBinding | None:
    """``tls-server-end-point`` data (RFC 5929 §4) for SCRAM-*-PLUS; None without a certificate or for an
    Ed25519/Ed448 one (RFC 5929 §4.1 defines no hash for those).

    Both sides hash the server's certificate: the client takes it from the handshake, the server passes its
    own (``own_cert_der``, see :func:`certificate_der`) because an ``SSLObject`` does not expose it.
    ``tls-exporter`` (RFC 9266) needs an exporter API that Python 3.11's ``ssl`` lacks.
    """
    if server_side:
        if own_cert_der is None:
            raise ValueError("the server side needs its own certificate (own_cert_der) for channel binding")
        cert = own_cert_der
    else:
        peer = ssl_object.getpeercert(binary_form=True)
        if not peer:
            return None
        cert = peer
    try:
        return ChannelBinding("tls-server-end-point", tls_server_end_point(cert))
    except ValueError as exc:  # Ed25519/Ed448: RFC 5929 §4.1 defines no binding for them
        log.debug("no tls-server-end-point channel binding: %s", exc)
        return None


def channel_bindings(
    ssl_object: ssl.SSLObject | ssl.SSLSocket, *, server_side: bool, own_cert_der: bytes | None = None
) -> tuple[ChannelBinding, ...]:
    """Every channel binding this connection offers, the one to use by default first.

    ``tls-unique`` comes first wherever OpenSSL gives one: RFC 5802 §6 makes it the default, and it is the only
    type checked by the servers that offer -PLUS without advertising types (XEP-0440): Prosody 0.12 on TLS 1.2,
    ejabberd 23.01 on TLS 1.3 too. RFC 9266 §1 leaves it undefined for TLS 1.3 (it is weaker there, not
    unbound: it still names this handshake's Finished message), so a server that advertises XEP-0440 gets the
    best type it lists instead (``jaybird.stream.features.sasl.choose_channel_binding``). ``tls-server-end-point``
    (RFC 5929 §4) follows whenever the certificate allows it. ``tls-exporter`` (RFC 9266) needs a keying-material
    exporter that Python's ``ssl`` module does not have.
    """
    found: list[ChannelBinding] = []
    data = ssl_object.get_channel_binding("tls-unique")
    if data:
        found.append(ChannelBinding("tls-unique", data))
    end_point = channel_binding(ssl_object, server_side=server_side, own_cert_der=own_cert_der)
    if end_point is not None:
        found.append(end_point)
    return tuple(found)


# OpenSSL X509_V_ERR_* codes (include/openssl/x509_vfy.h); ``ssl`` does not export them.
_PROBLEMS: Final[dict[int, CertificateProblem]] = {
    2: CertificateProblem.UNKNOWN_CA,  # unable to get issuer certificate
    9: CertificateProblem.NOT_YET_VALID,
    10: CertificateProblem.EXPIRED,
    18: CertificateProblem.SELF_SIGNED,  # depth zero self-signed
    19: CertificateProblem.UNKNOWN_CA,  # self-signed root in chain, not trusted
    20: CertificateProblem.UNKNOWN_CA,  # unable to get local issuer certificate
    21: CertificateProblem.UNKNOWN_CA,  # unable to verify the first certificate
    23: CertificateProblem.REVOKED,
    62: CertificateProblem.NAME_MISMATCH,  # hostname mismatch
    64: CertificateProblem.NAME_MISMATCH,  # IP address mismatch
}


def certificate_error(exc: ssl.SSLCertVerificationError, domain: str) -> CertificateError:
    """OpenSSL's verification failure as a :class:`CertificateError` naming ``domain`` and the reason."""
    code = exc.verify_code if isinstance(exc.verify_code, int) else -1
    detail = exc.verify_message if isinstance(exc.verify_message, str) else str(exc)
    return CertificateError(domain, _PROBLEMS.get(code, CertificateProblem.OTHER), detail)


@dataclass(frozen=True, slots=True)
class CertIdentities:
    """The identifiers a certificate presents (RFC 6125 §1.8): DNS-IDs, SRV-IDs and XmppAddrs."""

    dns: tuple[str, ...] = ()
    srv: tuple[str, ...] = ()
    xmpp_addrs: tuple[str, ...] = ()

    def matches(self, domain: str, *, service: str = "xmpp-server") -> bool:
        """Whether the certificate names ``domain`` (RFC 6120 §13.7.1.2 and §13.7.1.4, RFC 6125 §6).

        ``service`` is the SRV-ID service (``xmpp-client`` or ``xmpp-server``, no underscore).
        """
        reference = _a_label(domain)
        if reference is None:
            return False
        for addr in self.xmpp_addrs:
            # An XmppAddr names a domain only as a bare domain JID, compared after preparation.
            if "@" not in addr and "/" not in addr and _a_label(addr) == reference:
                return True
        for srv in self.srv:
            label, _, name = srv.partition(".")
            if label.lower() == f"_{service}" and _a_label(name) == reference:
                return True
        return any(_dns_id_matches(presented, reference) for presented in self.dns)


def _a_label(name: str) -> str | None:
    name = name.rstrip(".").lower()
    if name.isascii():
        return name
    try:
        return idna.encode(name, uts46=True).decode("ascii")
    except idna.IDNAError:
        return None


def _dns_id_matches(presented: str, reference: str) -> bool:
    """RFC 6125 §6.4: exact match, or ``*`` as the whole leftmost label matching exactly one label."""
    presented = presented.rstrip(".").lower()
    if not presented.startswith("*."):
        return "*" not in presented and presented == reference
    rest = presented[2:]
    head, dot, tail = reference.partition(".")
    # The wildcard never covers more than one label, nor a public suffix alone ("*.com" needs two dots).
    return bool(dot) and bool(head) and tail == rest and "*" not in rest and rest.count(".") >= 1


def _der_string(der: bytes, tag: int) -> str | None:
    """Read one DER-encoded primitive string with ``tag`` (the whole value, nothing after it), else None.

    ``cryptography`` hands an otherName's value over as raw DER. Reading one tagged string is a few lines of
    XMPP-specific glue, not worth a general ASN.1 dependency.
    """
    if len(der) < 2 or der[0] != tag:
        return None
    length = der[1]
    offset = 2
    if length & 0x80:
        count = length & 0x7F
        if count == 0 or count > 4 or len(der) < 2 + count:
            return None
        length = int.from_bytes(der[2 : 2 + count], "big")
        offset = 2 + count
    if offset + length != len(der):
        return None
    raw = der[offset:]
    try:
        return raw.decode("utf-8") if tag == _UTF8STRING else raw.decode("ascii")
    except UnicodeDecodeError:
        return None


def identities_from_certificate(cert_der: bytes) -> CertIdentities:
    """The DNS-IDs, SRV-IDs and XmppAddrs in a certificate's subjectAltName; malformed entries are skipped."""
    cert = x509.load_der_x509_certificate(cert_der)
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return CertIdentities()
    srv: list[str] = []
    xmpp: list[str] = []
    for other in san.get_values_for_type(x509.OtherName):
        if other.type_id == ID_ON_XMPPADDR:
            value = _der_string(other.value, _UTF8STRING)
            if value is not None:
                xmpp.append(value)
        elif other.type_id == ID_ON_DNSSRV:
            value = _der_string(other.value, _IA5STRING)
            if value is not None:
                srv.append(value)
    return CertIdentities(dns=tuple(san.get_values_for_type(x509.DNSName)), srv=tuple(srv), xmpp_addrs=tuple(xmpp))
