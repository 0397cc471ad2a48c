"""The handler mux and the IQ tracker (jaybird.dispatch): routing rules, automatic replies, response matching."""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from typing import ClassVar, Self

import pytest

from jaybird import ns
from jaybird.dispatch import IqLimitReached, IqPattern, IqTimeout, IqTracker, MessagePattern, Mux
from jaybird.errors import JaybirdError, LocalProtocolError, StanzaError, StanzaErrorCondition
from jaybird.jid import JID
from jaybird.stanza import Iq, IqType, Message, MessageType, Presence, PresenceType, Stanza
from jaybird.xml.element import Element
from jaybird.xml.serializer import serialize

PING = ns.clark(ns.PING, "ping")
VERSION = ns.clark(ns.VERSION, "query")
CHATSTATE = "{http://jabber.org/protocol/chatstates}active"
RECEIPT = "{urn:xmpp:receipts}request"
MUC_USER = "{http://jabber.org/protocol/muc#user}x"
STANZAS = "{urn:ietf:params:xml:ns:xmpp-stanzas}"


class Outbox:
    def __init__(self) -> None:
        self.sent: list[Stanza] = []

    async def __call__(self, stanza: Stanza) -> None:
        self.sent.append(stanza)

    def only(self) -> Stanza:
        assert len(self.sent) == 1, self.sent
        return self.sent[0]


def condition_of(stanza: Stanza) -> str:
    error = stanza.error
    assert error is not None, stanza
    return error.condition.value


def ping(*, to: str = "juliet@example.com/balcony", from_: str = "example.com", id: str = "p1") -> Iq:
    return Iq.build(IqType.GET, Element(PING), to=to, from_=from_, id=id)


@dataclass(frozen=True)
class Version:
    name: ClassVar[str] = VERSION
    software: str

    @classmethod
    def from_element(cls, element: Element) -> Self:
        return cls(element.find_text(ns.clark(ns.VERSION, "name")) or "")

    def to_element(self) -> Element:
        el = Element(VERSION)
        el.add(ns.clark(ns.VERSION, "name"), text=self.software)
        return el


# -- registration -----------------------------------------------------------------------------------------


def test_registering_a_pattern_twice_raises() -> None:
    mux = Mux()
    mux.handle_iq(IqType.GET, PING, lambda iq: None)
    with pytest.raises(ValueError, match="registered already"):
        mux.handle_iq(IqType.GET, PING, lambda iq: None)
    mux.handle_iq(IqType.SET, PING, lambda iq: None)  # another type is another pattern
    mux.handle_message(lambda m: None, type=MessageType.CHAT)
    with pytest.raises(ValueError):

        @mux.message(type=MessageType.CHAT)
        def again(message: Message) -> None: ...

    mux.handle_presence(lambda p: None)
    with pytest.raises(ValueError):
        mux.handle_presence(lambda p: None)


def test_iq_patterns_take_requests_with_a_namespaced_payload() -> None:
    with pytest.raises(ValueError):
        IqPattern(IqType.RESULT, PING)
    with pytest.raises(ValueError):
        IqPattern(IqType.GET, "ping")


async def test_unregister_removes_the_handler() -> None:
    mux = Mux()
    pattern = mux.handle_iq(IqType.GET, PING, lambda iq: None)
    assert pattern in mux
    mux.unregister(pattern)
    assert pattern not in mux
    out = Outbox()
    assert await mux.dispatch(ping(), out) is False
    assert condition_of(out.only()) == "service-unavailable"
    with pytest.raises(KeyError):
        mux.unregister(pattern)
    mux.handle_iq(IqType.GET, PING, lambda iq: None)  # free again


def test_features_are_the_namespaces_of_iq_handlers() -> None:
    mux = Mux()
    mux.handle_iq(IqType.GET, PING, lambda iq: None)
    mux.handle_iq(IqType.GET, VERSION, lambda iq: None)
    mux.handle_iq(IqType.SET, VERSION, lambda iq: None)
    mux.handle_message(lambda m: None, payload=CHATSTATE)
    assert mux.features() == frozenset({ns.PING, ns.VERSION})


