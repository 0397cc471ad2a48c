"""Accounts and their credentials: what SASL checks logins against, and the ``jaybird user`` commands.

Only SCRAM verifiers are stored (RFC 5802 §3: salt, iteration count, StoredKey, ServerKey), one per SCRAM
family the server offers; PLAIN logins are checked against them too, so no password is ever kept.
"""

from __future__ import annotations

import collections
import time
from collections.abc import Callable, Sequence
from typing import Final

from jaybird.jid import JID
from jaybird.sasl import ScramCredentials, make_scram_credentials
from jaybird.server.config import ThrottleConfig
from jaybird.server.storage import AccountNotFoundError, Storage, StoredCredentials

__all__ = [
    "STORED_FAMILIES",
    "FailedLoginThrottle",
    "add_user",
    "change_password",
    "credentials_for",
    "delete_user",
    "list_users",
    "offered_mechanisms",
]

#: The SCRAM families every account gets a verifier for (and so the only SCRAM mechanisms offered).
STORED_FAMILIES: Final = ("SCRAM-SHA-1", "SCRAM-SHA-256")


def offered_mechanisms(configured: Sequence[str]) -> tuple[str, ...]:
    """The configured mechanisms this core can check: SCRAM of a stored family (and -PLUS), PLAIN."""
    usable = {*STORED_FAMILIES, *(f"{family}-PLUS" for family in STORED_FAMILIES), "PLAIN"}
    return tuple(name for name in configured if name in usable)


def _stored(password: str, iterations: int) -> list[StoredCredentials]:
    out = []
    for family in STORED_FAMILIES:
        creds = make_scram_credentials(password, family, iterations)
        out.append(StoredCredentials(creds.mechanism, creds.salt, creds.iterations, creds.stored_key, creds.server_key))
    return out


def _local(jid: JID) -> str:
    if jid.local is None or jid.resource is not None:
        raise ValueError(f"expected an account address user@domain, not {jid}")
    return jid.local


async def add_user(storage: Storage, jid: JID, password: str, *, iterations: int) -> None:
    """Create the account; raises AccountExistsError, or ValueError for a password PRECIS refuses."""
    await storage.accounts.create(_local(jid), jid.domain, _stored(password, iterations))


async def change_password(storage: Storage, jid: JID, password: str, *, iterations: int) -> None:
    """Replace every stored verifier; raises AccountNotFoundError."""
    await storage.accounts.set_credentials(_local(jid), jid.domain, _stored(password, iterations))


async def delete_user(storage: Storage, jid: JID) -> None:
    """Raises AccountNotFoundError when there is no such account."""
    local = _local(jid)
    if not await storage.accounts.delete(local, jid.domain):
        raise AccountNotFoundError(local, jid.domain)


async def list_users(storage: Storage, domain: str) -> list[str]:
    return [f"{name}@{domain}" for name in await storage.accounts.usernames(domain)]


async def credentials_for(storage: Storage, username: str, domain: str) -> list[ScramCredentials] | None:
    """What the SASL mechanisms check a login of ``username@domain`` against; None: no such account."""
    account = await storage.accounts.get(username, domain)
    if account is None:
        return None
    found = []
    for cred in account.credentials:
        try:
            found.append(ScramCredentials(cred.mechanism, cred.salt, cred.iterations, cred.stored_key, cred.server_key))
        except ValueError:
            continue  # a family this version does not speak
    return found


class FailedLoginThrottle:
    """At most ``limit`` failed logins per IP address in any ``period_s`` (a sliding window)."""

    def __init__(self, config: ThrottleConfig, *, clock: Callable[[], float] = time.monotonic) -> None:
        self._limit = config.limit
        self._period = config.period_s
        self._clock = clock
        self._failures: dict[str, collections.deque[float]] = {}

    def _window(self, ip: str) -> collections.deque[float] | None:
        times = self._failures.get(ip)
        if times is None:
            return None
        horizon = self._clock() - self._period
        while times and times[0] <= horizon:
            times.popleft()
        if not times:
            del self._failures[ip]
            return None
        return times

    def blocked(self, ip: str) -> bool:
        times = self._window(ip)
        return times is not None and len(times) >= self._limit

    def record_failure(self, ip: str) -> None:
        times = self._window(ip)
        if times is None:
            times = self._failures[ip] = collections.deque()
        times.append(self._clock())
        # Bounded per address: beyond the limit only "blocked" matters.
        while len(times) > self._limit:
            times.popleft()
