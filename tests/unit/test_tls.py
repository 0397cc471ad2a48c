"""TLS contexts, identity checks and channel binding (jaybird.transport.tls).

Handshakes run in memory (two ``SSLObject``s joined by ``MemoryBIO``s): real OpenSSL verification, no sockets.
"""

from __future__ import annotations

import datetime
import ssl
from collections.abc import Sequence
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519
from cryptography.x509.oid import NameOID

from jaybird.sasl.binding import tls_server_end_point
from jaybird.transport.errors import CertificateError, CertificateProblem
from jaybird.transport.tls import (
    ALPN_CLIENT,
    ID_ON_DNSSRV,
    ID_ON_XMPPADDR,
    CertIdentities,
    certificate_der,
    certificate_error,
    channel_binding,
    client_context,
    identities_from_certificate,
    server_context,
)
from jaybird.transport.tls import _der_string as _der_string
from tests.peers.certs import ca_and_leaf, self_signed

DOMAIN = "example.test"
NOW = datetime.datetime.now(datetime.UTC)


def make_cert(
    directory: Path,
    *,
    cn: str = DOMAIN,
    san: Sequence[x509.GeneralName] | None = (x509.DNSName(DOMAIN),),
    not_before: datetime.datetime = NOW - datetime.timedelta(hours=1),
    not_after: datetime.datetime = NOW + datetime.timedelta(days=1),
    ed25519_key: bool = False,
) -> tuple[Path, Path]:
    """A self-signed certificate that may also serve as its own trust anchor (``ca_file``)."""
    key: ec.EllipticCurvePrivateKey | ed25519.Ed25519PrivateKey = (
        ed25519.Ed25519PrivateKey.generate() if ed25519_key else ec.generate_private_key(ec.SECP256R1())
    )
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])
    builder = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before)
        .not_valid_after(not_after)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
    )
    if san is not None:
        builder = builder.add_extension(x509.SubjectAlternativeName(list(san)), critical=False)
    cert = builder.sign(key, None if ed25519_key else hashes.SHA256())
    directory.mkdir(parents=True, exist_ok=True)
    cert_path, key_path = directory / "cert.pem", directory / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    return cert_path, key_path


def handshake(
    client: ssl.SSLContext, server: ssl.SSLContext, server_hostname: str = DOMAIN
) -> tuple[ssl.SSLObject, ssl.SSLObject]:
    c_in, c_out, s_in, s_out = ssl.MemoryBIO(), ssl.MemoryBIO(), ssl.MemoryBIO(), ssl.MemoryBIO()
    c = client.wrap_bio(c_in, c_out, server_hostname=server_hostname)
    s = server.wrap_bio(s_in, s_out, server_side=True)
    pending = {id(c): c, id(s): s}
    for _ in range(10):
        for obj in list(pending.values()):
            try:
                obj.do_handshake()
                del pending[id(obj)]
            except ssl.SSLWantReadError:
                pass
        s_in.write(c_out.read())
        c_in.write(s_out.read())
        if not pending:
            return c, s
    raise AssertionError("handshake did not finish")


def refused(client: ssl.SSLContext, server: ssl.SSLContext, hostname: str = DOMAIN) -> CertificateError:
    with pytest.raises(ssl.SSLCertVerificationError) as caught:
        handshake(client, server, hostname)
    return certificate_error(caught.value, hostname)


# -- contexts ---------------------------------------------------------------------------------------------


def test_client_context_verifies_by_default() -> None:
    context = client_context()
    assert context.minimum_version >= ssl.TLSVersion.TLSv1_2
    assert context.verify_mode is ssl.CERT_REQUIRED and context.check_hostname
    assert not context.hostname_checks_common_name
    unchecked = client_context(verify=False)
    assert unchecked.verify_mode is ssl.CERT_NONE and not unchecked.check_hostname


