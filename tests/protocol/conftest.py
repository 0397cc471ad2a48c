"""Fixtures for the sans-I/O stream tests: a self-signed certificate, stored accounts, machine factories."""

from __future__ import annotations

import datetime
import itertools
import ssl
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from jaybird.jid import JID
from jaybird.sasl import SCRAM_MECHANISMS, Credentials, make_scram_credentials
from jaybird.stream.config import InitiatingConfig, ReceivingConfig
from jaybird.stream.machine import XMPPStream
from tests.protocol.pump import TLSSetup

DOMAIN = "example.net"
USER = "juliet"
PASSWORD = "r0meo-balcony"


@pytest.fixture(scope="session")
def tls_setup(tmp_path_factory: pytest.TempPathFactory) -> TLSSetup:
    """A self-signed certificate for example.net and TLS contexts for both ends."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, DOMAIN)])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(DOMAIN)]), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    directory: Path = tmp_path_factory.mktemp("tls")
    cert_file = directory / "cert.pem"
    key_file = directory / "key.pem"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    server = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server.load_cert_chain(cert_file, key_file)
    client = ssl.create_default_context(cafile=str(cert_file))  # verifies the chain and the host name
    return TLSSetup(server, client, cert.public_bytes(serialization.Encoding.DER), DOMAIN)


@pytest.fixture(scope="session")
def accounts() -> dict[str, Credentials]:
    return {USER: [make_scram_credentials(PASSWORD, family) for family in SCRAM_MECHANISMS]}


def fixed_ids() -> Callable[[], str]:
    counter = itertools.count(1)
    return lambda: f"s{next(counter)}"


ClientFactory = Callable[..., XMPPStream]
ServerFactory = Callable[..., XMPPStream]


@pytest.fixture
def make_client() -> Iterator[ClientFactory]:
    def make(**overrides: Any) -> XMPPStream:
        options: dict[str, Any] = {"jid": JID(f"{USER}@{DOMAIN}"), "password": PASSWORD}
        options.update(overrides)
        return XMPPStream(InitiatingConfig(**options))

    yield make


@pytest.fixture
def make_server() -> Iterator[ServerFactory]:
    def make(**overrides: Any) -> XMPPStream:
        options: dict[str, Any] = {"domains": frozenset({DOMAIN}), "stream_id": fixed_ids()}
        options.update(overrides)
        return XMPPStream(ReceivingConfig(**options))

    yield make
