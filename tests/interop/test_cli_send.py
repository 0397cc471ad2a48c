"""`jaybird send`: delivers through a real server, exits non-zero with one clear line on any failure."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys

import pytest

from jaybird.client import Client
from jaybird.stanza import Message
from tests.peers.prosody import ProsodyWithAccounts

pytestmark = [pytest.mark.interop, pytest.mark.timeout(90)]


def run_send(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "jaybird.cli", "send", *args],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, **(env or {})},
        check=False,
    )


async def test_send_delivers_and_exits_zero(prosody: ProsodyWithAccounts) -> None:
    server, juliet, romeo = prosody.server, prosody.juliet, prosody.romeo
    async with Client(
        romeo.jid, romeo.password, host=server.host, port=server.c2s_port, ca_file=str(server.ca_file), reconnect=False
    ) as rc:
        got: asyncio.Future[Message] = asyncio.get_running_loop().create_future()

        async def collect() -> None:
            async for stanza in rc.stanzas():
                if isinstance(stanza, Message) and stanza.body:
                    got.set_result(stanza)
                    return

        reader = asyncio.create_task(collect())
        proc = await asyncio.to_thread(
            run_send,
            "--jid",
            juliet.jid,
            "--server",
            f"{server.host}:{server.c2s_port}",
            "--ca-file",
            str(server.ca_file),
            str(rc.jid),
            "O happy dagger",
            env={"JAYBIRD_PASSWORD": juliet.password},
        )
        assert proc.returncode == 0, proc.stderr
        message = await asyncio.wait_for(got, 10)
        await reader
        assert message.body == "O happy dagger"
        assert message.from_ is not None and message.from_.bare.local == "juliet"


def test_wrong_password_exits_one_with_one_line(prosody: ProsodyWithAccounts) -> None:
    server, juliet = prosody.server, prosody.juliet
    proc = run_send(
        "--jid",
        juliet.jid,
        "--password",
        "nope",
        "--server",
        f"{server.host}:{server.c2s_port}",
        "--ca-file",
        str(server.ca_file),
        "romeo@localhost",
        "hi",
    )
    assert proc.returncode == 1
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "not-authorized" in lines[0]


def test_untrusted_certificate_exits_one(prosody: ProsodyWithAccounts) -> None:
    server, juliet = prosody.server, prosody.juliet
    proc = run_send(
        "--jid",
        juliet.jid,
        "--password",
        juliet.password,
        "--server",
        f"{server.host}:{server.c2s_port}",
        "romeo@localhost",
        "hi",
    )
    assert proc.returncode == 1
    assert len(proc.stderr.strip().splitlines()) == 1 and "certificate" in proc.stderr.lower()


def test_nothing_listening_exits_one() -> None:
    from tests.peers.ports import free_port

    proc = run_send(
        "--jid", "juliet@localhost", "--password", "x", "--server", f"127.0.0.1:{free_port()}", "romeo@localhost", "hi"
    )
    assert proc.returncode == 1
    assert len(proc.stderr.strip().splitlines()) == 1


def test_usage_errors_exit_two() -> None:
    assert run_send("--jid", "juliet@localhost", "romeo@localhost", "hi", env={"JAYBIRD_PASSWORD": ""}).returncode == 2
    bad = run_send("--jid", "@nodomain", "--password", "x", "romeo@localhost", "hi")
    assert bad.returncode == 2 and "localpart" in bad.stderr