def test_ca_file_trusted_and_alpn_negotiated(tmp_path: Path) -> None:
    issued = ca_and_leaf(tmp_path, [DOMAIN])
    client, server = handshake(
        client_context(ca_file=issued.ca_cert, alpn=[ALPN_CLIENT]),
        server_context(issued.cert, issued.key, alpn=[ALPN_CLIENT]),
    )
    assert client.version() in ("TLSv1.2", "TLSv1.3")
    assert client.selected_alpn_protocol() == ALPN_CLIENT == server.selected_alpn_protocol()


def test_wildcard_dns_id_covers_one_label(tmp_path: Path) -> None:
    # RFC 6125 §6.4.3: "*" as the whole leftmost label matches exactly one label.
    cert, key = make_cert(tmp_path, san=[x509.DNSName("*.example.test")])
    handshake(client_context(ca_file=cert), server_context(cert, key), "chat.example.test")
    error = refused(client_context(ca_file=cert), server_context(cert, key), "a.chat.example.test")
    assert error.problem is CertificateProblem.NAME_MISMATCH


# -- readable verification failures ---------------------------------------------------------------------


def test_name_mismatch_names_the_domain(tmp_path: Path) -> None:
    issued = ca_and_leaf(tmp_path, ["other.test"])
    error = refused(client_context(ca_file=issued.ca_cert), server_context(issued.cert, issued.key))
    assert error.problem is CertificateProblem.NAME_MISMATCH
    assert str(error).startswith("TLS certificate of example.test refused: the certificate is not valid for")


def test_common_name_alone_is_not_an_identity(tmp_path: Path) -> None:
    cert, key = make_cert(tmp_path, san=None)  # CN=example.test, no subjectAltName
    assert refused(client_context(ca_file=cert), server_context(cert, key)).problem is (
        CertificateProblem.NAME_MISMATCH
    )


def test_unknown_ca(tmp_path: Path) -> None:
    issued = ca_and_leaf(tmp_path, [DOMAIN])
    error = refused(client_context(), server_context(issued.cert, issued.key))
    assert error.problem is CertificateProblem.UNKNOWN_CA
    assert "unknown certificate authority" in str(error)


def test_self_signed(tmp_path: Path) -> None:
    pair = self_signed(tmp_path, [DOMAIN])
    error = refused(client_context(), server_context(pair.cert, pair.key))
    assert error.problem is CertificateProblem.SELF_SIGNED
    assert "example.test" in str(error) and "self-signed" in str(error)


def test_expired(tmp_path: Path) -> None:
    cert, key = make_cert(
        tmp_path, not_before=NOW - datetime.timedelta(days=30), not_after=NOW - datetime.timedelta(days=1)
    )
    error = refused(client_context(ca_file=cert), server_context(cert, key))
    assert error.problem is CertificateProblem.EXPIRED
    assert "expired" in str(error)


@pytest.mark.parametrize(
    ("code", "problem"), [(9, CertificateProblem.NOT_YET_VALID), (23, CertificateProblem.REVOKED), (999, None)]
)
def test_other_verify_codes(code: int, problem: CertificateProblem | None) -> None:
    exc = ssl.SSLCertVerificationError(1, "verify failed")
    exc.verify_code = code
    exc.verify_message = "some reason"
    error = certificate_error(exc, DOMAIN)
    assert error.problem is (problem or CertificateProblem.OTHER)
    assert error.detail == "some reason" and "(some reason)" in str(error)


# -- channel binding ------------------------------------------------------------------------------------


def test_channel_binding_is_the_same_on_both_sides(tmp_path: Path) -> None:
    # RFC 5929 §4: both sides hash the server certificate; the server reads its own from its file.
    issued = ca_and_leaf(tmp_path, [DOMAIN])
    client, server = handshake(client_context(ca_file=issued.ca_cert), server_context(issued.cert, issued.key))
    own = certificate_der(issued.cert)
    on_client = channel_binding(client, server_side=False)
    on_server = channel_binding(server, server_side=True, own_cert_der=own)
    assert on_client is not None and on_server is not None
    assert on_client == on_server
    assert on_client.type == "tls-server-end-point"
    assert on_client.data == tls_server_end_point(own)
    with pytest.raises(ValueError):
        channel_binding(server, server_side=True)


