"""An external component (XEP-0114, ``jabber:component:accept``) on the client's session machinery.

::

    async with Component("gateway.example.com", "shared-secret", host="127.0.0.1", port=5347) as comp:
        comp.mux.handle_iq(IqType.GET, ns.clark(ns.VERSION, "query"), answer_version)
        await comp.send(Message.build("juliet@example.com", "hello", from_="bot@gateway.example.com"))

A component speaks for a whole domain: the server routes every stanza addressed to that domain (or to any
``user@domain/resource`` in it) to the component, and the component may send from any address in it.
The handshake proves knowledge of a secret shared with the server (SHA-1 over the stream id); the stream
itself is plain TCP, as XEP-0114 servers offer it, so keep the component port on a trusted network.
"""

from __future__ import annotations

import asyncio
import logging

from jaybird.errors import StreamError, StreamErrorCondition
from jaybird.jid import JID
from jaybird.session import ConnectionLost, Console, NegotiationError, StreamSession
from jaybird.stream import events as ev
from jaybird.stream.config import InitiatingConfig
from jaybird.stream.machine import XMPPStream
from jaybird.stream.state import StreamKind
from jaybird.transport.tcp import Connection, open_connection

__all__ = ["Component", "ConnectionLost", "NegotiationError"]

log = logging.getLogger("jaybird.component")

#: Stream errors that the same secret and domain would meet again on every attempt.
_FINAL = frozenset(
    {
        StreamErrorCondition.NOT_AUTHORIZED,
        StreamErrorCondition.HOST_UNKNOWN,
        StreamErrorCondition.INVALID_NAMESPACE,
        StreamErrorCondition.IMPROPER_ADDRESSING,
    }
)


class Component(StreamSession):
    """An XEP-0114 component connected to a server's component port.

    ``jid`` is the component's domain (``gateway.example.com``); ``secret`` the one configured for it on the
    server. A refused handshake raises :class:`~jaybird.errors.StreamError` (``not-authorized``), an unknown
    domain ``host-unknown``. ``mux``, :meth:`iq`, :meth:`send`, :meth:`stanzas`, reconnection and the console
    work as on :class:`~jaybird.client.Client`. Stanzas sent need a ``from`` in the component's domain.
    """

    def __init__(
        self,
        jid: JID | str,
        secret: str,
        *,
        host: str,
        port: int = 5347,
        reconnect: bool = True,
        reconnect_delay: tuple[float, float] = (1.0, 60.0),
        connect_timeout: float = 10.0,
        negotiation_timeout: float = 30.0,
        iq_timeout: float = 30.0,
        close_timeout: float = 5.0,
        max_pending_iqs: int = 1024,
        console: Console | None = None,
    ) -> None:
        domain = jid if isinstance(jid, JID) else JID(jid)
        if domain.local is not None or domain.resource is not None:
            raise ValueError(f"a component's address is a bare domain, not {domain}")
        self.domain = domain
        super().__init__(
            name=str(domain),
            logger=log,
            reconnect=reconnect,
            reconnect_delay=reconnect_delay,
            iq_timeout=iq_timeout,
            close_timeout=close_timeout,
            max_pending_iqs=max_pending_iqs,
            console=console,
        )
        self._secret = secret
        self._host, self._port = host, port
        self._connect_timeout = connect_timeout
        self._negotiation_timeout = negotiation_timeout

    async def _establish(self) -> None:
        conn = await open_connection(
            self.domain.domain,
            host=self._host,
            port=self._port,
            direct_tls=False,
            connect_timeout=self._connect_timeout,
        )
        try:
            async with asyncio.timeout(self._negotiation_timeout):
                stream = await self._handshake(conn)
        except BaseException:
            await conn.aclose()
            raise
        self._started(conn, stream, self.domain)

    async def _handshake(self, conn: Connection) -> XMPPStream:
        config = InitiatingConfig(jid=self.domain, kind=StreamKind.COMPONENT, password=self._secret)
        stream = XMPPStream(config)
        await self._flush(conn, stream)
        while True:
            data = await conn.read()
            if not data:
                raise ConnectionLost("the server closed the connection during the handshake")
            self._echo("in", data)
            events = self._feed(stream, data)
            await self._flush(conn, stream)
            for event in events:
                if isinstance(event, ev.Ready):
                    return stream
                if isinstance(event, ev.StreamErrorReceived):
                    raise event.error
                if isinstance(event, ev.NegotiationFailed):
                    raise NegotiationError(event.reason)
                if isinstance(event, ev.StreamClosed):
                    raise ConnectionLost("the server closed the stream during the handshake")

    def _gives_up(self, error: BaseException) -> bool:
        if isinstance(error, StreamError):
            return error.condition in _FINAL
        return super()._gives_up(error)
