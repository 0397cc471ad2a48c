"""Typed stanzas: addressing, replies and error replies on the wire (RFC 6120 §8)."""

from __future__ import annotations

from typing import ClassVar

import pytest

from jaybird import ns
from jaybird.errors import LocalProtocolError, StanzaError, StanzaErrorCondition, StanzaErrorType
from jaybird.jid import JID
from jaybird.stanza import (
    Iq,
    IqType,
    Message,
    MessageType,
    PayloadRegistry,
    Presence,
    PresenceShow,
    PresenceType,
    wrap,
)
from jaybird.xml.element import Element
from jaybird.xml.serializer import serialize

PING = ns.clark(ns.PING, "ping")


class Ping:
    name: ClassVar[str] = PING

    @classmethod
    def from_element(cls, element: Element) -> Ping:
        return cls()

    def to_element(self) -> Element:
        return Element(PING)


def test_message_build_serializes_in_stream_namespace() -> None:
    msg = Message.build("romeo@montague.example", "Art thou not Romeo?", type=MessageType.CHAT, id="m1")
    assert serialize(msg.element, default_ns=ns.CLIENT) == (
        '<message to="romeo@montague.example" type="chat" id="m1"><body>Art thou not Romeo?</body></message>'
    )
    # The same object written on a server-to-server stream (RFC 6120 §4.8.3: jabber:server as default).
    assert serialize(msg.element, default_ns=ns.SERVER, content_ns=ns.SERVER).startswith("<message ")
    assert msg.to == JID("romeo@montague.example")
    assert msg.body == "Art thou not Romeo?"
    assert msg.type is MessageType.CHAT


def test_message_type_defaults_to_normal() -> None:
    # RFC 6121 §5.2.2: absent -> normal; an unknown value is treated as normal.
    assert Message(Element(ns.clark(ns.CLIENT, "message"))).type is MessageType.NORMAL
    assert Message(Element(ns.clark(ns.CLIENT, "message"), {"type": "bogus"})).type is MessageType.NORMAL


def test_error_reply_swaps_addresses_keeps_id() -> None:
    # RFC 6120 §8.3.1: same id, from/to swapped, type='error', an <error/> child.
    iq = Iq.build(IqType.GET, Element(PING), to="capulet.example", id="p1", from_="juliet@capulet.example/bal")
    err = iq.error_reply(StanzaError(StanzaErrorCondition.SERVICE_UNAVAILABLE))
    assert err.element.attrs == {
        "to": "juliet@capulet.example/bal",
        "from": "capulet.example",
        "id": "p1",
        "type": "error",
    }
    assert serialize(err.element, default_ns=ns.CLIENT).endswith(
        '<error type="cancel"><service-unavailable xmlns="urn:ietf:params:xml:ns:xmpp-stanzas"/></error></iq>'
    )
    parsed = err.error
    assert parsed is not None and parsed.condition is StanzaErrorCondition.SERVICE_UNAVAILABLE
    assert parsed.type is StanzaErrorType.CANCEL


def test_error_is_never_answered_with_error() -> None:
    # RFC 6120 §8.3.1 rule 2.
    iq = Iq.build(IqType.GET, Element(PING), id="x")
    err = iq.error_reply(StanzaError(StanzaErrorCondition.BAD_REQUEST))
    with pytest.raises(LocalProtocolError):
        err.error_reply(StanzaError(StanzaErrorCondition.BAD_REQUEST))


def test_iq_result_only_for_requests() -> None:
    iq = Iq.build(IqType.SET, Element(PING), to="a.example", id="s1")
    result = iq.result()
    assert result.type is IqType.RESULT and result.id == "s1" and result.from_ == JID("a.example")
    with pytest.raises(LocalProtocolError):
        result.result()


def test_iq_payload_and_unknown_type() -> None:
    iq = Iq(Element(ns.clark(ns.CLIENT, "iq"), {"type": "fetch", "id": "1"}, [Element(PING)]))
    assert iq.type is None
    assert iq.payload is not None and iq.payload.name == PING


def test_presence_fields() -> None:
    p = Presence.build(show=PresenceShow.AWAY, status="out", priority=-1)
    assert p.type is PresenceType.AVAILABLE
    assert p.show is PresenceShow.AWAY and p.status == "out" and p.priority == -1
    assert "type" not in p.element.attrs
    assert Presence.build(type=PresenceType.SUBSCRIBE).element.attrs["type"] == "subscribe"
    with pytest.raises(ValueError):
        Presence.build(priority=200)  # RFC 6121 §4.7.2.3
    odd = Presence(Element(ns.clark(ns.CLIENT, "presence"), {"type": "available"}))
    assert odd.type is None  # not a wire value; the server answers bad-request


def test_presence_priority_out_of_range_reads_zero() -> None:
    el = Element(ns.clark(ns.CLIENT, "presence"))
    el.add(ns.clark(ns.CLIENT, "priority"), text="999")
    assert Presence(el).priority == 0


def test_wrap_and_payloads() -> None:
    stanza = wrap(Iq.build(IqType.GET, Ping()).element)
    assert isinstance(stanza, Iq)
    assert stanza.get(Ping) is not None
    assert [p.name for p in stanza.payloads()] == [PING]
    with pytest.raises(ValueError):
        wrap(Element(ns.clark(ns.STREAM, "features")))


def test_payload_registry_per_instance() -> None:
    one: PayloadRegistry[Ping] = PayloadRegistry()
    two: PayloadRegistry[Ping] = PayloadRegistry()
    one.register(Ping)
    assert PING in one and PING not in two
    with pytest.raises(ValueError):
        one.register(Ping)
    assert isinstance(one.decode(Element(PING)), Ping)
    assert two.decode(Element(PING)) is None


def test_reply_keeps_thread() -> None:
    msg = Message.build("a@b.example", "hi", type=MessageType.CHAT, thread="t1", from_="c@d.example/r")
    reply = msg.reply("hello")
    assert reply.to == JID("c@d.example/r") and reply.thread == "t1" and reply.type is MessageType.CHAT
