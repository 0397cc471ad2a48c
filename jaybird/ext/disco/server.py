"""Service discovery of the server and, on their behalf, of its accounts (XEP-0030); the server's XEP-0115 hash.

The server's info is derived from what modules registered on the host (``host.features()``,
``host.identities()``), so it cannot drift from what is loaded. Items of the server are the core's
(``host.items()``: external components) and those other modules (MUC, upload services) register through
:meth:`DiscoModule.add_item`.

An account's bare JID is answered by the server (XEP-0030 §2) for its owner and for contacts subscribed to its
presence; anyone else gets ``service-unavailable``, so that discovery does not reveal more than presence would.
disco#items of an account is left to the core's default (a PEP module may take it).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, ClassVar

from jaybird import ns
from jaybird.errors import StanzaError, StanzaErrorCondition
from jaybird.ext.disco.access import may_see_presence
from jaybird.ext.disco.caps import NAME as CAPS_NAME
from jaybird.ext.disco.caps import Caps, caps_ver
from jaybird.ext.disco.wire import INFO, ITEMS, DiscoIdentity, DiscoInfo, DiscoItem, DiscoItems
from jaybird.server.api import Host, Identity, IqRequest, IqScope, ServerModule
from jaybird.server.hooks import Registration
from jaybird.stanza import IqType
from jaybird.stream.feature import StreamFeature
from jaybird.xml.element import Element

if TYPE_CHECKING:
    from jaybird.server.config import ModuleOptions

#: XEP-0115 §4: a URI naming the software; ``<node>#<ver>`` is then a disco#info node (§6.2).
DEFAULT_CAPS_NODE = "urn:xmpp:jaybird:server"
SERVER_IDENTITY = Identity("server", "im", "jaybird")
ACCOUNT_IDENTITY = DiscoIdentity("account", "registered")


def _wire(identity: Identity) -> DiscoIdentity:
    return DiscoIdentity(identity.category, identity.type, identity.name, identity.lang)


class DiscoModule(ServerModule):
    name: ClassVar[str] = "disco"
    implements: ClassVar[tuple[str, ...]] = ("XEP-0030", "XEP-0115")

    def __init__(self, host: Host, options: ModuleOptions) -> None:
        super().__init__(host, options)
        self.caps_node = DEFAULT_CAPS_NODE
        self._items: list[DiscoItem] = []
        # (features, identities) -> ver: the hash is computed again only when what it covers changed.
        self._caps_key: tuple[frozenset[str], tuple[Identity, ...]] | None = None
        self._caps_ver = ""
        self._caps_element: Element | None = None

    async def load(self) -> None:
        self.caps_node = self.options.get_str("caps_node", DEFAULT_CAPS_NODE)
        self.identity(SERVER_IDENTITY)
        self.feature(ns.DISCO_INFO)
        self.feature(ns.DISCO_ITEMS)
        self.account_feature(ns.DISCO_INFO)
        self.iq(IqType.GET, INFO, self._server_info, scope=IqScope.HOST)
        self.iq(IqType.GET, ITEMS, self._server_items, scope=IqScope.HOST)
        self.iq(IqType.GET, INFO, self._account_info, scope=IqScope.ACCOUNT)
        # XEP-0115 §6.3: the server's own capabilities in its stream features (the ver follows loaded modules).
        self.stream_feature(StreamFeature(name=CAPS_NAME, advertise=lambda ctx: self.caps_element()))

    # -- API for other modules ----------------------------------------------------------------------------------
    def add_item(self, item: DiscoItem) -> Registration:
        """List ``item`` in the server's disco#items (XEP-0030 §4); cancel the registration to remove it."""
        self._items.append(item)

        def cancel() -> None:
            if item in self._items:
                self._items.remove(item)

        return Registration(f"disco item {item.jid}", cancel)

    def server_info(self, node: str | None = None) -> DiscoInfo:
        """What the server's disco#info says (identities deduplicated and sorted, features sorted)."""
        identities = sorted({_wire(i) for i in self.host.identities()}, key=lambda i: (i.category, i.type))
        return DiscoInfo(node=node, identities=tuple(identities), features=tuple(sorted(self.host.features())))

    def caps_ver(self) -> str:
        """The XEP-0115 ``ver`` of the server's current disco#info (changes when modules load or unload)."""
        key = (self.host.features(), tuple(self.host.identities()))
        if key != self._caps_key:
            info = self.server_info()
            self._caps_key, self._caps_ver = key, caps_ver(info.identities, info.features, info.forms)
            self._caps_element = None
        return self._caps_ver

    def caps_element(self) -> Element:
        """``<c xmlns='http://jabber.org/protocol/caps'/>`` for the server's stream features (XEP-0115 §6.3)."""
        ver = self.caps_ver()
        if self._caps_element is None:  # shared by every stream until the ver changes (never modified)
            self._caps_element = Caps(node=self.caps_node, ver=ver).to_element()
        return self._caps_element

    # -- handlers -------------------------------------------------------------------------------------------------
    def _server_info(self, request: IqRequest) -> DiscoInfo:
        node = DiscoInfo.from_element(_query(request)).node
        if node is not None and node != f"{self.caps_node}#{self.caps_ver()}":
            raise StanzaError(StanzaErrorCondition.ITEM_NOT_FOUND, text=f"no node {node!r}")
        return self.server_info(node)

    def _server_items(self, request: IqRequest) -> DiscoItems:
        node = DiscoItems.from_element(_query(request)).node
        if node is not None:
            raise StanzaError(StanzaErrorCondition.ITEM_NOT_FOUND, text=f"no node {node!r}")
        # The core's items (external components) first, then those other modules added here.
        core = tuple(DiscoItem(str(item.jid), name=item.name) for item in self.host.items())
        return DiscoItems(items=core + tuple(self._items))

    async def _account_info(self, request: IqRequest) -> DiscoInfo:
        if not await may_see_presence(self.host, request.to, request.sender):
            raise StanzaError(StanzaErrorCondition.SERVICE_UNAVAILABLE)
        node = DiscoInfo.from_element(_query(request)).node
        if node is not None:
            raise StanzaError(StanzaErrorCondition.ITEM_NOT_FOUND, text=f"no node {node!r}")
        features = tuple(sorted(self.host.account_features()))
        return DiscoInfo(identities=(ACCOUNT_IDENTITY,), features=features)


def _query(request: IqRequest) -> Element:
    payload = request.iq.payload
    assert payload is not None, "the core dispatches on the payload"
    return payload
