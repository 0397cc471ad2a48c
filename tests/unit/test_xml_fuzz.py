"""Fuzzing the stream parser: whatever a peer sends, the only exception is RemoteProtocolError.

Random bytes and mutated valid streams (flipped, inserted, deleted and duplicated bytes, spliced stanzas) are
fed in random chunks, in stream, WebSocket and BOSH modes, with small limits so that they are reached too.
Every example has a deadline, so a parser that hangs (or goes quadratic) fails the test.
"""

from __future__ import annotations

import itertools

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from jaybird import ns
from jaybird.errors import RemoteProtocolError
from jaybird.xml.element import Element
from jaybird.xml.parser import ElementReceived, ParserEvent, StreamClosed, StreamOpened, XMLStreamParser

VALID_STREAM = (
    b"<?xml version='1.0'?><stream:stream xmlns='jabber:server' xmlns:stream='http://etherx.jabber.org/streams'"
    b" xmlns:db='jabber:server:dialback' to='a.example' version='1.0' xml:lang='en'>"
    b"<stream:features><starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'><required/></starttls></stream:features>"
    b"<db:result from='b' to='a'>abc</db:result>"
    b"<message from='x@b' to='y@a' type='chat' id='1'><body>caf\xc3\xa9 &amp; &#x263A; <![CDATA[<x>]]></body>"
    b"<html xmlns='http://jabber.org/protocol/xhtml-im'><body xmlns='http://www.w3.org/1999/xhtml'>a<em>b</em>c"
    b"</body></html></message>\n"
    b"<iq type='result' id='r'><query xmlns='jabber:iq:roster'><item jid='a@b' name='A'><group>G</group></item>"
    b"</query></iq> <presence xmlns:p='urn:p' p:x='1'><p:y/></presence></stream:stream>"
)
VALID_FRAMES = (
    b"<open xmlns='urn:ietf:params:xml:ns:xmpp-framing' to='a' version='1.0'/>"
    b"<message xmlns='jabber:client'><body>hi</body></message><close xmlns='urn:ietf:params:xml:ns:xmpp-framing'/>"
)
VALID_BOSH = (
    b"<body rid='1' sid='s' xmlns='http://jabber.org/protocol/httpbind'><message xmlns='jabber:client'>"
    b"<body>x</body></message></body>"
)
ROOTS: dict[bytes, str | None] = {
    VALID_STREAM: "{http://etherx.jabber.org/streams}stream",
    VALID_FRAMES: None,
    VALID_BOSH: ns.clark(ns.HTTPBIND, "body"),
}
SNIPPETS = [
    b"<",
    b">",
    b"/>",
    b"&",
    b"&amp;",
    b"&foo;",
    b"&#0;",
    b"<!--",
    b"<?pi?>",
    b"<!DOCTYPE x [<!ENTITY a 'b'>]>",
    b"<![CDATA[",
    b"]]>",
    b"xmlns:q='urn:q'",
    b"q:",
    b"<x:y>",
    b"</stream:stream>",
    b"<?xml version='1.0' encoding='latin1'?>",
    b"\xff",
    b"\xc3",
    b"\x00",
    b"'",
    b'"',
    b" a='1'",
    b"<a><b><c><d><e><f>",
]


def run(data: bytes, cuts: list[int], root: str | None, **limits: int) -> list[ParserEvent]:
    """Feed ``data`` split at ``cuts``; the parser may only ever raise RemoteProtocolError."""
    parser = XMLStreamParser(root, **limits)
    points = sorted({0, len(data), *(c % (len(data) + 1) for c in cuts)})
    events: list[ParserEvent] = []
    try:
        for a, b in itertools.pairwise(points):
            events += parser.feed(data[a:b])
    except RemoteProtocolError as exc:
        assert exc.error.condition is not None
        with pytest.raises(RemoteProtocolError):  # and it stays failed
            parser.feed(b"<x/>")
    for event in events:
        assert isinstance(event, StreamOpened | ElementReceived | StreamClosed)
        if isinstance(event, ElementReceived):
            assert isinstance(event.element, Element)
    return events


@st.composite
def mutated(draw: st.DrawFn) -> tuple[bytes, str | None]:
    base = draw(st.sampled_from(list(ROOTS)))
    data = bytearray(base)
    for _ in range(draw(st.integers(1, 6))):
        at = draw(st.integers(0, len(data)))
        kind = draw(st.sampled_from(["flip", "insert", "delete", "snippet", "duplicate", "truncate"]))
        if kind == "flip" and at < len(data):
            data[at] = draw(st.integers(0, 255))
        elif kind == "insert":
            data[at:at] = draw(st.binary(min_size=1, max_size=4))
        elif kind == "delete":
            del data[at : at + draw(st.integers(1, 8))]
        elif kind == "snippet":
            data[at:at] = draw(st.sampled_from(SNIPPETS))
        elif kind == "duplicate":
            end = min(len(data), at + draw(st.integers(1, 200)))
            data[at:at] = data[at:end]
        elif kind == "truncate":
            del data[at:]
    return bytes(data), ROOTS[base]


FUZZ = settings(max_examples=400, deadline=1000, suppress_health_check=[HealthCheck.too_slow])


@FUZZ
@given(st.binary(max_size=300), st.lists(st.integers(0, 400), max_size=10), st.sampled_from(list(ROOTS.values())))
def test_random_bytes(data: bytes, cuts: list[int], root: str | None) -> None:
    run(data, cuts, root)


@FUZZ
@given(mutated(), st.lists(st.integers(0, 2000), max_size=12))
def test_mutated_valid_streams(case: tuple[bytes, str | None], cuts: list[int]) -> None:
    data, root = case
    run(data, cuts, root)
    run(data, cuts, root, max_stanza_bytes=120, max_depth=3, max_attrs=2, max_children=3)


@FUZZ
@given(mutated(), st.lists(st.integers(0, 2000), max_size=12))
def test_chunking_never_changes_the_outcome(case: tuple[bytes, str | None], cuts: list[int]) -> None:
    data, root = case
    whole, whole_error = _outcome(data, [], root)
    split, split_error = _outcome(data, cuts, root)
    assert split_error == whole_error
    if whole_error is None:
        assert split == whole


def _outcome(data: bytes, cuts: list[int], root: str | None) -> tuple[list[ParserEvent], object]:
    parser = XMLStreamParser(root)
    points = sorted({0, len(data), *(c % (len(data) + 1) for c in cuts)})
    events: list[ParserEvent] = []
    try:
        for a, b in itertools.pairwise(points):
            events += parser.feed(data[a:b])
    except RemoteProtocolError as exc:
        return events, exc.error.condition
    return events, None


@pytest.mark.parametrize("base", list(ROOTS), ids=["stream", "websocket", "bosh"])
def test_the_valid_inputs_parse(base: bytes) -> None:
    events = run(base, list(range(0, len(base), 3)), ROOTS[base])
    assert any(isinstance(e, ElementReceived) for e in events)
