"""One virtual host: the :class:`~jaybird.server.api.Host` its modules see.

It holds the registries modules fill (IQ handlers, disco features and identities, hooks) and the sessions bound
to its domain; routing itself is the router's, reached through :meth:`VirtualHost.route`.
"""

from __future__ import annotations

import collections
import dataclasses
from collections.abc import Awaitable, Callable, Iterable, Sequence
from typing import TYPE_CHECKING, TypeVar

from jaybird.jid import JID
from jaybird.server.api import Identity, IqHandler, IqScope, ServerModule, ServiceItem, Session
from jaybird.server.hooks import HookBus, Registration
from jaybird.server.sessions import SessionRegistry
from jaybird.stanza import Iq, IqType, Message, Presence
from jaybird.stream.feature import NegotiationContext, StreamFeature
from jaybird.stream.features import default_features
from jaybird.stream.state import StreamKind
from jaybird.xml.element import Element

if TYPE_CHECKING:
    from jaybird.server.config import HostConfig, ServerConfig
    from jaybird.server.storage import Storage

__all__ = ["RouteFunction", "VirtualHost"]

M = TypeVar("M", bound=ServerModule)
RouteFunction = Callable[[Message | Presence | Iq, Session | None], Awaitable[None]]


class VirtualHost:
    def __init__(self, config: HostConfig, server_config: ServerConfig, storage: Storage, route: RouteFunction) -> None:
        self._config = config
        self._server_config = server_config
        self._storage = storage
        self._route = route
        self._jid = JID(config.domain)
        self._hooks = HookBus()
        self._sessions: SessionRegistry[Session] = SessionRegistry()
        self._iq: dict[tuple[IqType, str, IqScope], IqHandler] = {}
        # Counted: two modules may advertise the same feature; it stays until both are gone.
        self._features: collections.Counter[str] = collections.Counter()
        self._account_features: collections.Counter[str] = collections.Counter()
        self._identities: list[Identity] = []
        self._items: list[ServiceItem] = []
        self._stream_features: list[StreamFeature] = []
        self._client_features: tuple[StreamFeature, ...] | None = None  # built once, dropped on any change
        self._modules: dict[type[ServerModule], ServerModule] = {}

    # -- what the Host protocol exposes ---------------------------------------------------------------------------
    @property
    def domain(self) -> str:
        return self._config.domain

    @property
    def jid(self) -> JID:
        return self._jid

    @property
    def config(self) -> HostConfig:
        return self._config

    @property
    def server_config(self) -> ServerConfig:
        return self._server_config

    @property
    def storage(self) -> Storage:
        return self._storage

    @property
    def hooks(self) -> HookBus:
        return self._hooks

    @property
    def sessions(self) -> SessionRegistry[Session]:
        return self._sessions

    async def route(self, stanza: Message | Presence | Iq, *, origin: Session | None = None) -> None:
        await self._route(stanza, origin)

    async def account_exists(self, account: JID) -> bool:
        if account.local is None or account.domain != self.domain:
            return False
        if any(not session.closing for session in self._sessions.of(account.bare)):
            return True  # a live session proves it, and spares storage a query on every stanza routed to it
        return await self._storage.accounts.get(account.local, account.domain) is not None

    def register_iq(self, type: IqType, payload: str, handler: IqHandler, *, scope: IqScope) -> Registration:
        if type not in (IqType.GET, IqType.SET):
            raise ValueError(f"only get and set requests have handlers, not {type.value}")
        key = (type, payload, scope)
        if key in self._iq:
            raise ValueError(f"an IQ handler for {type.value} {payload} ({scope.value}) is already registered")
        self._iq[key] = handler

        def cancel() -> None:
            if self._iq.get(key) is handler:
                del self._iq[key]

        return Registration(f"iq {type.value} {payload} ({scope.value})", cancel)

    def iq_handler(self, type: IqType, payload: str, scope: IqScope) -> IqHandler | None:
        return self._iq.get((type, payload, scope))

    def add_feature(self, var: str) -> Registration:
        return self._count(self._features, var, "feature")

    def add_account_feature(self, var: str) -> Registration:
        return self._count(self._account_features, var, "account feature")

    @staticmethod
    def _count(counter: collections.Counter[str], var: str, what: str) -> Registration:
        counter[var] += 1

        def cancel() -> None:
            counter[var] -= 1
            if counter[var] <= 0:
                del counter[var]

        return Registration(f"{what} {var}", cancel)

    def add_identity(self, identity: Identity) -> Registration:
        self._identities.append(identity)
        return Registration(f"identity {identity.category}/{identity.type}", lambda: self._identities.remove(identity))

    def add_item(self, item: ServiceItem) -> Registration:
        self._items.append(item)
        return Registration(f"disco item {item.jid}", lambda: self._items.remove(item))

    def items(self) -> Sequence[ServiceItem]:
        return tuple(self._items)

    def add_stream_feature(self, feature: StreamFeature) -> Registration:
        if any(known.name == feature.name for known in self._stream_features):
            raise ValueError(f"the stream feature {feature.name} is registered already on {self.domain}")
        self._stream_features.append(feature)
        self._client_features = None

        def remove() -> None:
            self._stream_features.remove(feature)
            self._client_features = None

        return Registration(f"stream feature {feature.name}", remove)

    def stream_features(self) -> Sequence[StreamFeature]:
        return tuple(self._stream_features)

    def client_features(self) -> tuple[StreamFeature, ...]:
        """This host's module features as a client stream sees them: advertised only on a stream addressed
        here. The same objects for every connection until a module adds or removes one."""
        if self._client_features is None:
            self._client_features = tuple(_for_domain(f, self.domain) for f in self._stream_features)
        return self._client_features

    def features(self) -> frozenset[str]:
        return frozenset(self._features)

    def account_features(self) -> frozenset[str]:
        return frozenset(self._account_features)

    def identities(self) -> Sequence[Identity]:
        return tuple(self._identities)

    def module(self, cls: type[M]) -> M | None:
        instance = self._modules.get(cls)
        return instance if isinstance(instance, cls) else None

    # -- for the module loader ------------------------------------------------------------------------------------
    def attach_module(self, instance: ServerModule) -> None:
        self._modules[type(instance)] = instance

    def detach_module(self, instance: ServerModule) -> None:
        self._modules.pop(type(instance), None)

    @property
    def loaded_modules(self) -> Sequence[ServerModule]:
        return tuple(self._modules.values())


def client_stream_features(hosts: Iterable[VirtualHost]) -> tuple[StreamFeature, ...]:
    """The features of a new client stream: the core's, then every host's module features, each advertised only
    on a stream addressed to its host (the machine learns the host from the stream header's ``to``)."""
    parts = tuple(host.client_features() for host in hosts)
    # Every connection asks; the answer changes only when a host's features do (the host makes a new tuple).
    # The last answer keeps its parts alive, so the same objects mean the same answer.
    if _last_features:
        known, result = _last_features[0]
        if len(known) == len(parts) and all(a is b for a, b in zip(known, parts, strict=True)):
            return result
    features = list(default_features(StreamKind.C2S))
    for part in parts:
        features += part
    result = tuple(features)
    _last_features[:] = [(parts, result)]
    return result


_last_features: list[tuple[tuple[tuple[StreamFeature, ...], ...], tuple[StreamFeature, ...]]] = []


def _for_domain(feature: StreamFeature, domain: str) -> StreamFeature:
    advertise = feature.advertise

    def only_here(ctx: NegotiationContext) -> Element | None:
        return advertise(ctx) if ctx.domain == domain else None

    return dataclasses.replace(feature, advertise=only_here)
