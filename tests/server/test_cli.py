"""The server commands of the ``jaybird`` CLI, run as a user would (subprocesses)."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from pathlib import Path

from jaybird.client import Client
from jaybird.stanza import Message, MessageType, Presence
from tests.peers.ports import free_port, wait_for_port

JAYBIRD = [sys.executable, "-m", "jaybird.cli"]


def run(*args: str, data: Path, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*JAYBIRD, *args, "--data-dir", str(data)],
        input=stdin if stdin is not None else "",
        capture_output=True,
        text=True,
        timeout=30,
        env={**os.environ, "JAYBIRD_CONFIG": ""},
    )


def test_user_commands(tmp_path: Path) -> None:
    data = tmp_path / "data"
    added = run("user", "add", "alice@localhost", data=data, stdin="s3cret\n")
    assert added.returncode == 0, added.stderr
    assert "created alice@localhost" in added.stdout
    again = run("user", "add", "alice@localhost", "--password", "x", data=data)
    assert again.returncode == 1 and "already exists" in again.stderr and again.stderr.count("\n") == 1
    assert run("user", "add", "bob@localhost", "--password", "pw", data=data).returncode == 0
    listed = run("user", "list", data=data)
    assert listed.returncode == 0 and listed.stdout.split() == ["alice@localhost", "bob@localhost"]
    assert run("user", "list", "localhost", data=data).stdout.split() == ["alice@localhost", "bob@localhost"]
    assert run("user", "passwd", "alice@localhost", data=data, stdin="new\n").returncode == 0
    assert run("user", "del", "bob@localhost", data=data).returncode == 0
    assert run("user", "list", data=data).stdout.split() == ["alice@localhost"]
    missing = run("user", "del", "bob@localhost", data=data)
    assert missing.returncode == 1 and "does not exist" in missing.stderr
    elsewhere = run("user", "add", "carol@example.org", "--password", "x", data=data)
    assert elsewhere.returncode == 1 and "not a host" in elsewhere.stderr
    assert run("user", "add", "not a jid@@", "--password", "x", data=data).returncode == 2
    assert run("user", "add", "dave@localhost", data=data, stdin="\n").returncode == 2
    assert run("user", "frobnicate", data=data).returncode == 2


def test_cert_and_check(tmp_path: Path) -> None:
    data = tmp_path / "data"
    port, tls_port = free_port(), free_port()
    config = tmp_path / "jaybird.toml"
    config.write_text(f'[listeners.c2s]\nport = {port}\ntls_port = {tls_port}\ninterfaces = ["127.0.0.1"]\n')
    made = run("cert", "localhost", "--config", str(config), data=data)
    assert made.returncode == 0 and (data / "certs" / "localhost.crt").exists()
    checked = run("check", "--config", str(config), data=data)
    assert checked.returncode == 0, checked.stdout
    lines = checked.stdout.splitlines()
    assert lines[0].startswith("ok   config")
    assert any(line.startswith("warn certificate localhost") and "self-signed" in line for line in lines)
    assert any(line.startswith(f"ok   port c2s 127.0.0.1:{port}") for line in lines)
    assert any(line.startswith("ok   dns localhost") for line in lines)
    config.write_text("[limits]\nmax_stanza_bytes = -5\n")
    bad = run("check", "--config", str(config), data=data)
    assert bad.returncode == 1 and bad.stdout.startswith("fail config") and "max_stanza_bytes" in bad.stdout


def test_serve_answers_and_stops_on_sigterm(tmp_path: Path) -> None:
    data = tmp_path / "data"
    assert run("user", "add", "alice@localhost", "--password", "pw", data=data).returncode == 0
    assert run("user", "add", "bob@localhost", "--password", "pw", data=data).returncode == 0
    port, tls_port = free_port(), free_port()
    config = tmp_path / "jaybird.toml"
    config.write_text('[listeners.c2s]\ninterfaces = ["127.0.0.1"]\n[modules]\nenabled = []\n')
    args = ["serve", "--config", str(config), "--data-dir", str(data)]
    ports = ["--c2s-port", str(port), "--c2s-tls-port", str(tls_port)]
    process = subprocess.Popen([*JAYBIRD, *args, *ports], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        wait_for_port("127.0.0.1", port, timeout=20, keep_waiting=lambda: process.poll() is None)

        async def talk() -> None:
            cert = str(data / "certs" / "localhost.crt")
            async with (
                Client("alice@localhost", "pw", host="127.0.0.1", port=port, ca_file=cert, reconnect=False) as a,
                Client("bob@localhost", "pw", host="127.0.0.1", port=tls_port, direct_tls=True, ca_file=cert) as b,
            ):
                await b.send(Presence.build())
                stream = b.stanzas()
                pending = asyncio.ensure_future(anext(stream))
                await asyncio.sleep(0.2)
                await a.send(Message.build("bob@localhost", "over the wire", type=MessageType.CHAT))
                async with asyncio.timeout(5):
                    got = await pending
                assert isinstance(got, Message) and got.body == "over the wire"

        asyncio.run(talk())
        process.send_signal(signal.SIGTERM)
        out, err = process.communicate(timeout=15)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert process.returncode == 0, err
    assert "jaybird user add" in out  # the start banner says how to add a user
    assert "session bound" in err and "stopped" in err