# -- IQ requests ------------------------------------------------------------------------------------------


async def test_unhandled_get_is_answered_service_unavailable_on_the_wire() -> None:
    # RFC 6120 §8.4: an IQ get/set nobody understands gets service-unavailable, addresses swapped, same id.
    out = Outbox()
    assert await Mux().dispatch(ping(id="abc"), out) is False
    assert serialize(out.only().element) == (
        '<iq xmlns="jabber:client" to="example.com" from="juliet@example.com/balcony" id="abc" type="error">'
        '<error type="cancel"><service-unavailable xmlns="urn:ietf:params:xml:ns:xmpp-stanzas"/></error></iq>'
    )


async def test_unhandled_set_is_answered_service_unavailable() -> None:
    mux = Mux()
    mux.handle_iq(IqType.GET, PING, lambda iq: None)
    out = Outbox()
    await mux.dispatch(Iq.build(IqType.SET, Element(PING), id="s"), out)
    assert condition_of(out.only()) == "service-unavailable"


async def test_iq_handler_result_payload_is_sent_as_result() -> None:
    mux = Mux()

    @mux.iq(IqType.GET, VERSION)
    async def version(iq: Iq) -> Element:
        return Version("jaybird").to_element()

    out = Outbox()
    request = Iq.build(IqType.GET, Element(VERSION), to="example.com", from_="romeo@example.net/x", id="v")
    assert await mux.dispatch(request, out) is True
    reply = out.only()
    assert isinstance(reply, Iq) and reply.type is IqType.RESULT
    assert (reply.id, reply.to, reply.from_) == ("v", JID("romeo@example.net/x"), JID("example.com"))
    assert reply.payload == Version("jaybird").to_element()


async def test_iq_handler_may_return_a_payload_object_or_nothing_and_be_sync() -> None:
    mux = Mux()
    mux.handle_iq(IqType.GET, VERSION, lambda iq: Version("sync"))
    mux.handle_iq(IqType.GET, PING, lambda iq: None)
    out = Outbox()
    await mux.dispatch(Iq.build(IqType.GET, Element(VERSION), id="1"), out)
    await mux.dispatch(ping(id="2"), out)
    version_reply, ping_reply = out.sent
    assert isinstance(version_reply, Iq) and version_reply.get(Version) == Version("sync")
    assert isinstance(ping_reply, Iq) and ping_reply.type is IqType.RESULT and ping_reply.payload is None


async def test_stanza_error_raised_by_handler_becomes_error_reply() -> None:
    mux = Mux()

    @mux.iq(IqType.GET, PING)
    async def refuse(iq: Iq) -> None:
        raise StanzaError(StanzaErrorCondition.ITEM_NOT_FOUND, text="no such node")

    out = Outbox()
    assert await mux.dispatch(ping(), out) is True
    error = out.only().error
    assert error is not None
    assert (error.condition, error.text) == (StanzaErrorCondition.ITEM_NOT_FOUND, "no such node")


async def test_crashing_handler_answers_internal_server_error_and_logs(caplog: pytest.LogCaptureFixture) -> None:
    mux = Mux()

    @mux.iq(IqType.GET, PING)
    def broken(iq: Iq) -> None:
        raise RuntimeError("boom")

    out = Outbox()
    with caplog.at_level(logging.ERROR, logger="jaybird.dispatch"):
        await mux.dispatch(ping(), out)
    assert condition_of(out.only()) == "internal-server-error"
    record = caplog.records[-1]
    assert record.exc_info is not None and isinstance(record.exc_info[1], RuntimeError)


async def test_handler_returning_garbage_is_an_internal_error(caplog: pytest.LogCaptureFixture) -> None:
    mux = Mux()
    mux.handle_iq(IqType.GET, PING, lambda iq: "not an element")  # type: ignore[arg-type,return-value]
    out = Outbox()
    with caplog.at_level(logging.ERROR, logger="jaybird.dispatch"):
        await mux.dispatch(ping(), out)
    assert condition_of(out.only()) == "internal-server-error"
    assert "TypeError" in caplog.text


