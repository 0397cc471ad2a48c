"""Third-party XMPP software started by the tests themselves (servers, clients), and what they share."""

import os
import shutil
from dataclasses import dataclass

import pytest


@dataclass(frozen=True, slots=True)
class Account:
    """An account created on a peer server, with the password a client needs to log in."""

    local: str
    domain: str
    password: str

    @property
    def jid(self) -> str:
        return f"{self.local}@{self.domain}"


def running_in_ci() -> bool:
    return os.environ.get("CI", "").lower() not in ("", "0", "false", "no")


def require_binary(name: str) -> str:
    """The path of `name`; skips the test when it is not installed, except in CI, where the peer is part of
    the contract (scripts/install-peers.sh installs it) and its absence is a failure."""
    path = shutil.which(name)
    if path is not None:
        return path
    reason = f"{name} is not installed (scripts/install-peers.sh installs it, as root)"
    if running_in_ci():
        pytest.fail(f"{reason}; CI is set, so interop tests must run", pytrace=False)
    pytest.skip(reason)
