"""biboumi, the XMPP-IRC gateway (a real XEP-0114 component, in C++), connected to `jaybird serve`.

biboumi reaches IRC only when a user joins a channel, so no IRC server is needed: the test checks that it
completes the handshake with jaybird and answers a jaybird client's disco#info (XEP-0030) through the server
with its gateway identity, and that the server lists it in its own disco#items.
"""

from __future__ import annotations

import asyncio
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from jaybird.client import Client
from jaybird.errors import StanzaError, StanzaErrorCondition
from jaybird.ext.disco.wire import DiscoInfo, DiscoItem, DiscoItems
from jaybird.ext.version.wire import SoftwareVersion
from jaybird.jid import JID
from jaybird.stanza import Iq, IqType
from tests.peers import Account, require_binary
from tests.peers.jaybird import JaybirdServer
from tests.peers.ports import free_port

pytestmark = [pytest.mark.interop, pytest.mark.timeout(90)]

GATEWAY = "irc.localhost"
SECRET = "biboumi-shared-secret"
#: How long biboumi gets to connect and authenticate, and to stop on SIGTERM (it waits up to 2 s for IRC).
CONNECT_WAIT = 20.0
STOP_WAIT = 5.0


class Biboumi:
    """biboumi as a subprocess with its own configuration, database and log in ``workdir``."""

    def __init__(self, binary: str, workdir: Path, *, port: int) -> None:
        self.workdir = workdir
        self.log_file = workdir / "biboumi.log"
        config = workdir / "biboumi.cfg"
        # The options are described in biboumi's admin guide (/usr/share/doc/biboumi/admin.rst.gz).
        config.write_text(
            f"hostname={GATEWAY}\n"
            f"password={SECRET}\n"
            "xmpp_server_ip=127.0.0.1\n"
            f"port={port}\n"
            f"db_name={workdir / 'biboumi.sqlite'}\n"
            # Botan's TLS policy files for IRC servers: an empty directory of our own, not /etc/biboumi.
            f"policy_directory={workdir}\n"
            # No identd: port 113 needs privileges, and nothing here asks.
            "identd_port=0\n"
            "log_level=0\n"
        )
        self._log = self.log_file.open("ab")
        self.process = subprocess.Popen([binary, str(config)], stdout=self._log, stderr=subprocess.STDOUT)

    def log_text(self) -> str:
        return self.log_file.read_text(errors="replace")

    def stop(self) -> int | None:
        """SIGTERM, then SIGKILL if it lingers; the exit status."""
        try:
            if self.process.poll() is None:
                self.process.send_signal(signal.SIGTERM)
                try:
                    self.process.wait(STOP_WAIT)
                except subprocess.TimeoutExpired:
                    self.process.kill()
                    self.process.wait(STOP_WAIT)
            return self.process.returncode
        finally:
            self._log.close()


@pytest.fixture(scope="module")
def jaybird_with_biboumi(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[JaybirdServer, Biboumi, Account]]:
    binary = require_binary("biboumi")
    port = free_port()
    extra = (
        f'[[listeners.components]]\ndomain = "{GATEWAY}"\nsecret = "{SECRET}"\nport = {port}\n'
        'interfaces = ["127.0.0.1"]\n'
    )
    workdir = tmp_path_factory.mktemp("biboumi")
    with JaybirdServer(workdir / "jaybird", extra_toml=extra) as server:
        juliet = server.add_user("juliet", "balcony-at-midnight")
        biboumi = Biboumi(binary, workdir, port=port)
        try:
            yield server, biboumi, juliet
        finally:
            biboumi.stop()


def client(server: JaybirdServer, account: Account) -> Client:
    return Client(
        account.jid,
        account.password,
        host=server.host,
        port=server.c2s_port,
        ca_file=str(server.ca_file),
        reconnect=False,
        iq_timeout=10.0,
    )


async def disco_info_when_connected(jc: Client, biboumi: Biboumi, server: JaybirdServer) -> DiscoInfo:
    """Ask the gateway for its disco#info until biboumi has connected (until then jaybird answers
    remote-server-timeout for the configured but absent component)."""
    deadline = time.monotonic() + CONNECT_WAIT
    while True:
        try:
            answer = await jc.iq(Iq.build(IqType.GET, DiscoInfo(), to=GATEWAY), timeout=10.0)
        except StanzaError as error:
            if error.condition is not StanzaErrorCondition.REMOTE_SERVER_TIMEOUT:
                raise
            if biboumi.process.poll() is not None or time.monotonic() > deadline:
                pytest.fail(
                    f"biboumi did not connect (exit status {biboumi.process.poll()}):\n{biboumi.log_text()[-3000:]}"
                    f"\n--- jaybird ---\n{server.log_text()[-3000:]}"
                )
            await asyncio.sleep(0.2)
            continue
        assert answer.payload is not None
        assert answer.from_ == JID(GATEWAY)
        return DiscoInfo.from_element(answer.payload)


async def test_biboumi_answers_disco_info_through_jaybird(
    jaybird_with_biboumi: tuple[JaybirdServer, Biboumi, Account],
) -> None:
    server, biboumi, juliet = jaybird_with_biboumi
    async with client(server, juliet) as jc:
        info = await disco_info_when_connected(jc, biboumi, server)
        # biboumi presents itself as an IRC conference gateway (XEP-0030 §3.1, category/type registry).
        assert any(i.category == "conference" and i.type == "irc" for i in info.identities), info
        assert "http://jabber.org/protocol/disco#info" in info.features
        assert "component irc.localhost: connected" in server.log_text()

        # Another IQ round trip with a payload (XEP-0092): the answer comes from the gateway software.
        answer = await jc.iq(Iq.build(IqType.GET, SoftwareVersion(), to=GATEWAY), timeout=10.0)
        assert answer.payload is not None
        assert "biboumi" in (SoftwareVersion.from_element(answer.payload).software or "").lower()

        # The server lists the component among its items (XEP-0030 §4).
        answer = await jc.iq(Iq.build(IqType.GET, DiscoItems(), to=server.domain), timeout=10.0)
        assert answer.payload is not None
        assert DiscoItem(GATEWAY, name=GATEWAY) in DiscoItems.from_element(answer.payload).items