async def test_iq_without_exactly_one_payload_is_bad_request() -> None:
    # RFC 6120 §8.2.3: a get or set contains exactly one payload element.
    out = Outbox()
    empty = Iq.build(IqType.GET, id="e")
    two = Iq.build(IqType.SET, Element(PING), id="t").add(Element(VERSION))
    await Mux().dispatch(empty, out)
    await Mux().dispatch(two, out)
    assert [condition_of(s) for s in out.sent] == ["bad-request", "bad-request"]


async def test_iq_with_unknown_type_is_bad_request() -> None:
    out = Outbox()
    weird = Iq(Element(ns.clark(ns.CLIENT, "iq"), {"type": "fetch", "id": "w"}, [Element(PING)]))
    await Mux().dispatch(weird, out)
    assert condition_of(out.only()) == "bad-request"


@pytest.mark.parametrize("type_", ["result", "error"])
async def test_iq_responses_are_not_dispatched_nor_answered(type_: str) -> None:
    mux = Mux()
    mux.handle_iq(IqType.GET, PING, lambda iq: None)
    out = Outbox()
    response = Iq(Element(ns.clark(ns.CLIENT, "iq"), {"type": type_, "id": "r"}, [Element(PING)]))
    assert await mux.dispatch(response, out) is False
    assert out.sent == []


# -- messages and presences -------------------------------------------------------------------------------


def message(type_: MessageType = MessageType.CHAT, *payloads: str) -> Message:
    msg = Message.build("juliet@example.com", "hi", type=type_, from_="romeo@example.net/x")
    for name in payloads:
        msg.add(Element(name))
    return msg


async def test_most_specific_message_pattern_wins() -> None:
    mux = Mux()
    seen: list[str] = []
    mux.handle_message(lambda m: seen.append("any"))
    mux.handle_message(lambda m: seen.append("chat"), type=MessageType.CHAT)
    mux.handle_message(lambda m: seen.append("receipt"), payload=RECEIPT)
    mux.handle_message(lambda m: seen.append("chat+chatstate"), type=MessageType.CHAT, payload=CHATSTATE)
    out = Outbox()
    await mux.dispatch(message(MessageType.NORMAL), out)
    await mux.dispatch(message(MessageType.CHAT), out)
    await mux.dispatch(message(MessageType.CHAT, RECEIPT), out)
    await mux.dispatch(message(MessageType.CHAT, RECEIPT, CHATSTATE), out)  # type+payload beats payload
    await mux.dispatch(message(MessageType.HEADLINE, CHATSTATE), out)  # chatstate pattern is chat-only
    assert seen == ["any", "chat", "receipt", "chat+chatstate", "any"]
    assert out.sent == []


async def test_unmatched_message_is_not_answered() -> None:
    mux = Mux()
    mux.handle_message(lambda m: None, type=MessageType.GROUPCHAT)
    out = Outbox()
    assert await mux.dispatch(message(MessageType.CHAT), out) is False
    assert out.sent == []


async def test_most_specific_presence_pattern_wins() -> None:
    mux = Mux()
    seen: list[str] = []

    @mux.presence()
    async def any_presence(p: Presence) -> None:
        seen.append("any")

    @mux.presence(type=PresenceType.SUBSCRIBE)
    async def subscribe(p: Presence) -> None:
        seen.append("subscribe")

    @mux.presence(payload=MUC_USER)
    async def muc(p: Presence) -> None:
        seen.append("muc")

    out = Outbox()
    await mux.dispatch(Presence.build("romeo@example.net"), out)
    await mux.dispatch(Presence.build("romeo@example.net", type=PresenceType.SUBSCRIBE), out)
    await mux.dispatch(Presence.build("room@muc.example.net/romeo").add(Element(MUC_USER)), out)
    assert seen == ["any", "subscribe", "muc"]


async def test_message_handler_stanza_error_is_answered() -> None:
    mux = Mux()

    @mux.message(type=MessageType.CHAT)
    def refuse(m: Message) -> None:
        raise StanzaError(StanzaErrorCondition.NOT_ACCEPTABLE)

    out = Outbox()
    await mux.dispatch(message(), out)
    reply = out.only()
    assert isinstance(reply, Message) and reply.type is MessageType.ERROR
    assert condition_of(reply) == "not-acceptable"
    assert reply.to == JID("romeo@example.net/x")


