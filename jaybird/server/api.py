"""The contract between the server core and its modules.

A module (``jaybird/ext/<protocol>/server.py``) subclasses :class:`ServerModule`, is loaded once per virtual host,
and meets the core only through the :class:`Host` it is given: typed hooks (:mod:`jaybird.server.events`), IQ
handlers by type and payload, disco features and identities, storage, and the session registry. Everything a
module registers through its own helpers (:meth:`ServerModule.on`, :meth:`ServerModule.iq`,
:meth:`ServerModule.feature`, ...) is removed when it unloads.

Modules are found by entry point (group ``jaybird.server_modules``), so the core never imports one by name.
"""

from __future__ import annotations

import enum
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar, Protocol, TypeVar

from jaybird.errors import StreamError
from jaybird.jid import JID
from jaybird.server.hooks import Handler, HookBus, Registration
from jaybird.stanza import Iq, IqType, Message, Payload, Presence, Stanza
from jaybird.stream.feature import StreamFeature
from jaybird.xml.element import Element

if TYPE_CHECKING:
    from jaybird.server.config import HostConfig, ModuleOptions, ServerConfig
    from jaybird.server.storage import Storage

__all__ = [
    "ENTRY_POINT_GROUP",
    "Host",
    "Identity",
    "IqHandler",
    "IqRequest",
    "IqScope",
    "ServerModule",
    "ServiceItem",
    "Session",
    "SessionRegistry",
]

ENTRY_POINT_GROUP = "jaybird.server_modules"

E = TypeVar("E")
M = TypeVar("M", bound="ServerModule")


class Session(Protocol):
    """A bound client session, as modules see it (the c2s driver implements it)."""

    @property
    def jid(self) -> JID:
        """The full JID bound to the session."""

    @property
    def host(self) -> Host: ...

    #: Sent available presence and not yet unavailable (RFC 6121 §4.2 "available resource").
    available: bool
    #: Requested the roster (RFC 6121 §2.1.1 "interested resource").
    interested: bool
    #: The priority of its last available presence (RFC 6121 §4.7.2.3).
    priority: int
    #: Its last available presence broadcast (RFC 6121 §4.4.2), for probes and new subscribers.
    presence: Presence | None
    #: Per-module state, keyed by the module class (e.g. carbons enabled, CSI state).
    data: dict[type[Any], Any]
    #: ``time.monotonic()`` when data last came from the client (any bytes, whitespace keepalives too): the
    #: ping module (XEP-0199 §4.2) pings a session silent for ``limits.ping_interval_s`` and closes it with
    #: ``connection-timeout`` when the ping goes unanswered.
    last_received: float

    async def send(self, stanza: Stanza | Element) -> None:
        """Queue a stanza for the client (one writer per connection; ordered)."""

    def close(self, error: StreamError | None = None) -> None:
        """End the session (with a stream error if given)."""

    @property
    def closing(self) -> bool:
        """``close()`` was called or the connection is ending: the session takes no more stanzas."""


class SessionRegistry(Protocol):
    """The bound sessions of one host."""

    def of(self, bare: JID) -> Sequence[Session]:
        """Every session of an account (any availability)."""

    def get(self, full: JID) -> Session | None: ...

    def all(self) -> Sequence[Session]: ...


class IqScope(enum.Enum):
    """Which IQ requests a handler takes (RFC 6120 §10.3)."""

    #: Addressed to the server's domain (``to='example.com'``): version, time, ping, disco of the server.
    HOST = "host"
    #: Addressed to a local account's bare JID, or without ``to`` (then on behalf of the sender's own
    #: account, RFC 6120 §10.3.3): roster, vCard, private storage, blocking, PEP.
    ACCOUNT = "account"


@dataclass(frozen=True, slots=True)
class IqRequest:
    """An IQ get/set for a handler. ``to`` is the bare account JID (ACCOUNT) or the domain (HOST); ``origin`` is
    the local session that sent it, or None when it came from elsewhere (s2s, a component)."""

    iq: Iq
    to: JID
    origin: Session | None

    @property
    def sender(self) -> JID:
        """The stamped ``from`` of the request."""
        sender = self.iq.from_
        assert sender is not None, "the router stamps 'from' before handlers run"
        return sender


#: Returns the result payload (an element, a payload value, or None for an empty result) or raises StanzaError.
IqHandler = Callable[[IqRequest], Awaitable[Element | Payload | None] | Element | Payload | None]


