"""The HTTP listener: an aiohttp application serving BOSH, WebSocket and host-meta, started inside the server.

Security of plain HTTP: a WebSocket or BOSH stream counts as encrypted when the request came over HTTPS, from a
loopback address (where a TLS-terminating reverse proxy connects from; ``loopback_is_secure = false`` turns that
off), or when ``consider_secure`` says a proxy in front always terminates TLS. An unencrypted one from elsewhere
is refused while ``tls.require_c2s`` is set; without that setting it is served, and only the mechanisms safe
without TLS (SCRAM, not PLAIN) are offered.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import ssl
from collections.abc import Sequence
from typing import Final

from aiohttp import web

from jaybird.errors import StreamError
from jaybird.server.c2s import C2SConnection, C2SContext, C2STransport, is_loopback
from jaybird.server.config import ALL_INTERFACES, HTTPListenerConfig
from jaybird.server.http.bosh import BoshLimits, BoshManager, BoshSession, Condition, terminate_body
from jaybird.server.http.hostmeta import endpoints, host_meta_json, host_meta_xml
from jaybird.server.http.websocket import SUBPROTOCOL, WebSocketTransport, offers_xmpp
from jaybird.server.shutdown import close_and_wait

__all__ = ["HTTPListener"]

log = logging.getLogger("jaybird.server.http")

_XML: Final = "text/xml; charset=utf-8"
#: How often inactive BOSH sessions are looked for.
_SWEEP_S: Final = 1.0
#: How long stopping waits for HTTP handlers still running.
_SHUTDOWN_S: Final = 2.0


class HTTPListener:
    """Serves ``listeners.http``: plain HTTP on ``port``, HTTPS on ``tls_port`` (the hosts' certificates)."""

    def __init__(self, context: C2SContext) -> None:
        self._ctx = context
        self._config: HTTPListenerConfig = context.config.listeners.http
        config = self._config
        self.bosh = BoshManager(
            BoshLimits(
                max_wait=config.bosh_max_wait_s,
                max_hold=config.bosh_max_hold,
                inactivity=config.bosh_inactivity_s,
                max_pause=config.bosh_max_pause_s,
                max_request_bytes=config.max_request_bytes,
            ),
            domains=lambda: self._ctx.hosts,
        )
        self.connections: set[C2SConnection] = set()
        self._per_ip: collections.Counter[str] = collections.Counter()
        self._tasks: set[asyncio.Task[None]] = set()
        self._runner: web.AppRunner | None = None
        self._sweeper: asyncio.Task[None] | None = None
        self._accepting = False

    @property
    def addresses(self) -> list[tuple[str, int]]:
        if self._runner is None:
            return []
        return [(str(a[0]), int(a[1])) for a in self._runner.addresses]

    # -- lifecycle ------------------------------------------------------------------------------------------------
    async def start(self) -> None:
        config = self._config
        app = web.Application(client_max_size=config.max_request_bytes)
        app.router.add_route("POST", config.bosh_path, self._bosh_post)
        app.router.add_route("OPTIONS", config.bosh_path, self._preflight)
        app.router.add_route("GET", config.bosh_path, self._bosh_get)
        app.router.add_route("GET", config.websocket_path, self._websocket)
        app.router.add_route("GET", "/.well-known/host-meta", self._host_meta)
        app.router.add_route("GET", "/.well-known/host-meta.json", self._host_meta)
        app.router.add_route("OPTIONS", "/.well-known/host-meta", self._preflight)
        app.router.add_route("OPTIONS", "/.well-known/host-meta.json", self._preflight)
        runner = web.AppRunner(app, handle_signals=False, access_log=None, shutdown_timeout=_SHUTDOWN_S)
        await runner.setup()
        self._runner = runner
        try:
            for interface in config.interfaces:
                await self._site(interface, config.port, None)
                await self._site(interface, config.tls_port, self._ctx.tls.starttls_context)
        except BaseException:
            await self.stop_accepting()
            raise
        self._accepting = True
        self._sweeper = asyncio.create_task(self._sweep(), name="BOSH inactivity sweeper")
        for host, port in self.addresses:
            log.info(
                "listening for HTTP (BOSH %s, WebSocket %s) on %s port %d",
                config.bosh_path,
                config.websocket_path,
                host,
                port,
            )

    async def _site(self, interface: str, port: int, ssl_context: ssl.SSLContext | None) -> None:
        assert self._runner is not None
        site = web.TCPSite(self._runner, interface, port, ssl_context=ssl_context, reuse_address=True)
        try:
            await site.start()
        except OSError as exc:
            if interface in ALL_INTERFACES and interface != ALL_INTERFACES[0]:
                log.warning("not listening for HTTP on %s port %d: %s", interface, port, exc.strerror)
                return
            raise OSError(exc.errno, f"cannot listen on {interface} port {port}: {exc.strerror}") from exc

    async def stop_accepting(self) -> None:
        self._accepting = False
        if self._sweeper is not None:
            self._sweeper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._sweeper
            self._sweeper = None

    async def close_all(self, error: StreamError, timeout: float) -> None:
        """Close every stream with ``error``, wait (at most ``timeout``) for them to end, then stop HTTP."""
        await close_and_wait(self.connections, self._tasks, error, timeout)
        for session in list(self.bosh.sessions.values()):
            session.fail(Condition.SYSTEM_SHUTDOWN)
        runner, self._runner = self._runner, None
        if runner is not None:
            await runner.cleanup()

    async def _sweep(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            await asyncio.sleep(_SWEEP_S)
            self.bosh.sweep(loop.time())

    # -- admission ------------------------------------------------------------------------------------------------
    def _secure(self, request: web.Request) -> bool:
        config = self._config
        loopback = config.loopback_is_secure and is_loopback(request.remote or "")
        return request.secure or config.consider_secure or loopback

    def _refusal(self, request: web.Request) -> str | None:
        """Why a new stream from this request may not start, if it may not."""
        ip = request.remote or "unknown"
        if not self._accepting:
            return "the server is shutting down"
        if not self._secure(request) and self._ctx.config.tls.require_c2s:
            return "encryption required: use https:// or wss://"
        if len(self.connections) >= self._config.max_sessions:
            return "too many sessions"
        if self._per_ip[ip] >= self._ctx.config.limits.max_connections_per_ip:
            return f"too many sessions from {ip}"
        return None

    async def _serve(self, transport: C2STransport, ip: str) -> None:
        connection = C2SConnection(self._ctx, transport=transport)
        self._per_ip[ip] += 1
        self.connections.add(connection)
        try:
            await connection.run()
        finally:
            self.connections.discard(connection)
            self._per_ip[ip] -= 1
            if self._per_ip[ip] <= 0:
                del self._per_ip[ip]

    # -- CORS ------------------------------------------------------------------------------------------------
    def _cors(self, request: web.Request) -> dict[str, str]:
        allowed = self._config.cors_origins
        origin = request.headers.get("Origin")
        if "*" in allowed:
            value = "*"
        elif origin is not None and origin in allowed:
            value = origin
        else:
            return {}
        return {
            "Access-Control-Allow-Origin": value,
            "Access-Control-Allow-Methods": "GET, POST, OPTIONS",
            "Access-Control-Allow-Headers": "Content-Type",
            "Access-Control-Max-Age": "86400",
            "Vary": "Origin",
        }

    async def _preflight(self, request: web.Request) -> web.Response:
        return web.Response(status=200, headers=self._cors(request))

    # -- BOSH ------------------------------------------------------------------------------------------------
    async def _bosh_get(self, request: web.Request) -> web.Response:
        return web.Response(
            status=405,
            text="BOSH (XEP-0206): POST a <body/>\n",
            headers={"Allow": "POST, OPTIONS", **self._cors(request)},
        )

    async def _bosh_post(self, request: web.Request) -> web.Response:
        headers = self._cors(request)
        limit = self._config.max_request_bytes
        raw = await _read_at_most(request, limit)
        if raw is None:
            return web.Response(
                status=413,
                body=terminate_body(Condition.POLICY_VIOLATION),
                content_type=None,
                headers={"Content-Type": _XML, **headers},
            )
        body = self.bosh.parse(raw)
        if body is None:
            return web.Response(
                status=400, body=terminate_body(Condition.BAD_REQUEST), headers={"Content-Type": _XML, **headers}
            )
        peer = _peer(request)
        answer = await self.bosh.handle(
            body, raw, peer=peer, secure=self._secure(request), admit=lambda s: self._start_bosh(s, request)
        )
        return web.Response(status=200, body=answer, headers={"Content-Type": _XML, **headers})

    def _start_bosh(self, session: BoshSession, request: web.Request) -> str | None:
        refusal = self._refusal(request)
        if refusal is not None:
            return refusal
        task = asyncio.create_task(self._serve(session, request.remote or "unknown"), name=f"BOSH {session.sid}")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return None

    # -- WebSocket ------------------------------------------------------------------------------------------------
    async def _websocket(self, request: web.Request) -> web.StreamResponse:
        if not offers_xmpp(request):
            # RFC 7395 §3.2: the 'xmpp' subprotocol is not optional.
            return web.Response(status=400, text="the WebSocket subprotocol 'xmpp' is required (RFC 7395)\n")
        refusal = self._refusal(request)
        if refusal is not None:
            log.warning("WebSocket from %s refused: %s", request.remote, refusal)
            return web.Response(status=403 if "encryption" in refusal else 503, text=refusal + "\n")
        ws = web.WebSocketResponse(
            protocols=(SUBPROTOCOL,), max_msg_size=self._config.max_request_bytes, autoclose=False
        )
        await ws.prepare(request)
        ssl_object = request.transport.get_extra_info("ssl_object") if request.transport is not None else None
        transport = WebSocketTransport(
            ws,
            peer=_peer(request),
            secure=self._secure(request),
            ssl_object=ssl_object if isinstance(ssl_object, ssl.SSLObject) else None,
            max_bytes=self._config.max_request_bytes,
            redirect=self._config.websocket_redirect,
        )
        task = asyncio.current_task()
        if task is not None:
            self._tasks.add(task)
        try:
            await self._serve(transport, request.remote or "unknown")
        finally:
            if task is not None:
                self._tasks.discard(task)
        return ws

    # -- host-meta ------------------------------------------------------------------------------------------------
    async def _host_meta(self, request: web.Request) -> web.Response:
        config = self._config
        links = endpoints(
            secure=request.secure,
            authority=request.host,
            bosh_path=config.bosh_path,
            websocket_path=config.websocket_path,
        )
        headers = self._cors(request)
        if request.path.endswith(".json"):
            return web.Response(body=host_meta_json(links), content_type="application/json", headers=headers)
        return web.Response(body=host_meta_xml(links), content_type="application/xrd+xml", headers=headers)


def _peer(request: web.Request) -> tuple[str, int] | None:
    peer = request.transport.get_extra_info("peername") if request.transport is not None else None
    if isinstance(peer, Sequence) and len(peer) >= 2:
        return (str(peer[0]), int(peer[1]))
    return None


async def _read_at_most(request: web.Request, limit: int) -> bytes | None:
    """The request body, or None when it is larger than ``limit`` (what was read so far is dropped)."""
    if request.content_length is not None and request.content_length > limit:
        return None
    chunks: list[bytes] = []
    size = 0
    while chunk := await request.content.read(64 * 1024):
        size += len(chunk)
        if size > limit:
            return None
        chunks.append(chunk)
    return b"".join(chunks)