async def test_error_stanza_is_never_answered_with_an_error(caplog: pytest.LogCaptureFixture) -> None:
    # RFC 6120 §8.3.1: an error stanza must not be answered with an error.
    mux = Mux()

    @mux.message(type=MessageType.ERROR)
    def fails(m: Message) -> None:
        raise StanzaError(StanzaErrorCondition.BAD_REQUEST)

    @mux.presence(type=PresenceType.ERROR)
    def crashes(p: Presence) -> None:
        raise RuntimeError("boom")

    out = Outbox()
    with caplog.at_level(logging.ERROR, logger="jaybird.dispatch"):
        assert await mux.dispatch(message(MessageType.ERROR), out) is True
        assert await mux.dispatch(Presence.build("a@example.com", type=PresenceType.ERROR), out) is True
    assert out.sent == []
    assert "boom" in caplog.text  # still logged, never swallowed


async def test_crashing_message_handler_answers_internal_server_error() -> None:
    mux = Mux()

    def crash(m: Message) -> None:
        raise ZeroDivisionError

    mux.handle_message(crash)
    out = Outbox()
    await mux.dispatch(message(), out)
    assert condition_of(out.only()) == "internal-server-error"


async def test_sync_send_function_is_accepted() -> None:
    sent: list[Stanza] = []
    await Mux().dispatch(ping(), sent.append)
    assert condition_of(sent[0]) == "service-unavailable"


def test_message_pattern_defaults_to_any() -> None:
    assert MessagePattern() == MessagePattern(None, None)


# -- IQ tracker -------------------------------------------------------------------------------------------

ME = JID("juliet@example.com/balcony")


def response(request: Iq, *, from_: str | None, type_: str = "result") -> Iq:
    attrs = {"type": type_, "id": request.id or "", "to": str(ME)}
    if from_ is not None:
        attrs["from"] = from_
    el = Element(ns.clark(ns.CLIENT, "iq"), attrs)
    if type_ == "error":
        el.append(StanzaError(StanzaErrorCondition.ITEM_NOT_FOUND).to_element())
    return Iq(el)


async def test_result_resolves_the_future() -> None:
    tracker = IqTracker(ME)
    request = Iq.build(IqType.GET, Element(PING), to="romeo@example.net/orchard")
    future = tracker.track(request, timeout=5)
    reply = response(request, from_="romeo@example.net/orchard")
    assert tracker.resolve(reply) is True
    assert await future is reply
    assert len(tracker) == 0


async def test_error_response_raises_stanza_error() -> None:
    tracker = IqTracker(ME)
    request = Iq.build(IqType.GET, Element(PING), to="example.net")
    future = tracker.track(request, timeout=5)
    assert tracker.resolve(response(request, from_="example.net", type_="error"))
    with pytest.raises(StanzaError) as caught:
        await future
    assert caught.value.condition is StanzaErrorCondition.ITEM_NOT_FOUND


async def test_forged_reply_from_another_jid_is_ignored() -> None:
    # RFC 6120 §8.2.3: the response comes from the entity the request was sent to.
    tracker = IqTracker(ME)
    request = Iq.build(IqType.GET, Element(PING), to="romeo@example.net/orchard")
    future = tracker.track(request, timeout=5)
    for forger in ("mallory@example.org/x", "romeo@example.net", "romeo@example.net/other", None):
        assert tracker.resolve(response(request, from_=forger)) is False
    assert not future.done()
    assert tracker.resolve(response(request, from_="romeo@example.net/orchard"))
    assert (await future).from_ == JID("romeo@example.net/orchard")


@pytest.mark.parametrize("sender", [None, "juliet@example.com", "example.com"])
async def test_request_to_own_account_accepts_server_answers(sender: str | None) -> None:
    # RFC 6120 §10.3.3: with no 'to', the server answers on behalf of the account.
    tracker = IqTracker(ME)
    for to in (None, "juliet@example.com"):
        request = Iq.build(IqType.GET, Element(ns.clark(ns.ROSTER, "query")), to=to)
        future = tracker.track(request, timeout=5)
        assert tracker.resolve(response(request, from_=sender))
        await future


