"""Fixtures shared by the whole suite: third-party peers the interop tests talk to."""

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.peers import require_binary
from tests.peers.certs import IssuedCertificate, ca_and_leaf
from tests.peers.prosody import ProsodyServer, ProsodyWithAccounts

JULIET_PASSWORD = "balcony-at-midnight"
ROMEO_PASSWORD = "wherefore-art-thou"


@pytest.fixture(scope="session")
def prosody(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ProsodyWithAccounts]:
    """One private Prosody for the session, with accounts juliet and romeo (skipped when Prosody is not
    installed, failed instead when CI is set)."""
    require_binary("prosody")
    require_binary("prosodyctl")
    with ProsodyServer(tmp_path_factory.mktemp("prosody"), extra_hosts=("capulet.example",)) as server:
        yield ProsodyWithAccounts(
            server=server,
            juliet=server.add_user("juliet", JULIET_PASSWORD),
            romeo=server.add_user("romeo", ROMEO_PASSWORD),
        )


@pytest.fixture
def tmp_certs(tmp_path: Path) -> IssuedCertificate:
    """A CA and a leaf for `localhost` (and 127.0.0.1) signed by it, in a fresh directory."""
    return ca_and_leaf(tmp_path / "certs", ["localhost", "127.0.0.1"], stem="localhost")
