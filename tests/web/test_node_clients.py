"""Real web XMPP libraries in node 20 against the jaybird server: Strophe.js over BOSH and over WebSocket,
@xmpp/client over WebSocket. Each logs in, sends a chat message to a jaybird client and waits for its reply."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from jaybird.client import Client
from jaybird.stanza import Message, MessageType
from tests.server.conftest import ServerFactory
from tests.web.support import WebServer, need, start_web_server

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
NODE_TIMEOUT_S = 30.0


def _node_modules() -> None:
    if not (ROOT / "node_modules" / "strophe.js").is_dir():
        need("__node_modules_missing__", "npm ci in the repository root")


async def _answer_one(client: Client, reply: str) -> str:
    """Wait for the node client's chat message and answer it; returns the text received."""
    async with asyncio.timeout(NODE_TIMEOUT_S):
        async for stanza in client.stanzas():
            if isinstance(stanza, Message) and stanza.body and stanza.from_ is not None:
                await client.send(Message.build(stanza.from_, reply, type=MessageType.CHAT))
                return stanza.body
    raise AssertionError("no message")


async def _run(node: str, *args: str) -> tuple[int, str, str]:
    process = await asyncio.create_subprocess_exec(
        node, *args, cwd=HERE, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
    )
    try:
        async with asyncio.timeout(NODE_TIMEOUT_S):
            out, err = await process.communicate()
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
    return process.returncode or 0, out.decode(), err.decode()


async def _round_trip(web: WebServer, script: list[str]) -> None:
    node = need("node", "the web client tests run JavaScript XMPP libraries")
    _node_modules()
    romeo = await web.add_user("romeo", "montague")
    async with web.running.client(romeo, "montague", resource="desk") as jaybird_client:
        answering = asyncio.ensure_future(_answer_one(jaybird_client, "pong from jaybird"))
        try:
            code, out, err = await _run(node, *script)
        finally:
            if not answering.done():
                answering.cancel()
        assert code == 0, f"node failed: {out}\n{err}"
        # the libraries log to stdout too: find our line
        assert any(line.startswith("OK juliet@localhost/") for line in out.splitlines()), out
        assert await answering == "ping from node"


@pytest.mark.parametrize("transport", ["bosh", "websocket"])
async def test_strophe(start_server: ServerFactory, transport: str) -> None:
    web = await start_web_server(start_server)
    await web.add_user("juliet", "capulet")
    url = web.bosh_url if transport == "bosh" else web.websocket_url
    await _round_trip(
        web,
        [
            "strophe_client.mjs",
            url,
            "juliet@localhost",
            "capulet",
            "romeo@localhost/desk",
            "ping from node",
            "pong from jaybird",
        ],
    )


async def test_xmpp_client_websocket(start_server: ServerFactory) -> None:
    web = await start_web_server(start_server)
    await web.add_user("juliet", "capulet")
    await _round_trip(
        web,
        [
            "xmpp_client.mjs",
            web.websocket_url,
            "localhost",
            "juliet",
            "capulet",
            "romeo@localhost/desk",
            "ping from node",
            "pong from jaybird",
        ],
    )