async def test_request_to_own_account_rejects_other_senders() -> None:
    tracker = IqTracker(ME)
    request = Iq.build(IqType.GET, Element(ns.clark(ns.ROSTER, "query")))
    tracker.track(request, timeout=5)
    assert not tracker.resolve(response(request, from_="mallory@example.com"))
    assert not tracker.resolve(response(request, from_="example.org"))
    assert not tracker.resolve(response(request, from_="juliet@example.com/other"))
    assert len(tracker) == 1


async def test_before_bind_only_an_answer_without_from_matches_a_request_without_to() -> None:
    tracker = IqTracker()
    request = Iq.build(IqType.SET, Element(ns.clark(ns.BIND, "bind")))
    future = tracker.track(request, timeout=5)
    assert not tracker.resolve(response(request, from_="example.com"))
    assert tracker.resolve(response(request, from_=None))
    await future
    tracker.own_jid = ME  # set after bind
    request = Iq.build(IqType.GET, Element(PING))
    tracker.track(request, timeout=5)
    assert tracker.resolve(response(request, from_="example.com"))


async def test_timeout_raises_iq_timeout_and_forgets_the_request() -> None:
    tracker = IqTracker(ME)
    request = Iq.build(IqType.GET, Element(PING), to="example.net", id="slow")
    future = tracker.track(request, timeout=0.05)
    with pytest.raises(IqTimeout) as caught:
        await asyncio.wait_for(future, 5)
    assert isinstance(caught.value, TimeoutError) and isinstance(caught.value, JaybirdError)
    assert "slow" in str(caught.value) and "example.net" in str(caught.value)
    assert len(tracker) == 0
    assert tracker.resolve(response(request, from_="example.net")) is False  # too late


async def test_fail_all_fails_every_pending_request() -> None:
    tracker = IqTracker(ME)
    futures = [tracker.track(Iq.build(IqType.GET, Element(PING), to="example.net"), timeout=5) for _ in range(3)]
    lost = ConnectionResetError("stream closed")
    tracker.fail_all(lost)
    for future in futures:
        with pytest.raises(ConnectionResetError):
            await future
    assert len(tracker) == 0


async def test_pending_requests_are_bounded() -> None:
    tracker = IqTracker(ME, max_pending=2)
    first = tracker.track(Iq.build(IqType.GET, Element(PING)), timeout=5)
    tracker.track(Iq.build(IqType.GET, Element(PING)), timeout=5)
    with pytest.raises(IqLimitReached, match="max_pending"):
        tracker.track(Iq.build(IqType.GET, Element(PING)), timeout=5)
    first.cancel()  # a cancelled request frees its place
    await asyncio.sleep(0)
    assert len(tracker) == 1
    tracker.track(Iq.build(IqType.GET, Element(PING)), timeout=5)
    tracker.fail_all(ConnectionResetError())


async def test_track_refuses_non_requests_and_duplicate_ids() -> None:
    tracker = IqTracker(ME)
    with pytest.raises(LocalProtocolError):
        tracker.track(Iq(Element(ns.clark(ns.CLIENT, "iq"), {"type": "result", "id": "r"})), timeout=1)
    tracker.track(ping(id="same"), timeout=1)
    with pytest.raises(LocalProtocolError):
        tracker.track(ping(id="same"), timeout=1)
    tracker.fail_all(ConnectionResetError())


async def test_resolve_ignores_unknown_ids_and_requests() -> None:
    tracker = IqTracker(ME)
    request = Iq.build(IqType.GET, Element(PING), to="example.net")
    tracker.track(request, timeout=5)
    assert tracker.resolve(Iq.build(IqType.GET, Element(PING), id=request.id, from_="example.net")) is False
    assert tracker.resolve(Message.build("x@example.net", "hi", id=request.id)) is False
    other = Iq(Element(ns.clark(ns.CLIENT, "iq"), {"type": "result", "id": "nope", "from": "example.net"}))
    assert tracker.resolve(other) is False
    assert len(tracker) == 1
    tracker.fail_all(ConnectionResetError())
