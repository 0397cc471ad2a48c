"""The disco module on a real host with fake sessions (XEP-0030, XEP-0115 §6.2)."""

from __future__ import annotations

import pytest

from jaybird import ns
from jaybird.errors import StanzaError, StanzaErrorCondition
from jaybird.ext.disco.caps import caps_ver
from jaybird.ext.disco.server import DiscoModule
from jaybird.ext.disco.wire import DiscoIdentity, DiscoInfo, DiscoItem, DiscoItems
from jaybird.ext.ping.server import PingModule
from jaybird.ext.version.server import VersionModule
from jaybird.server.api import IqScope
from tests.ext.disco.harness import DOMAIN, Harness, make_harness, unload


async def _info(harness: Harness, *, sender: str, to: str = DOMAIN, node: str | None = None) -> DiscoInfo:
    scope = IqScope.HOST if to == DOMAIN else IqScope.ACCOUNT
    result = await harness.ask(harness.get(DiscoInfo(node=node).to_element(), sender=sender, to=to), scope)
    assert result is not None
    return DiscoInfo.from_element(result)


async def test_server_info_lists_identity_and_every_loaded_feature() -> None:
    harness, modules = await make_harness([DiscoModule, PingModule, VersionModule])
    info = await _info(harness, sender="juliet@example.com/balcony")
    assert DiscoIdentity("server", "im", "jaybird") in info.identities
    assert {ns.DISCO_INFO, ns.DISCO_ITEMS, ns.PING, ns.VERSION} <= set(info.features)
    assert set(info.features) == harness.host.features()
    await unload(modules)


async def test_unloading_a_module_removes_its_feature_and_changes_the_caps_hash() -> None:
    harness, modules = await make_harness([DiscoModule, PingModule])
    disco = modules[0]
    assert isinstance(disco, DiscoModule)
    before = disco.caps_ver()
    await modules[1].unload()
    info = await _info(harness, sender="juliet@example.com/balcony")
    assert ns.PING not in info.features
    assert disco.caps_ver() != before
    assert disco.caps_ver() == caps_ver(info.identities, info.features)
    await disco.unload()


async def test_caps_node_is_answered_and_other_nodes_are_not_found() -> None:
    """XEP-0115 §6.2: disco#info to ``node#ver`` gives the same info; XEP-0030 §3.2 item-not-found else."""
    harness, modules = await make_harness([DiscoModule], options={"disco": {"caps_node": "urn:test:node"}})
    disco = modules[0]
    assert isinstance(disco, DiscoModule)
    element = disco.caps_element()
    assert element.attrs["node"] == "urn:test:node" and element.attrs["hash"] == "sha-1"
    node = f"urn:test:node#{element.attrs['ver']}"
    info = await _info(harness, sender="juliet@example.com/balcony", node=node)
    assert info.node == node
    assert set(info.features) == harness.host.features()
    with pytest.raises(StanzaError) as caught:
        await _info(harness, sender="juliet@example.com/balcony", node="urn:test:node#stale")
    assert caught.value.condition is StanzaErrorCondition.ITEM_NOT_FOUND
    await unload(modules)


async def test_items_registered_by_other_modules_are_listed_until_cancelled() -> None:
    harness, modules = await make_harness([DiscoModule])
    disco = modules[0]
    assert isinstance(disco, DiscoModule)
    request = harness.get(DiscoItems().to_element(), sender="juliet@example.com/balcony")
    result = await harness.ask(request, IqScope.HOST)
    assert result is not None and DiscoItems.from_element(result).items == ()
    registration = disco.add_item(DiscoItem("conference.example.com", name="Rooms"))
    result = await harness.ask(request, IqScope.HOST)
    assert result is not None
    assert DiscoItems.from_element(result).items == (DiscoItem("conference.example.com", name="Rooms"),)
    registration.cancel()
    result = await harness.ask(request, IqScope.HOST)
    assert result is not None and DiscoItems.from_element(result).items == ()
    with pytest.raises(StanzaError) as caught:
        await harness.ask(harness.get(DiscoItems(node="x").to_element(), sender="a@example.com/r"), IqScope.HOST)
    assert caught.value.condition is StanzaErrorCondition.ITEM_NOT_FOUND
    await unload(modules)


async def test_account_info_is_answered_for_its_owner_only() -> None:
    """XEP-0030 §2: the server answers for the account; without a presence subscription, service-unavailable."""
    harness, modules = await make_harness([DiscoModule])
    owner = "juliet@example.com"
    info = await _info(harness, sender=f"{owner}/balcony", to=owner)
    assert info.identities == (DiscoIdentity("account", "registered"),)
    assert set(info.features) == harness.host.account_features()
    assert ns.DISCO_INFO in info.features
    with pytest.raises(StanzaError) as caught:
        await _info(harness, sender="tybalt@example.com/street", to=owner)
    assert caught.value.condition is StanzaErrorCondition.SERVICE_UNAVAILABLE
    with pytest.raises(StanzaError) as caught:
        await _info(harness, sender=f"{owner}/balcony", to=owner, node="urn:unknown")
    assert caught.value.condition is StanzaErrorCondition.ITEM_NOT_FOUND
    await unload(modules)
