"""slixmpp's XEP-0077 plugin creates an account on `jaybird serve` before logging in (XEP-0077 §3.1), then
logs in with it: registration over STARTTLS, the result, and SASL on the same stream."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, suppress
from typing import Any

import pytest
import slixmpp
from slixmpp.exceptions import IqError

from jaybird.client import Client
from tests.peers.jaybird import JaybirdServer

pytestmark = pytest.mark.interop

WAIT = 10.0


class OpenJaybird(JaybirdServer):
    """`jaybird serve` with in-band registration enabled on its host."""

    def _config(self) -> str:
        # The generated configuration ends with the host's tables: this one joins them.
        return super()._config() + "[hosts.registration]\nenabled = true\n"


@pytest.fixture(scope="module")
def jaybird(tmp_path_factory: pytest.TempPathFactory) -> Iterator[JaybirdServer]:
    with OpenJaybird(tmp_path_factory.mktemp("jaybird-register")) as server:
        yield server


@asynccontextmanager
async def slixmpp_registering(server: JaybirdServer, jid: str, password: str) -> AsyncIterator[asyncio.Future[str]]:
    """A slixmpp client that registers `jid` when offered and then logs in; the future tells how it ended:
    "session" once logged in, or the condition of the error its registration got. Disconnected on exit."""
    client = slixmpp.ClientXMPP(jid, password)
    for plugin in ("xep_0030", "xep_0004", "xep_0066", "xep_0077"):
        client.register_plugin(plugin)
    client.plugin["xep_0077"].force_registration = True
    client.ca_certs = server.ca_file
    client.enable_plaintext = False
    client.enable_direct_tls = False
    client.enable_starttls = True
    outcome: asyncio.Future[str] = asyncio.get_running_loop().create_future()

    def finish(value: str) -> None:
        if not outcome.done():
            outcome.set_result(value)

    async def on_register(form: Any) -> None:
        # The form asks for the username and the password (XEP-0077 §3.1).
        fields = set(form["register"]["fields"])
        if not {"username", "password"} <= fields:
            finish(f"the form lacks fields: {fields}")
            return
        reply = client.Iq()
        reply["type"] = "set"
        reply["register"]["username"] = client.boundjid.user
        reply["register"]["password"] = password
        try:
            await reply.send(timeout=WAIT)  # type: ignore[no-untyped-call]
        except IqError as exc:
            finish(str(exc.iq["error"]["condition"]))

    async def on_session_start(_: Any) -> None:
        finish("session")

    client.add_event_handler("register", on_register)
    client.add_event_handler("session_start", on_session_start)
    client.add_event_handler("failed_all_auth", lambda _: finish("authentication failed"))
    client.add_event_handler("connection_failed", lambda err: finish(f"connection failed: {err}"))
    client.add_event_handler("disconnected", lambda _: finish("disconnected"))
    try:
        client.connect(host=server.host, port=server.c2s_port)
        yield outcome
    finally:
        client.cancel_connection_attempt()
        with suppress(TimeoutError):
            await asyncio.wait_for(client.disconnect(wait=1.0), WAIT)
        client.abort()


async def test_slixmpp_registers_and_logs_in(jaybird: JaybirdServer) -> None:
    local = f"reg-{uuid.uuid4().hex[:8]}"
    jid = f"{local}@{jaybird.domain}"
    async with slixmpp_registering(jaybird, jid, "new-account-secret") as outcome:
        assert await asyncio.wait_for(outcome, WAIT) == "session"
    # A second client, another library, logs in with the account slixmpp created.
    async with Client(
        jid,
        "new-account-secret",
        host=jaybird.host,
        port=jaybird.c2s_port,
        ca_file=str(jaybird.ca_file),
        reconnect=False,
        negotiation_timeout=WAIT,
    ) as client:
        assert str(client.jid.bare) == jid


async def test_slixmpp_gets_conflict_for_a_taken_username(jaybird: JaybirdServer) -> None:
    taken = jaybird.add_user(f"taken-{uuid.uuid4().hex[:8]}", "the-owners-secret")
    async with slixmpp_registering(jaybird, taken.jid, "someone-elses-secret") as outcome:
        assert await asyncio.wait_for(outcome, WAIT) == "conflict"
