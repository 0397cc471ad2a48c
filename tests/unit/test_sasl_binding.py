"""tls-server-end-point (RFC 5929 §4.1): the certificate hash follows its signature's hash algorithm."""

from __future__ import annotations

import datetime
import hashlib
from collections.abc import Callable
from functools import cache
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from cryptography.x509.oid import NameOID
from scramp.core import CBindData

from jaybird.sasl import ChannelBinding, ClientScram, ServerScram, tls_server_end_point
from tests.unit.test_sasl import STORE, exchange

SigningKey = rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey | ed25519.Ed25519PrivateKey
SignatureHash = hashes.SHA256 | hashes.SHA384 | hashes.SHA512


@cache
def rsa_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def certificate(key: SigningKey, algorithm: SignatureHash | None) -> bytes:
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "capulet.example")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now)
        .not_valid_after(now + datetime.timedelta(days=1))
        .sign(key, algorithm)
    )
    return cert.public_bytes(serialization.Encoding.DER)


@pytest.mark.parametrize(
    ("algorithm", "expected"),
    [
        (hashes.SHA256(), hashlib.sha256),
        (hashes.SHA384(), hashlib.sha384),
        (hashes.SHA512(), hashlib.sha512),
    ],
    ids=["sha256", "sha384", "sha512"],
)
def test_rsa_signature_hash_selects_the_binding_hash(
    algorithm: SignatureHash, expected: Callable[[bytes], Any]
) -> None:
    der = certificate(rsa_key(), algorithm)
    data = tls_server_end_point(der)
    assert data == expected(der).digest()
    assert data == bytes(CBindData.from_der(der))  # scramp's own reading (asn1crypto) agrees


# DER of the OIDs sha256WithRSAEncryption, sha1WithRSAEncryption and md5WithRSAEncryption (PKCS #1).
SHA256_RSA = bytes.fromhex("06092a864886f70d01010b")
WEAK_RSA = {"sha1": bytes.fromhex("06092a864886f70d010105"), "md5": bytes.fromhex("06092a864886f70d010104")}


@pytest.mark.parametrize("weak", sorted(WEAK_RSA))
def test_md5_and_sha1_signatures_bind_with_sha256(weak: str) -> None:
    # RFC 5929 §4.1. cryptography no longer signs with them, so relabel a SHA-256 certificate's algorithm
    # (the hash choice reads only the label; the signature need not verify).
    der = certificate(rsa_key(), hashes.SHA256()).replace(SHA256_RSA, WEAK_RSA[weak])
    assert x509.load_der_x509_certificate(der).signature_hash_algorithm.name == weak  # type: ignore[union-attr]
    assert tls_server_end_point(der) == hashlib.sha256(der).digest()
    assert tls_server_end_point(der) == bytes(CBindData.from_der(der))


def test_ecdsa_sha384() -> None:
    der = certificate(ec.generate_private_key(ec.SECP384R1()), hashes.SHA384())
    assert tls_server_end_point(der) == hashlib.sha384(der).digest()


def test_no_single_hash_is_undefined() -> None:
    der = certificate(ed25519.Ed25519PrivateKey.generate(), None)
    with pytest.raises(ValueError):
        tls_server_end_point(der)


def test_not_a_certificate() -> None:
    with pytest.raises(ValueError):
        tls_server_end_point(b"\x30\x03\x02\x01\x00")


def test_binding_drives_scram_plus() -> None:
    der = certificate(rsa_key(), hashes.SHA384())
    binding = ChannelBinding("tls-server-end-point", tls_server_end_point(der))
    client = ClientScram("SCRAM-SHA-256-PLUS", username="juliet", password="pencil", channel_binding=binding)
    assert exchange(client, ServerScram("SCRAM-SHA-256-PLUS", channel_bindings=[binding]), STORE)