def test_no_channel_binding_for_ed25519_certificates(tmp_path: Path) -> None:
    cert, key = make_cert(tmp_path, ed25519_key=True)
    client, _ = handshake(client_context(ca_file=cert), server_context(cert, key))
    assert channel_binding(client, server_side=False) is None


def test_certificate_der_reads_the_leaf_of_a_chain_file(tmp_path: Path) -> None:
    issued = ca_and_leaf(tmp_path, [DOMAIN])
    chain = tmp_path / "chain.pem"
    chain.write_bytes(issued.cert.read_bytes() + issued.ca_cert.read_bytes())
    leaf = x509.load_der_x509_certificate(certificate_der(chain))
    assert leaf.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == DOMAIN


# -- identities beyond DNS-ID ---------------------------------------------------------------------------


def _der(tag: int, text: str) -> bytes:
    raw = text.encode("utf-8")
    assert len(raw) < 128
    return bytes([tag, len(raw)]) + raw


def test_identities_from_certificate(tmp_path: Path) -> None:
    long_name = "x" * 200 + ".example.test"  # long-form DER length
    san: list[x509.GeneralName] = [
        x509.DNSName("example.test"),
        x509.DNSName("*.muc.example.test"),
        x509.OtherName(ID_ON_XMPPADDR, _der(0x0C, "bücher.example")),  # UTF8String (RFC 6120 §13.7.1.4)
        x509.OtherName(ID_ON_XMPPADDR, bytes([0x0C, 0x81, len(long_name)]) + long_name.encode()),
        x509.OtherName(ID_ON_DNSSRV, _der(0x16, "_xmpp-server.example.test")),  # IA5String (RFC 4985)
        x509.OtherName(ID_ON_XMPPADDR, _der(0x16, "wrong-tag.example")),  # skipped: not a UTF8String
    ]
    cert, _ = make_cert(tmp_path, san=san)
    ids = identities_from_certificate(certificate_der(cert))
    assert ids == CertIdentities(
        dns=("example.test", "*.muc.example.test"),
        srv=("_xmpp-server.example.test",),
        xmpp_addrs=("bücher.example", long_name),
    )


@pytest.mark.parametrize(
    "der", [b"", b"\x0c", b"\x0c\x05abc", b"\x0c\x02abc", b"\x0c\x80", b"\x0c\x85" + b"\xff" * 5, b"\x0c\x02\xff\xfe"]
)
def test_malformed_other_name_values_are_not_identities(der: bytes) -> None:
    # cryptography refuses to write such values, but a peer's certificate may still carry them.
    assert _der_string(der, 0x0C) is None


def test_certificate_without_san_has_no_identities(tmp_path: Path) -> None:
    cert, _ = make_cert(tmp_path, san=None)
    assert identities_from_certificate(certificate_der(cert)) == CertIdentities()


def test_identity_matching_rules() -> None:
    ids = CertIdentities(
        dns=("*.muc.example.test", "plain.test"),
        srv=("_xmpp-server.s2s.test",),
        xmpp_addrs=("bücher.example", "user@jid.test"),
    )
    # XmppAddr: a domain JID equal to the domain (IDN compared in A-label form).
    assert ids.matches("xn--bcher-kva.example") and ids.matches("BÜCHER.example")
    assert not ids.matches("jid.test")  # an XmppAddr with a localpart names an account, not the domain
    # SRV-ID: only for the service asked about.
    assert ids.matches("s2s.test") and not ids.matches("s2s.test", service="xmpp-client")
    # DNS-ID: exact, or one label under a wildcard.
    assert ids.matches("plain.test") and ids.matches("Room.muc.example.test")
    assert not ids.matches("muc.example.test") and not ids.matches("a.b.muc.example.test")
    assert not CertIdentities(dns=("*.test",)).matches("example.test")
    assert not CertIdentities(dns=("x*.example.test",)).matches("xy.example.test")