@dataclass(frozen=True, slots=True)
class Identity:
    """A XEP-0030 identity."""

    category: str
    type: str
    name: str | None = None
    lang: str | None = None


@dataclass(frozen=True, slots=True)
class ServiceItem:
    """A service the server lists in its disco#items (XEP-0030 §4), registered by the core (an external
    component, XEP-0114) or by a module; the disco module answers with them."""

    jid: JID
    name: str | None = None


class Host(Protocol):
    """One virtual host, as its modules see it."""

    @property
    def domain(self) -> str: ...

    @property
    def jid(self) -> JID: ...

    @property
    def config(self) -> HostConfig: ...

    @property
    def server_config(self) -> ServerConfig: ...

    @property
    def storage(self) -> Storage: ...

    @property
    def hooks(self) -> HookBus: ...

    @property
    def sessions(self) -> SessionRegistry: ...

    async def route(self, stanza: Message | Presence | Iq, *, origin: Session | None = None) -> None:
        """Route a stanza whose ``from`` is already right (the server speaking for an account or itself)."""

    async def account_exists(self, account: JID) -> bool: ...

    def register_iq(self, type: IqType, payload: str, handler: IqHandler, *, scope: IqScope) -> Registration:
        """Take IQ ``type`` requests whose child is ``payload`` (Clark name). Twice for one pattern: ValueError."""

    def add_feature(self, var: str) -> Registration:
        """Advertise a disco#info feature of the server (XEP-0030)."""

    def add_account_feature(self, var: str) -> Registration:
        """Advertise a disco#info feature of every account's bare JID (e.g. PEP, XEP-0163 §9)."""

    def add_identity(self, identity: Identity) -> Registration: ...

    def add_item(self, item: ServiceItem) -> Registration:
        """List a service in the server's disco#items (XEP-0030 §4) until the registration is cancelled."""

    def items(self) -> Sequence[ServiceItem]: ...

    def add_stream_feature(self, feature: StreamFeature) -> Registration:
        """Advertise (and negotiate, if it accepts elements) a stream feature on client streams to this host,
        after the core's own (STARTTLS, SASL, bind, session): roster versioning, pre-approval, caps."""

    def stream_features(self) -> Sequence[StreamFeature]: ...

    def features(self) -> frozenset[str]: ...

    def account_features(self) -> frozenset[str]: ...

    def identities(self) -> Sequence[Identity]: ...

    def module(self, cls: type[M]) -> M | None:
        """The loaded instance of a module class on this host, if any."""


class ServerModule:
    """Base class of server modules: one instance per host; every registration is undone on unload."""

    #: The name in the config's ``modules.enabled`` list and the entry point name.
    name: ClassVar[str]
    #: The specifications it implements, e.g. ``("RFC 6121 §2", "XEP-0237")``.
    implements: ClassVar[tuple[str, ...]] = ()
    #: Modules this one needs loaded first (by class: no lookup by name).
    requires: ClassVar[tuple[type[ServerModule], ...]] = ()

    def __init__(self, host: Host, options: ModuleOptions) -> None:
        self.host = host
        self.options = options
        self._registrations: list[Registration] = []

    # -- registration helpers: everything added through them is removed by unload() ----------------------------
    def on(self, event: type[E], handler: Handler[E], *, priority: int = 0) -> Registration:
        return self._keep(self.host.hooks.on(event, handler, priority=priority))

    def iq(self, type: IqType, payload: str, handler: IqHandler, *, scope: IqScope) -> Registration:
        return self._keep(self.host.register_iq(type, payload, handler, scope=scope))

    def feature(self, var: str) -> Registration:
        return self._keep(self.host.add_feature(var))

    def account_feature(self, var: str) -> Registration:
        return self._keep(self.host.add_account_feature(var))

    def identity(self, identity: Identity) -> Registration:
        return self._keep(self.host.add_identity(identity))

    def stream_feature(self, feature: StreamFeature) -> Registration:
        return self._keep(self.host.add_stream_feature(feature))

    def _keep(self, registration: Registration) -> Registration:
        self._registrations.append(registration)
        return registration

    # -- lifecycle ------------------------------------------------------------------------------------------------
    async def load(self) -> None:
        """Register hooks and handlers. Read options here so unknown ones are reported at start-up."""

    async def unload(self) -> None:
        """Undo every registration (subclasses that override call ``await super().unload()``)."""
        for registration in reversed(self._registrations):
            registration.cancel()
        self._registrations.clear()
