"""XEP-0199 on the server: answer pings to the server, and ping silent clients to find dead connections.

A session that sent nothing for ``limits.ping_interval_s`` gets a ping (XEP-0199 §4.2); if it still sends
nothing within the module option ``timeout_s`` (default 60 s) its stream is closed with ``connection-timeout``.
Any data from the client counts as the answer (``Session.last_received``), so a busy client is never pinged.
Pings to an account's bare JID are left to the core (XEP-0199 §4.3 defines none for accounts).

One task per host, owned by the module, sweeps the sessions; it is cancelled on unload.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, ClassVar

from jaybird import ns
from jaybird.errors import StreamError, StreamErrorCondition
from jaybird.ext.ping.wire import NAME, Ping
from jaybird.server.api import Host, IqRequest, IqScope, ServerModule, Session
from jaybird.server.events import StanzaFromClient
from jaybird.stanza import Iq, IqType, new_id

if TYPE_CHECKING:
    from jaybird.server.config import ModuleOptions

log = logging.getLogger("jaybird.ext.ping")

#: The sweep never runs more often than this, whatever the interval (seconds).
MIN_TICK = 0.05


@dataclass(frozen=True, slots=True)
class _Outstanding:
    """A ping sent to a session and not yet answered."""

    id: str
    sent_at: float


class PingModule(ServerModule):
    name: ClassVar[str] = "ping"
    implements: ClassVar[tuple[str, ...]] = ("XEP-0199",)

    def __init__(self, host: Host, options: ModuleOptions) -> None:
        super().__init__(host, options)
        self._task: asyncio.Task[None] | None = None

    async def load(self) -> None:
        self.interval = self.host.server_config.limits.ping_interval_s
        self.timeout = self.options.get_float("timeout_s", 60.0, positive=True)
        self.feature(ns.PING)
        self.iq(IqType.GET, NAME, self._answer, scope=IqScope.HOST)
        # above the default priority: our own ping results must not reach the router
        self.on(StanzaFromClient, self._on_stanza, priority=100)
        self._task = asyncio.create_task(self._run(), name=f"ping sweep {self.host.domain}")

    async def unload(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        await super().unload()

    def _answer(self, request: IqRequest) -> None:
        return None  # XEP-0199 §4.1: an empty result

    def _on_stanza(self, event: StanzaFromClient) -> bool:
        """Swallow the answers to our pings (they are addressed to the server and need no routing)."""
        stanza = event.stanza
        if not isinstance(stanza, Iq) or stanza.is_request:
            return False
        outstanding = event.session.data.get(PingModule)
        if isinstance(outstanding, _Outstanding) and stanza.id == outstanding.id:
            del event.session.data[PingModule]
            return True
        return False

    async def _run(self) -> None:
        tick = max(MIN_TICK, min(self.interval, self.timeout) / 4)
        while True:
            await asyncio.sleep(tick)
            try:
                await self.sweep(time.monotonic())
            except Exception:
                log.exception("ping sweep failed on %s", self.host.domain)

    async def sweep(self, now: float) -> None:
        """One pass over the sessions at monotonic time ``now``: ping the silent, close the unanswered."""
        for session in list(self.host.sessions.all()):
            await self._check(session, now)

    async def _check(self, session: Session, now: float) -> None:
        outstanding = session.data.get(PingModule)
        if isinstance(outstanding, _Outstanding):
            if session.last_received >= outstanding.sent_at:
                del session.data[PingModule]  # it spoke since: alive
            elif now - outstanding.sent_at >= self.timeout:
                del session.data[PingModule]
                log.info("closing %s: no answer to a ping in %.1f s", session.jid, self.timeout)
                session.close(StreamError(StreamErrorCondition.CONNECTION_TIMEOUT, text="no answer to a ping"))
                return
            else:
                return
        if now - session.last_received >= self.interval:
            ping = Iq.build(IqType.GET, Ping(), to=session.jid, from_=self.host.domain, id=new_id())
            session.data[PingModule] = _Outstanding(ping.id or "", now)
            await session.send(ping)
