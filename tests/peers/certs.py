"""Test certificates made with `cryptography`: a self-signed one, or a private CA and a leaf it signed.

Keys are ECDSA P-256: generated in a millisecond, and every peer used here (LuaSec, Go, OpenSSL) accepts them.
"""

import datetime
import ipaddress
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

# Certificates are back-dated a little so that a clock a few minutes behind still accepts them.
_BACKDATE = datetime.timedelta(minutes=10)


@dataclass(frozen=True, slots=True)
class KeyPair:
    cert: Path
    key: Path


@dataclass(frozen=True, slots=True)
class IssuedCertificate:
    """A leaf certificate and key, and the CA certificate a verifying peer must trust."""

    ca_cert: Path
    cert: Path
    key: Path


def _subject_alt_names(names: Sequence[str]) -> x509.SubjectAlternativeName:
    entries: list[x509.GeneralName] = []
    for name in names:
        try:
            entries.append(x509.IPAddress(ipaddress.ip_address(name)))
        except ValueError:
            entries.append(x509.DNSName(name))
    return x509.SubjectAlternativeName(entries)


def _write_key(path: Path, key: ec.EllipticCurvePrivateKey) -> None:
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    path.write_bytes(pem)
    path.chmod(0o600)


def _write_cert(path: Path, cert: x509.Certificate) -> None:
    path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))


def _leaf_builder(
    names: Sequence[str], key: ec.EllipticCurvePrivateKey, issuer: x509.Name, days: int
) -> x509.CertificateBuilder:
    if not names:
        raise ValueError("a certificate needs at least one name")
    now = datetime.datetime.now(datetime.UTC)
    return (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, names[0])]))
        .issuer_name(issuer)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - _BACKDATE)
        .not_valid_after(now + datetime.timedelta(days=days))
        .add_extension(_subject_alt_names(names), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]),
            critical=False,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
    )


def self_signed(directory: Path, names: Sequence[str], *, stem: str = "server", days: int = 2) -> KeyPair:
    """Write `<stem>.crt` and `<stem>.key`: a certificate for `names` (DNS names or IP addresses)
    signed by its own key. The first name is also the subject's CN."""
    key = ec.generate_private_key(ec.SECP256R1())
    builder = _leaf_builder(names, key, x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, names[0])]), days)
    # A verifier that is told to trust this file uses it as its own trust anchor; strict verifiers want the
    # key usage of a certificate that signs (itself) to say so.
    builder = builder.add_extension(
        x509.KeyUsage(
            digital_signature=True,
            content_commitment=False,
            key_encipherment=False,
            data_encipherment=False,
            key_agreement=True,
            key_cert_sign=True,
            crl_sign=False,
            encipher_only=False,
            decipher_only=False,
        ),
        critical=True,
    )
    cert = builder.sign(key, hashes.SHA256())
    pair = KeyPair(cert=directory / f"{stem}.crt", key=directory / f"{stem}.key")
    directory.mkdir(parents=True, exist_ok=True)
    _write_key(pair.key, key)
    _write_cert(pair.cert, cert)
    return pair


def ca_and_leaf(directory: Path, names: Sequence[str], *, stem: str = "server", days: int = 2) -> IssuedCertificate:
    """Write `ca.crt` (a fresh CA, its key thrown away), `<stem>.crt` and `<stem>.key` (a leaf for `names`
    signed by that CA)."""
    now = datetime.datetime.now(datetime.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "jaybird test CA")])
    ca_ski = x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key())
    ca_cert = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - _BACKDATE)
        .not_valid_after(now + datetime.timedelta(days=days))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=False,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(ca_ski, critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    leaf = (
        _leaf_builder(names, key, ca_name, days)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=True,
                key_cert_sign=False,
                crl_sign=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ca_ski), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    issued = IssuedCertificate(
        ca_cert=directory / "ca.crt", cert=directory / f"{stem}.crt", key=directory / f"{stem}.key"
    )
    directory.mkdir(parents=True, exist_ok=True)
    _write_cert(issued.ca_cert, ca_cert)
    _write_key(issued.key, key)
    _write_cert(issued.cert, leaf)
    return issued
