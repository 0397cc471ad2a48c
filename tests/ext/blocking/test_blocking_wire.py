"""XEP-0191 payloads and JID matching."""

from __future__ import annotations

import pytest

from jaybird.errors import StanzaError, StanzaErrorCondition
from jaybird.ext.blocking.wire import BLOCK, BLOCKED, Block, BlockList, Unblock, blocked_error, is_blocked
from jaybird.jid import JID
from jaybird.xml.element import Element


def test_round_trip() -> None:
    items = (JID("romeo@montague.net"), JID("iago@shakespeare.lit"))
    assert Block.from_element(Block(items).to_element()) == Block(items)
    assert BlockList.from_element(BlockList(items).to_element()) == BlockList(items)
    assert Unblock.from_element(Unblock().to_element()).everything


def test_empty_block_and_bad_jids_are_refused() -> None:
    with pytest.raises(StanzaError) as empty:
        Block.from_element(Element(BLOCK))  # "Use Cases: User Blocks Contact": at least one item
    assert empty.value.condition is StanzaErrorCondition.BAD_REQUEST
    bad = Element(BLOCK)
    bad.add("{urn:xmpp:blocking}item", {"jid": "a@b@c"})
    with pytest.raises(StanzaError) as malformed:
        Block.from_element(bad)
    assert malformed.value.condition is StanzaErrorCondition.JID_MALFORMED


def test_blocked_error() -> None:
    error = blocked_error().to_element()
    assert error.find("{urn:ietf:params:xml:ns:xmpp-stanzas}not-acceptable") is not None
    assert error.find(BLOCKED) is not None


@pytest.mark.parametrize(
    ("entry", "jid", "expected"),
    [
        # XEP-0191 "JID Matching" (XEP-0016 §2.1)
        ("romeo@montague.net/orchard", "romeo@montague.net/orchard", True),
        ("romeo@montague.net/orchard", "romeo@montague.net/garden", False),
        ("romeo@montague.net/orchard", "romeo@montague.net", False),
        ("romeo@montague.net", "romeo@montague.net/garden", True),
        ("romeo@montague.net", "romeo@montague.net", True),
        ("romeo@montague.net", "benvolio@montague.net", False),
        ("montague.net/bot", "montague.net/bot", True),
        ("montague.net/bot", "romeo@montague.net/bot", True),
        ("montague.net", "montague.net", True),
        ("montague.net", "romeo@montague.net/orchard", True),
        ("montague.net", "montague.net/bot", True),
        ("montague.net", "chat.montague.net", True),  # "an address containing a subdomain"
        ("montague.net", "notmontague.net", False),
        ("chat.montague.net", "montague.net", False),
    ],
)
def test_matching(entry: str, jid: str, expected: bool) -> None:
    assert is_blocked(frozenset({JID(entry)}), JID(jid)) is expected
