"""Private XML storage on the server (XEP-0049): fragments in the map store (``private``), one entry per
fragment, keyed by its qualified name (Clark notation).

Errors, as XEP-0049 §2.3 and §3 give them: a request for another user's data is ``forbidden``; a query
without a fragment is ``not-acceptable`` (the §2.3 MUST; its table's "Bad Format" for an empty get has no
RFC 6120 condition); a fragment in a reserved namespace (``jabber:*``, ``http://jabber.org/*``,
``vcard-temp``) or in none is ``not-acceptable``; fragments of more than one namespace in one query are
``bad-request`` (a get names one namespace; a set "MAY contain multiple elements qualified by the same
namespace"). A fragment never stored comes back empty, as the client asked for it.
"""

from __future__ import annotations

from typing import ClassVar, Final

from jaybird.errors import StanzaError, StanzaErrorCondition
from jaybird.ext.private.wire import NAME, PrivateQuery, element_from_xml, element_to_xml, is_reserved
from jaybird.server.api import IqRequest, IqScope, ServerModule
from jaybird.server.events import AccountRemoved
from jaybird.stanza import IqType
from jaybird.xml.element import Element

__all__ = ["DEFAULT_MAX_BYTES", "STORE", "PrivateModule"]

STORE: Final = "private"
DEFAULT_MAX_BYTES: Final = 256 * 1024


class PrivateModule(ServerModule):
    name: ClassVar[str] = "private"
    implements: ClassVar[tuple[str, ...]] = ("XEP-0049",)

    max_bytes: int = DEFAULT_MAX_BYTES

    async def load(self) -> None:
        self.max_bytes = self.options.get_int("max_bytes", DEFAULT_MAX_BYTES, minimum=1)
        self.iq(IqType.GET, NAME, self._get, scope=IqScope.ACCOUNT)
        self.iq(IqType.SET, NAME, self._set, scope=IqScope.ACCOUNT)
        self.on(AccountRemoved, self._forget)

    def _fragments(self, request: IqRequest) -> tuple[Element, ...]:
        if request.sender.bare != request.to.bare:
            raise StanzaError(StanzaErrorCondition.FORBIDDEN, text="private XML belongs to its owner only")
        payload = request.iq.payload
        assert payload is not None, "the core dispatched on this payload"
        items = PrivateQuery.from_element(payload).items
        if not items:
            raise StanzaError(StanzaErrorCondition.NOT_ACCEPTABLE, text="the query names no fragment")
        namespaces = {item.namespace for item in items}
        if len(namespaces) > 1:
            raise StanzaError(StanzaErrorCondition.BAD_REQUEST, text="one namespace per query")
        if is_reserved(namespaces.pop()):
            raise StanzaError(StanzaErrorCondition.NOT_ACCEPTABLE, text="a reserved namespace")
        return items

    async def _get(self, request: IqRequest) -> PrivateQuery:
        owner = str(request.to.bare)
        found: list[Element] = []
        for item in self._fragments(request):
            stored = await self.host.storage.map.get(owner, STORE, item.name)
            if stored is None:
                found.append(Element(item.name))
            else:
                found.append(element_from_xml(stored if isinstance(stored, str) else stored.decode()))
        return PrivateQuery(tuple(found))

    async def _set(self, request: IqRequest) -> None:
        owner = str(request.to.bare)
        texts = {item.name: element_to_xml(item) for item in self._fragments(request)}
        if any(len(text.encode()) > self.max_bytes for text in texts.values()):
            raise StanzaError(
                StanzaErrorCondition.NOT_ACCEPTABLE, text=f"a fragment may take at most {self.max_bytes} bytes"
            )
        for key, text in texts.items():
            await self.host.storage.map.set(owner, STORE, key, text)

    async def _forget(self, event: AccountRemoved) -> None:
        await self.host.storage.map.clear(str(event.account.bare), STORE)
