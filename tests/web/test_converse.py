"""Converse.js in headless Chromium (playwright-core) against the jaybird server, over WebSocket and over BOSH.

The page is served from another origin (another port) than the XMPP endpoints, so BOSH works only if the
server answers the CORS preflight. Converse asks for many things at login (bind, disco, roster, carbons,
blocklist, vCards, PEP bookmarks, MAM, SM): every one must be answered or the UI never reaches "connected".
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from urllib.parse import urlencode

import pytest
from aiohttp import web

from jaybird.client import Client
from jaybird.stanza import Message, MessageType, Presence
from tests.peers.ports import free_port
from tests.server.conftest import ServerFactory
from tests.web.support import need, start_web_server

HERE = Path(__file__).resolve().parent
DIST = HERE.parents[1] / "node_modules" / "converse.js" / "dist"
BROWSER_TIMEOUT_S = 90.0
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


@pytest.fixture
async def page_origin() -> AsyncIterator[str]:
    """A static site on its own port (another origin): the test page and Converse's dist files."""
    app = web.Application()

    async def index(_request: web.Request) -> web.FileResponse:
        return web.FileResponse(HERE / "converse_page.html")

    app.router.add_get("/", index)
    app.router.add_static("/dist/", DIST)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        await runner.cleanup()


async def _answer(client: Client, reply: str) -> str:
    async with asyncio.timeout(BROWSER_TIMEOUT_S):
        async for stanza in client.stanzas():
            if isinstance(stanza, Message) and stanza.body and stanza.from_ is not None:
                await client.send(Message.build(stanza.from_, reply, type=MessageType.CHAT))
                return stanza.body
    raise AssertionError("the stanza stream ended before Converse's message")


@pytest.mark.parametrize("kind", ["websocket", "bosh"])
async def test_converse_login_send_and_receive(
    start_server: ServerFactory, page_origin: str, tmp_path: Path, kind: str
) -> None:
    node = need("node", "Converse.js is driven by playwright-core")
    need("chromium", "Converse.js runs in Debian's Chromium")
    if not DIST.is_dir():
        need("__converse_missing__", "npm ci in the repository root installs converse.js")
    server = await start_web_server(start_server, modules=None)  # every default module, as in production
    await server.add_user("juliet", "capulet")
    romeo = await server.add_user("romeo", "montague")
    url = server.bosh_url if kind == "bosh" else server.websocket_url
    query = urlencode({"kind": kind, "url": url, "jid": "juliet@localhost", "password": "capulet"})
    screenshot = tmp_path / f"converse-{kind}.png"
    async with server.running.client(romeo, "montague", resource="desk") as jaybird_client:
        # available, so a message to the bare JID (Converse chats with bare JIDs) reaches this resource
        await jaybird_client.send(Presence.build())
        answering = asyncio.ensure_future(_answer(jaybird_client, f"reply from jaybird over {kind}"))
        process = await asyncio.create_subprocess_exec(
            node,
            "converse_driver.mjs",
            f"{page_origin}/?{query}",
            "romeo@localhost",
            f"hello from converse over {kind}",
            f"reply from jaybird over {kind}",
            str(screenshot),
            str(tmp_path / f"chromium-{kind}"),
            cwd=HERE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
        )
        try:
            async with asyncio.timeout(BROWSER_TIMEOUT_S):
                out, _ = await process.communicate()
        finally:
            if process.returncode is None:
                process.kill()
                await process.wait()
            if not answering.done():
                answering.cancel()
        text = out.decode(errors="replace")
        assert process.returncode == 0 and text.rstrip().endswith("OK"), text
        assert await answering == f"hello from converse over {kind}"
    assert screenshot.read_bytes().startswith(PNG_MAGIC) and screenshot.stat().st_size > 10_000
