"""vcard-temp on the server (XEP-0054): each account's vCard, in the key-value store under ``vcard``.

Choices where XEP-0054 leaves one open:

* A user reading its own vCard before setting one gets an empty ``<vCard/>`` (§3.1 allows it or an error;
  clients treat the empty result as "nothing yet" without an error path). Reading *another* user's missing
  vCard is ``item-not-found`` and a missing account ``service-unavailable``: §3.3 requires an error there.
* A set addressed to someone else's JID is ``forbidden`` (§3.2).
* A vCard over the ``max_bytes`` option (serialized size, default 64 KiB) is ``not-acceptable``: the request
  does not meet a criterion of the server (RFC 6120 §8.3.3.9).
"""

from __future__ import annotations

from typing import ClassVar, Final

from jaybird.errors import StanzaError, StanzaErrorCondition
from jaybird.ext.vcard.wire import NAME, NS, VCard
from jaybird.server.api import IqRequest, IqScope, ServerModule
from jaybird.server.events import AccountRemoved
from jaybird.stanza import IqType

__all__ = ["DEFAULT_MAX_BYTES", "STORE", "VCardModule"]

STORE: Final = "vcard"
DEFAULT_MAX_BYTES: Final = 64 * 1024


class VCardModule(ServerModule):
    name: ClassVar[str] = "vcard"
    implements: ClassVar[tuple[str, ...]] = ("XEP-0054",)

    max_bytes: int = DEFAULT_MAX_BYTES

    async def load(self) -> None:
        self.max_bytes = self.options.get_int("max_bytes", DEFAULT_MAX_BYTES, minimum=1)
        self.iq(IqType.GET, NAME, self._get, scope=IqScope.ACCOUNT)
        self.iq(IqType.SET, NAME, self._set, scope=IqScope.ACCOUNT)
        self.feature(NS)
        self.on(AccountRemoved, self._forget)

    async def load_vcard(self, owner: str) -> VCard | None:
        """The stored vCard of ``owner`` (a bare JID string), or None."""
        stored = await self.host.storage.kv.get(owner, STORE)
        if stored is None:
            return None
        return VCard.from_xml(stored if isinstance(stored, str) else stored.decode())

    async def _get(self, request: IqRequest) -> VCard:
        owner = request.to.bare
        vcard = await self.load_vcard(str(owner))
        if vcard is not None:
            return vcard
        if request.sender.bare == owner:
            return VCard()
        if not await self.host.account_exists(owner):
            raise StanzaError(StanzaErrorCondition.SERVICE_UNAVAILABLE)
        raise StanzaError(StanzaErrorCondition.ITEM_NOT_FOUND, text="no vCard")

    async def _set(self, request: IqRequest) -> None:
        owner = request.to.bare
        if request.sender.bare != owner:
            raise StanzaError(StanzaErrorCondition.FORBIDDEN, text="only the owner may change a vCard")
        payload = request.iq.payload
        assert payload is not None, "the core dispatched on this payload"
        text = VCard.from_element(payload).to_xml()
        if len(text.encode()) > self.max_bytes:
            raise StanzaError(
                StanzaErrorCondition.NOT_ACCEPTABLE, text=f"a vCard may take at most {self.max_bytes} bytes"
            )
        await self.host.storage.kv.set(str(owner), STORE, text)

    async def _forget(self, event: AccountRemoved) -> None:
        await self.host.storage.kv.delete(str(event.account.bare), STORE)
