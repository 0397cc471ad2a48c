"""Stored SCRAM credentials (RFC 5802 §3): what a server keeps instead of a password.

``make_scram_credentials`` is called when an account's password is set; PLAIN and SCRAM both check logins
against its output, so the password itself is never stored. Key derivation is ``scramp``'s.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass, field
from typing import Final

from scramp import ScramException, ScramMechanism

from jaybird.sasl.prep import prepare_password

__all__ = [
    "DEFAULT_ITERATIONS",
    "SCRAM_MECHANISMS",
    "ScramCredentials",
    "base_mechanism",
    "decoy_credentials",
    "make_scram_credentials",
    "stored_key_for",
]

#: The SCRAM families jaybird speaks, strongest first. Credentials are per family: -PLUS shares them.
SCRAM_MECHANISMS: Final = ("SCRAM-SHA-512", "SCRAM-SHA-256", "SCRAM-SHA-1")
#: RFC 7677 §4 minimum; also scramp's floor for SHA-1/256/512.
DEFAULT_ITERATIONS: Final = 4096
SALT_BYTES: Final = 16
_DIGEST_SIZES: Final = {"SCRAM-SHA-1": 20, "SCRAM-SHA-256": 32, "SCRAM-SHA-512": 64}
# Keys the decoy salts of unknown accounts; per process unless the server passes a persistent key.
_DECOY_KEY: Final = secrets.token_bytes(32)


@dataclass(frozen=True, slots=True)
class ScramCredentials:
    """``mechanism`` is the family without ``-PLUS`` (``"SCRAM-SHA-256"``)."""

    mechanism: str
    salt: bytes
    iterations: int
    stored_key: bytes = field(repr=False)
    server_key: bytes = field(repr=False)

    def __post_init__(self) -> None:
        if self.mechanism not in SCRAM_MECHANISMS:
            raise ValueError(f"not a SCRAM family jaybird supports: {self.mechanism!r}")


def base_mechanism(name: str) -> str:
    """``SCRAM-SHA-256-PLUS`` -> ``SCRAM-SHA-256``: the family whose credentials a mechanism uses."""
    return name.removesuffix("-PLUS")


def make_scram_credentials(
    password: str,
    mechanism: str = "SCRAM-SHA-256",
    iterations: int = DEFAULT_ITERATIONS,
    salt: bytes | None = None,
) -> ScramCredentials:
    """Derive the stored keys of ``password`` (OpaqueString-prepared) for one SCRAM family.

    Raises ``ValueError`` for an unknown family, a password PRECIS or SASLprep refuses (scramp's SASLprep
    knows Unicode 3.2 only, so e.g. emoji are refused), fewer than 4096 iterations or a salt under 12 bytes.
    """
    family = base_mechanism(mechanism)
    if family not in SCRAM_MECHANISMS:
        raise ValueError(f"not a SCRAM family jaybird supports: {mechanism!r}")
    prepared = prepare_password(password)
    if salt is None:
        salt = secrets.token_bytes(SALT_BYTES)
    try:
        salt_out, stored_key, server_key, count = ScramMechanism(family).make_auth_info(
            prepared, iteration_count=iterations, salt=salt
        )
    except ScramException as e:
        raise ValueError(str(e)) from e
    return ScramCredentials(family, bytes(salt_out), int(count), bytes(stored_key), bytes(server_key))


def stored_key_for(creds: ScramCredentials, prepared_password: str) -> bytes:
    """StoredKey = H(HMAC(Hi(password, salt, i), "Client Key")) with ``creds``' salt and count.

    RFC 5802 §3; ``prepared_password`` is already OpaqueString-prepared (scramp adds SASLprep).
    """
    try:
        _salt, stored_key, _server_key, _count = ScramMechanism(creds.mechanism).make_auth_info(
            prepared_password, iteration_count=creds.iterations, salt=creds.salt
        )
    except ScramException as e:
        raise ValueError(str(e)) from e
    return bytes(stored_key)


def decoy_credentials(username: str, mechanism: str, key: bytes | None = None) -> ScramCredentials:
    """Credentials for an account that does not exist, so a failed login costs and looks the same.

    The salt is a keyed hash of the name, so asking twice shows the same salt, as for a real account; the
    keys are random, so no password matches.
    """
    family = base_mechanism(mechanism)
    digest = hmac.new(key or _DECOY_KEY, f"{family}\0{username}".encode(), hashlib.sha256).digest()
    size = _DIGEST_SIZES[family]
    return ScramCredentials(
        family,
        digest[:SALT_BYTES],
        DEFAULT_ITERATIONS,
        secrets.token_bytes(size),
        secrets.token_bytes(size),
    )
