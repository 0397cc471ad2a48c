"""An in-memory host for module tests: the real VirtualHost and Router over memory storage, with sessions
that record what they are sent instead of writing to a socket (no network, no stream machine)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, TypeVar

from jaybird.errors import StreamError
from jaybird.jid import JID
from jaybird.server.api import Host, ServerModule, Session
from jaybird.server.auth import add_user
from jaybird.server.config import HostConfig, ModuleOptions, RegistrationConfig, ServerConfig, ThrottleConfig
from jaybird.server.host import VirtualHost
from jaybird.server.router import Router
from jaybird.server.storage import open_storage
from jaybird.stanza import Iq, Message, Presence, Stanza, wrap
from jaybird.xml.element import Element

DOMAIN = "example.test"
M = TypeVar("M", bound=ServerModule)


class RecordingSession:
    """A bound session (the Session protocol) whose outgoing stanzas land in ``sent``."""

    def __init__(self, host: Host, jid: JID) -> None:
        self._host = host
        self._jid = jid
        self.available = False
        self.interested = False
        self.priority = 0
        self.presence: Presence | None = None
        self.data: dict[type[Any], Any] = {}
        self.last_received = 0.0
        self.sent: list[Message | Presence | Iq] = []
        self.closed: StreamError | None = None
        self.is_closed = False

    @property
    def jid(self) -> JID:
        return self._jid

    @property
    def host(self) -> Host:
        return self._host

    async def send(self, stanza: Stanza | Element) -> None:
        if not self.is_closed:
            self.sent.append(wrap(stanza.element if isinstance(stanza, Stanza) else stanza))

    @property
    def closing(self) -> bool:
        return self.is_closed

    def close(self, error: StreamError | None = None) -> None:
        self.is_closed = True
        self.closed = error

    def take(self) -> list[Message | Presence | Iq]:
        sent, self.sent = self.sent, []
        return sent


@dataclass
class World:
    host: VirtualHost
    router: Router
    modules: list[ServerModule] = field(default_factory=list)

    async def load(self, cls: type[M], options: dict[str, object] | None = None) -> M:
        module = cls(self.host, ModuleOptions(cls.name, options or {}))
        await module.load()
        self.modules.append(module)
        return module

    async def account(self, local: str, password: str = "secret-password") -> JID:
        jid = JID.from_parts(local, DOMAIN)
        await add_user(self.host.storage, jid, password, iterations=4096)
        return jid

    def connect(self, jid: JID, resource: str = "res", *, available: bool = False) -> RecordingSession:
        session = RecordingSession(self.host, jid.with_resource(resource))
        session.available = available
        self.host.sessions.add(session)
        return session

    async def send(self, session: RecordingSession, stanza: Message | Presence | Iq) -> None:
        """As the c2s driver does with a stanza the client sent."""
        await self.router.from_client(session, stanza)

    async def iq(self, session: RecordingSession, iq: Iq) -> Iq:
        """Send an IQ request and return the reply the session got for it."""
        await self.send(session, iq)
        for index, stanza in enumerate(session.sent):
            if isinstance(stanza, Iq) and stanza.id == iq.id and not stanza.is_request:
                del session.sent[index]
                return stanza
        raise AssertionError(f"no reply to {iq.id}; the session got {session.sent}")


async def make_world(*, registration: bool = False) -> World:
    host_config = HostConfig(
        domain=DOMAIN,
        registration=RegistrationConfig(enabled=registration, throttle=ThrottleConfig(limit=2, period_s=60.0)),
    )
    config = ServerConfig(hosts=(host_config,))
    storage = await open_storage("memory://")
    hosts: dict[str, VirtualHost] = {}
    router = Router(hosts)

    async def route(stanza: Message | Presence | Iq, origin: Session | None) -> None:
        await router.route(stanza, origin)

    hosts[DOMAIN] = VirtualHost(host_config, config, storage, route)
    return World(hosts[DOMAIN], router)
