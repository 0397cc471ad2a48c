"""The ten-line program in README.md runs as written, against a real server (Prosody).

The only change is where it connects: the README's example.com accounts are mapped onto the test server's
accounts, and the client is pointed at the server's address and CA (what DNS and a public CA do in real life).
"""

from __future__ import annotations

import asyncio
import re
from pathlib import Path
from typing import Any

import pytest

import jaybird.client
from jaybird.stanza import Message, Presence
from tests.peers.prosody import ProsodyWithAccounts

pytestmark = [pytest.mark.interop, pytest.mark.timeout(60)]

README = Path(__file__).resolve().parents[2] / "README.md"


def readme_program() -> str:
    text = README.read_text(encoding="utf-8")
    blocks = re.findall(r"```python\n(.*?)```", text, re.S)
    program = next(block for block in blocks if "asyncio.run(main())" in block)
    assert len([line for line in program.splitlines() if line.strip()]) <= 12, "the README promises ~10 lines"
    return program


async def test_readme_program_delivers_its_message(
    prosody: ProsodyWithAccounts, monkeypatch: pytest.MonkeyPatch
) -> None:
    server, juliet, romeo = prosody.server, prosody.juliet, prosody.romeo
    real_client = jaybird.client.Client

    def pointed_client(jid: str, password: str, **options: Any) -> jaybird.client.Client:
        assert (jid, password) == ("juliet@example.com", "secret")
        return real_client(
            juliet.jid,
            juliet.password,
            host=server.host,
            port=server.c2s_port,
            ca_file=str(server.ca_file),
            reconnect=False,
            **options,
        )

    program = readme_program().replace("romeo@example.com", romeo.jid).replace("asyncio.run(main())", "")
    async with real_client(
        romeo.jid, romeo.password, host=server.host, port=server.c2s_port, ca_file=str(server.ca_file), reconnect=False
    ) as rc:
        got: asyncio.Future[Message] = asyncio.get_running_loop().create_future()

        async def collect() -> None:
            async for stanza in rc.stanzas():
                if isinstance(stanza, Message) and stanza.body:
                    got.set_result(stanza)
                    return

        reader = asyncio.create_task(collect())
        # The README writes to romeo's bare JID: delivered to available resources only (RFC 6121 §8.5.2.1).
        await rc.send(Presence.build())
        monkeypatch.setattr(jaybird.client, "Client", pointed_client)
        namespace: dict[str, Any] = {}
        exec(compile(program, str(README), "exec"), namespace)  # defines main() exactly as the README has it
        await namespace["main"]()
        message = await asyncio.wait_for(got, 10)
        await reader
    assert message.body == "Wherefore art thou?"
    assert message.from_ is not None and message.from_.bare.local == "juliet"
