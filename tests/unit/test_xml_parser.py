"""The incremental XML stream parser (jaybird.xml.parser): RFC 6120 §4 streams, §11 XML restrictions."""

from __future__ import annotations

import dataclasses
import gc
import itertools
import time

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from jaybird import ns
from jaybird.errors import RemoteProtocolError, StreamErrorCondition
from jaybird.xml.element import XML_LANG, Element
from jaybird.xml.parser import (
    ElementReceived,
    ParserEvent,
    StreamClosed,
    StreamOpened,
    XMLStreamParser,
)

C = StreamErrorCondition
STREAM_NS = "xmlns:stream='http://etherx.jabber.org/streams'"
HEADER = (
    f"<?xml version='1.0'?><stream:stream xmlns='jabber:client' {STREAM_NS} to='example.org'"
    " version='1.0' xml:lang='en'>"
).encode()


def client(local: str) -> str:
    return ns.clark(ns.CLIENT, local)


def feed_all(parser: XMLStreamParser, data: bytes, size: int | None = None) -> list[ParserEvent]:
    if size is None:
        return parser.feed(data)
    events: list[ParserEvent] = []
    for i in range(0, len(data), size):
        events += parser.feed(data[i : i + size])
    return events


def stanzas(events: list[ParserEvent]) -> list[Element]:
    return [e.element for e in events if isinstance(e, ElementReceived)]


def error_of(data: bytes, root: str | None = "{http://etherx.jabber.org/streams}stream", **limits: int) -> C:
    parser = XMLStreamParser(root, **limits)
    with pytest.raises(RemoteProtocolError) as info:
        parser.feed(data)
    return info.value.error.condition


# -- a real client stream ---------------------------------------------------------------------------------

CLIENT_TRANSCRIPT = [
    # RFC 6120 §9.1: initial stream, STARTTLS (§5), then a restart (§4.3.3) after <proceed/>.
    HEADER + b"<starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>",
    # after TLS: SASL (§6); the client restarts after <success/>.
    HEADER + b"<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='SCRAM-SHA-1'>biwsbj1qdWxpZXQ=</auth>"
    b"<response xmlns='urn:ietf:params:xml:ns:xmpp-sasl'>Yz1iaXdz</response>",
    # resource binding (§7), then ordinary traffic and the closing tag (§4.4).
    HEADER + b"<iq type='set' id='b1'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'><resource>balcony</resource>"
    b"</bind></iq>\n<presence><show>chat</show><c xmlns='http://jabber.org/protocol/caps' hash='sha-1'"
    b" node='n' ver='v'/></presence> <message to='romeo@example.net' type='chat' xml:lang='en'>"
    b"<body>Art thou not Romeo, and a Montague? \xe2\x98\x83</body><thread>t1</thread>"
    b"<active xmlns='http://jabber.org/protocol/chatstates'/></message>"
    b"<iq type='get' id='r1'><query xmlns='jabber:iq:roster'/></iq></stream:stream>",
]


def run_transcript(size: int | None) -> list[list[ParserEvent]]:
    parser = XMLStreamParser()
    out = []
    for segment in CLIENT_TRANSCRIPT:
        out.append(feed_all(parser, segment, size))
        parser.reset()  # the restart that follows each segment (RFC 6120 §4.3.3)
    return out


def test_client_transcript_with_restarts() -> None:
    first, second, third = run_transcript(None)
    assert first[0] == StreamOpened(
        "{http://etherx.jabber.org/streams}stream",
        {"to": "example.org", "version": "1.0", XML_LANG: "en"},
        "jabber:client",
        {"stream": ns.STREAM},
    )
    assert stanzas(first) == [Element(ns.clark(ns.TLS, "starttls"))]
    auth, response = stanzas(second)
    assert auth.name == ns.clark(ns.SASL, "auth") and auth.get("mechanism") == "SCRAM-SHA-1"
    assert auth.text == "biwsbj1qdWxpZXQ=" and response.text == "Yz1iaXdz"
    assert isinstance(third[0], StreamOpened) and isinstance(third[-1], StreamClosed)
    bind, presence, message, roster = stanzas(third)
    assert bind.name == client("iq") and bind.attrs == {"type": "set", "id": "b1"}
    resource = bind.find(ns.clark(ns.BIND, "bind"))
    assert resource is not None and resource.find_text(ns.clark(ns.BIND, "resource")) == "balcony"
    assert presence.find_text(client("show")) == "chat"
    assert message.lang == "en" and message.get("to") == "romeo@example.net"
    assert message.find_text(client("body")) == "Art thou not Romeo, and a Montague? \u2603"
    assert message.find(ns.clark("http://jabber.org/protocol/chatstates", "active")) is not None
    assert roster.find(ns.clark(ns.ROSTER, "query")) == Element(ns.clark(ns.ROSTER, "query"))


@pytest.mark.parametrize("size", [1, 2, 3, 7, 64, 4096])
def test_transcript_events_do_not_depend_on_chunking(size: int) -> None:
    assert run_transcript(size) == run_transcript(None)


@settings(max_examples=60, deadline=2000)
@given(cuts=st.lists(st.integers(min_value=0, max_value=sum(map(len, CLIENT_TRANSCRIPT))), max_size=40))
def test_random_splits_give_identical_events(cuts: list[int]) -> None:
    whole = run_transcript(None)
    parser = XMLStreamParser()
    result = []
    for segment in CLIENT_TRANSCRIPT:
        points = sorted({0, len(segment), *(c % (len(segment) + 1) for c in cuts)})
        events: list[ParserEvent] = []
        for a, b in itertools.pairwise(points):
            events += parser.feed(segment[a:b])
        result.append(events)
        parser.reset()
    assert result == whole


def test_server_features_use_the_stream_prefix() -> None:
    parser = XMLStreamParser()
    events = parser.feed(
        b"<stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams' id='s1'"
        b" from='example.org' version='1.0'><stream:features><starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'>"
        b"<required/></starttls><mechanisms xmlns='urn:ietf:params:xml:ns:xmpp-sasl'><mechanism>PLAIN"
        b"</mechanism></mechanisms></stream:features>"
    )
    (features,) = stanzas(events)
    assert features.name == ns.clark(ns.STREAM, "features")
    starttls = features.find(ns.clark(ns.TLS, "starttls"))
    assert starttls is not None and starttls.find(ns.clark(ns.TLS, "required")) is not None


def test_utf8_split_inside_a_character() -> None:
    text = "\u00e9\u65e5\U0001f600"
    data = HEADER + f"<message><body>{text}</body></message>".encode()
    for size in (1, 2, 3):
        (message,) = stanzas(feed_all(XMLStreamParser(), data, size))
        assert message.find_text(client("body")) == text


def test_text_runs_are_merged_and_mixed_content_keeps_its_order() -> None:
    data = HEADER + (
        b"<message><html xmlns='http://jabber.org/protocol/xhtml-im'><body xmlns='http://www.w3.org/1999/xhtml'>"
        b"one &amp; <em>two</em> three&#33; <![CDATA[<four>]]></body></html></message>"
    )
    for size in (None, 1, 5):
        (message,) = stanzas(feed_all(XMLStreamParser(), data, size))
        html = message.find_ns("http://jabber.org/protocol/xhtml-im")
        assert html is not None
        body = html.children[0]
        assert isinstance(body, Element)
        assert body.children == [
            "one & ",
            Element("{http://www.w3.org/1999/xhtml}em", text="two"),
            " three! <four>",
        ]


def test_predefined_entities_and_character_references_are_allowed() -> None:
    # RFC 6120 §11.1 forbids entity references "with the exception of predefined entities".
    data = HEADER + b"<message a='&quot;&apos;&lt;'><body>&amp;&lt;&gt;&quot;&apos;&#x263A;&#65;</body></message>"
    (message,) = stanzas(XMLStreamParser().feed(data))
    assert message.get("a") == "\"'<"
    assert message.find_text(client("body")) == "&<>\"'\u263aA"


def test_whitespace_between_stanzas_is_ignored() -> None:
    # RFC 6120 §4.6.1: whitespace keepalives.
    parser = XMLStreamParser()
    parser.feed(HEADER)
    assert parser.feed(b" \n\t\r ") == []
    assert stanzas(parser.feed(b"<presence/>  ")) == [Element(client("presence"))]


# -- namespaces (docs/architecture.md "One internal stanza namespace") ---------------------------------------


@pytest.mark.parametrize("content_ns", [ns.SERVER, ns.COMPONENT_ACCEPT, ns.CLIENT])
def test_content_namespace_maps_to_jabber_client(content_ns: str) -> None:
    data = (
        f"<stream:stream xmlns='{content_ns}' {STREAM_NS} xmlns:db='jabber:server:dialback'>"
        "<message from='a@b' to='c@d'><body>hi</body><x xmlns='urn:other'><y/></x></message>"
        "<db:result from='b' to='d'>key</db:result></stream:stream>"
    ).encode()
    events = XMLStreamParser().feed(data)
    opened = events[0]
    assert isinstance(opened, StreamOpened)
    assert opened.default_ns == content_ns and opened.prefixes["db"] == ns.DIALBACK
    message, result = stanzas(events)
    assert message.name == client("message")
    assert message.children == [
        Element(client("body"), text="hi"),
        Element("{urn:other}x", children=[Element("{urn:other}y")]),
    ]
    assert result == Element(ns.clark(ns.DIALBACK, "result"), {"from": "b", "to": "d"}, text="key")


def common_names_document(content_ns: str) -> bytes:
    """Every name of the parser's ready-made table, in and out of the stream's content namespace."""
    from jaybird.xml import parser as module

    parts = []
    for namespace, local in module._COMMON_NAMES:
        if namespace == ns.XML:
            parts.append(f"<message xml:{local}='v'/>")
        elif namespace:
            parts.append(f"<{local} xmlns='{namespace}'/><{local} xmlns='{content_ns}'/>")
        else:
            parts.append(f"<message {local}='v' xmlns:o='urn:o' o:{local}='w'/>")
    return f"<stream:stream xmlns='{content_ns}' {STREAM_NS} xml:lang='en'>{''.join(parts)}".encode()


@pytest.mark.parametrize("content_ns", [ns.CLIENT, ns.SERVER, ns.COMPONENT_ACCEPT, "jabber:foo"])
def test_the_ready_made_name_table_gives_what_learning_gives(content_ns: str, monkeypatch: pytest.MonkeyPatch) -> None:
    data = common_names_document(content_ns)
    seeded = XMLStreamParser().feed(data)
    monkeypatch.setattr("jaybird.xml.parser._common_names", lambda content_ns: {})
    learned = XMLStreamParser().feed(data)
    assert seeded == learned
    assert len(stanzas(seeded)) > 100


def test_a_namespace_containing_the_name_separator_is_refused() -> None:
    # expat keeps namespaces and names in one table, "ns}local": a namespace "urn:a}b" would read as element b
    # of urn:a there. expat refuses such a declaration, so the two can never be confused.
    data = f"<stream:stream xmlns='jabber:client' {STREAM_NS} xmlns:u='urn:a}}b'>".encode()
    assert error_of(data) is C.NOT_WELL_FORMED
    parser = XMLStreamParser()
    parser.feed(HEADER)
    with pytest.raises(RemoteProtocolError):
        parser.feed(b"<message xmlns:u='urn:a}b'/>")


def test_a_foreign_default_namespace_is_not_mapped() -> None:
    events = XMLStreamParser().feed(f"<stream:stream xmlns='jabber:foo' {STREAM_NS}><a/>".encode())
    assert isinstance(events[0], StreamOpened) and events[0].default_ns == "jabber:foo"
    assert stanzas(events) == [Element("{jabber:foo}a")]


def test_prefix_free_stream_keeps_each_stanza_namespace() -> None:
    # RFC 6120 §4.8.2: a stream may declare no content namespace and qualify each stanza itself.
    events = XMLStreamParser().feed(
        b"<stream xmlns='http://etherx.jabber.org/streams'><message xmlns='jabber:client'/>"
    )
    opened = events[0]
    assert isinstance(opened, StreamOpened) and opened.default_ns == ns.STREAM and opened.prefixes == {}
    assert stanzas(events) == [Element(client("message"))]


def test_namespaced_attributes_are_in_clark_notation() -> None:
    data = HEADER + b"<message xmlns:e='urn:e' e:a='1' xml:lang='fr' b='2'><e:x e:y='3'/></message>"
    (message,) = stanzas(XMLStreamParser().feed(data))
    assert message.attrs == {"{urn:e}a": "1", XML_LANG: "fr", "b": "2"}
    assert message.children == [Element("{urn:e}x", {"{urn:e}y": "3"})]


# -- errors -----------------------------------------------------------------------------------------------

ERRORS: list[tuple[str, bytes, C]] = [
    # §11.1 restricted XML
    ("doctype (§11.1)", b"<!DOCTYPE stream:stream><stream:stream/>", C.RESTRICTED_XML),
    ("comment (§11.1)", HEADER + b"<!-- hi -->", C.RESTRICTED_XML),
    ("comment in a stanza (§11.1)", HEADER + b"<message><!-- hi --></message>", C.RESTRICTED_XML),
    ("processing instruction (§11.1)", HEADER + b"<?php echo 1; ?>", C.RESTRICTED_XML),
    ("pi before the root (§11.1)", b"<?xml-stylesheet href='a'?>" + HEADER, C.RESTRICTED_XML),
    ("entity reference (§11.1)", HEADER + b"<message><body>&nbsp;</body></message>", C.RESTRICTED_XML),
    ("entity reference in an attribute (§11.1)", HEADER + b"<message to='&x;'/>", C.RESTRICTED_XML),
    # §11.6: UTF-8 only
    ("latin-1 declaration (§11.6)", b"<?xml version='1.0' encoding='ISO-8859-1'?>", C.UNSUPPORTED_ENCODING),
    ("utf-16 declaration (§11.6)", b"<?xml version='1.0' encoding='UTF-16'?>", C.UNSUPPORTED_ENCODING),
    # §4.9.3.2
    ("undeclared prefix on an element (§4.9.3.2)", HEADER + b"<foo:message/>", C.BAD_NAMESPACE_PREFIX),
    ("undeclared prefix on an attribute (§4.9.3.2)", HEADER + b"<message foo:a='1'/>", C.BAD_NAMESPACE_PREFIX),
    ("undeclared stream prefix (§4.9.3.2)", b"<stream:stream xmlns='jabber:client'>", C.BAD_NAMESPACE_PREFIX),
    ("rebinding xml: (§4.9.3.2)", HEADER + b"<a xmlns:xml='urn:x'/>", C.BAD_NAMESPACE_PREFIX),
    # §4.8.1 / §4.9.3.10: the root in the wrong namespace
    ("root in no namespace (§4.8.1)", b"<stream/>", C.INVALID_NAMESPACE),
    ("root in another namespace (§4.8.1)", b"<stream:stream xmlns:stream='urn:x'>", C.INVALID_NAMESPACE),
    # §4.9.3.1: right namespace, wrong element
    ("wrong root name (§4.9.3.1)", f"<stream:features {STREAM_NS}/>".encode(), C.BAD_FORMAT),
    ("text between stanzas (§4.9.3.1)", HEADER + b"hello<message/>", C.BAD_FORMAT),
    # §4.9.3.13 / §11.3 not well-formed
    ("mismatched tags (§11.3)", HEADER + b"<message><body></message>", C.NOT_WELL_FORMED),
    ("bad token (§11.3)", HEADER + b"<message <", C.NOT_WELL_FORMED),
    ("duplicate attribute (§11.3)", HEADER + b"<message a='1' a='2'/>", C.NOT_WELL_FORMED),
    ("invalid utf-8 (§11.6)", HEADER + b"<message>\xff\xfe</message>", C.NOT_WELL_FORMED),
    ("control character (§11.3)", HEADER + b"<message>\x01</message>", C.NOT_WELL_FORMED),
    ("bad character reference (§11.3)", HEADER + b"<message>&#0;</message>", C.NOT_WELL_FORMED),
    ("text after the root closed (§11.3)", HEADER + b"</stream:stream>junk", C.NOT_WELL_FORMED),
    ("element after the root closed (§11.3)", HEADER + b"</stream:stream><message/>", C.NOT_WELL_FORMED),
    ("xml declaration in the middle (§11.3)", HEADER + b"<?xml version='1.0'?>", C.NOT_WELL_FORMED),
    ("text before the root (§11.3)", b"hello " + HEADER, C.NOT_WELL_FORMED),
]


@pytest.mark.parametrize(("data", "condition"), [e[1:] for e in ERRORS], ids=[e[0] for e in ERRORS])
def test_stream_errors(data: bytes, condition: C) -> None:
    assert error_of(data) == condition


@pytest.mark.parametrize(("data", "condition"), [e[1:] for e in ERRORS], ids=[e[0] for e in ERRORS])
def test_stream_errors_byte_by_byte(data: bytes, condition: C) -> None:
    parser = XMLStreamParser()
    with pytest.raises(RemoteProtocolError) as info:
        feed_all(parser, data, 1)
    assert info.value.error.condition == condition


def test_billion_laughs_is_refused_before_any_expansion() -> None:
    entities = "".join(f"<!ENTITY l{i} '{('&l' + str(i - 1) + ';') * 10}'>" for i in range(1, 10))
    data = f"<!DOCTYPE s [<!ENTITY l0 'lol'>{entities}]><s>&l9;</s>".encode()
    started = time.perf_counter()
    assert error_of(data) == C.RESTRICTED_XML
    # In WebSocket mode the frame's elements are read as content, where a DOCTYPE is a syntax error.
    assert error_of(data, root=None) in (C.RESTRICTED_XML, C.NOT_WELL_FORMED)
    assert time.perf_counter() - started < 1.0


def test_internal_entity_declaration_is_refused_even_after_the_doctype_name() -> None:
    # The refusal must come at "<!DOCTYPE", before expat has read (let alone used) the internal subset.
    parser = XMLStreamParser()
    with pytest.raises(RemoteProtocolError) as info:
        for byte in b"<!DOCTYPE s [<!ENTITY a 'b'>]>":
            parser.feed(bytes([byte]))
    assert info.value.error.condition == C.RESTRICTED_XML


def test_utf8_declarations_are_accepted() -> None:
    for decl in (b"<?xml version='1.0' encoding='UTF-8'?>", b'<?xml version="1.0" encoding="utf-8"?>'):
        events = XMLStreamParser().feed(decl + HEADER.split(b"?>", 1)[1])
        assert isinstance(events[0], StreamOpened)


def test_a_failed_parser_stays_failed() -> None:
    parser = XMLStreamParser()
    with pytest.raises(RemoteProtocolError) as first:
        parser.feed(HEADER + b"<!-- no -->")
    for data in (b"", b"<message/>", HEADER):
        with pytest.raises(RemoteProtocolError) as again:
            parser.feed(data)
        assert again.value.error is first.value.error
    parser.reset()  # a stream error ends the stream (RFC 6120 §4.9.1): no restart revives it
    with pytest.raises(RemoteProtocolError):
        parser.feed(HEADER)


def test_whitespace_after_the_root_closed_is_fine() -> None:
    parser = XMLStreamParser()
    assert isinstance(parser.feed(HEADER + b"</stream:stream>")[-1], StreamClosed)
    assert parser.feed(b"\r\n  ") == []


def test_events_are_frozen() -> None:
    opened = StreamOpened("s", {})
    with pytest.raises(dataclasses.FrozenInstanceError):
        opened.name = "t"  # type: ignore[misc]
    received = ElementReceived(Element("a"))
    with pytest.raises(dataclasses.FrozenInstanceError):
        received.element = Element("b")  # type: ignore[misc]


# -- limits (RFC 6120 §4.9.3.14 policy-violation, §13.12 resource exhaustion) -----------------------------


def test_stanza_byte_limit() -> None:
    small = b"<message><body>" + b"x" * 80 + b"</body></message>"
    assert len(small) == 112
    (message,) = stanzas(XMLStreamParser(max_stanza_bytes=112).feed(HEADER + small))
    assert message.find_text(client("body")) == "x" * 80
    assert error_of(HEADER + small.replace(b"x" * 80, b"x" * 120), max_stanza_bytes=112) == C.POLICY_VIOLATION


def test_stanza_byte_limit_while_the_stanza_is_still_open() -> None:
    parser = XMLStreamParser(max_stanza_bytes=1000)
    parser.feed(HEADER + b"<message><body>")
    with pytest.raises(RemoteProtocolError) as info:
        for _ in range(100):
            parser.feed(b"y" * 50)
    assert info.value.error.condition == C.POLICY_VIOLATION


def test_stanza_byte_limit_inside_an_unfinished_start_tag() -> None:
    parser = XMLStreamParser(max_stanza_bytes=1000)
    parser.feed(HEADER + b"<message to='")
    with pytest.raises(RemoteProtocolError) as info:
        for _ in range(100):
            parser.feed(b"a" * 50)
    assert info.value.error.condition == C.POLICY_VIOLATION


def test_stanza_byte_limit_in_one_huge_chunk() -> None:
    data = HEADER + b"<message><body>" + b"z" * 1_000_000 + b"</body></message>"
    assert error_of(data, max_stanza_bytes=10_000) == C.POLICY_VIOLATION


def test_stanza_byte_limit_counts_each_stanza_separately() -> None:
    one = b"<presence><status>" + b"s" * 500 + b"</status></presence>"
    events = XMLStreamParser(max_stanza_bytes=600).feed(HEADER + one * 50)
    assert len(stanzas(events)) == 50


def test_stanza_byte_limit_on_a_huge_stream_header() -> None:
    data = b"<stream:stream " + STREAM_NS.encode() + b" to='" + b"h" * 5000
    assert error_of(data, max_stanza_bytes=1000) == C.POLICY_VIOLATION


def nested(depth: int) -> bytes:
    return b"<message>" + b"<x>" * (depth - 1) + b"</x>" * (depth - 1) + b"</message>"


def test_depth_limit() -> None:
    # The stanza itself is level 1.
    assert len(stanzas(XMLStreamParser(max_depth=5).feed(HEADER + nested(5)))) == 1
    assert error_of(HEADER + nested(6), max_depth=5) == C.POLICY_VIOLATION
    assert error_of(HEADER + b"<a>" * 100_000) == C.POLICY_VIOLATION


def test_attribute_limit() -> None:
    attrs = b" ".join(b"a%d='v'" % i for i in range(10))
    assert len(stanzas(XMLStreamParser(max_attrs=10).feed(HEADER + b"<message " + attrs + b"/>"))) == 1
    assert error_of(HEADER + b"<message " + attrs + b" z='1'/>", max_attrs=10) == C.POLICY_VIOLATION
    assert error_of(HEADER + b"<message><x " + attrs + b" z='1'/></message>", max_attrs=10) == C.POLICY_VIOLATION
    root = b"<stream:stream " + STREAM_NS.encode() + b" " + attrs + b" z='1'>"
    assert error_of(root, max_attrs=10) == C.POLICY_VIOLATION


def test_children_limit() -> None:
    assert len(stanzas(XMLStreamParser(max_children=8).feed(HEADER + b"<iq>" + b"<i/>" * 8 + b"</iq>"))) == 1
    assert error_of(HEADER + b"<iq>" + b"<i/>" * 9 + b"</iq>", max_children=8) == C.POLICY_VIOLATION
    # text runs count too: <i/>t<i/>t... is 2 children per repetition
    assert error_of(HEADER + b"<iq><q>" + b"<i/>t" * 5 + b"</q></iq>", max_children=8) == C.POLICY_VIOLATION


def test_limits_must_be_positive() -> None:
    with pytest.raises(ValueError):
        XMLStreamParser(max_depth=0)
    with pytest.raises(ValueError):
        XMLStreamParser(max_stanza_bytes=-1)


# -- WebSocket framing (RFC 7395) and BOSH (XEP-0124 / XEP-0206) -------------------------------------------

FRAMES = [
    b"<open xmlns='urn:ietf:params:xml:ns:xmpp-framing' to='example.com' version='1.0'/>",
    b"<features xmlns='http://etherx.jabber.org/streams'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'/></features>",
    b"<message xmlns='jabber:client' to='a@b'><body>hi</body></message>",
    b"<close xmlns='urn:ietf:params:xml:ns:xmpp-framing'/>",
]


def test_websocket_frames_each_arrive_as_an_element() -> None:
    parser = XMLStreamParser(None)
    received = [stanzas(parser.feed(frame)) for frame in FRAMES]
    assert [len(r) for r in received] == [1, 1, 1, 1]
    opened, features, message, close = (r[0] for r in received)
    assert opened == Element(ns.clark(ns.FRAMING, "open"), {"to": "example.com", "version": "1.0"})
    assert features.name == ns.clark(ns.STREAM, "features")
    assert message.name == client("message") and message.find_text(client("body")) == "hi"
    assert close == Element(ns.clark(ns.FRAMING, "close"))


def test_websocket_frames_in_any_chunking() -> None:
    whole = XMLStreamParser(None).feed(b"".join(FRAMES))
    assert len(whole) == 4 and all(isinstance(e, ElementReceived) for e in whole)
    assert feed_all(XMLStreamParser(None), b"".join(FRAMES), 1) == whole


def test_websocket_frames_do_not_share_namespace_declarations() -> None:
    parser = XMLStreamParser(None)
    parser.feed(b"<a xmlns:p='urn:p'><p:b/></a>")
    with pytest.raises(RemoteProtocolError) as info:
        parser.feed(b"<p:c/>")
    assert info.value.error.condition == C.BAD_NAMESPACE_PREFIX


def test_websocket_errors() -> None:
    assert error_of(b"</fragments>", root=None) == C.NOT_WELL_FORMED
    assert error_of(b"<a/>text<b/>", root=None) == C.BAD_FORMAT
    assert error_of(b"<a><!-- c --></a>", root=None) == C.RESTRICTED_XML
    assert error_of(b"<a>" + b"x" * 2000 + b"</a>", root=None, max_stanza_bytes=1000) == C.POLICY_VIOLATION


BOSH_ROOT = ns.clark(ns.HTTPBIND, "body")


def test_bosh_bodies() -> None:
    parser = XMLStreamParser(BOSH_ROOT)
    first = parser.feed(
        b"<body rid='1' sid='s' xmlns='http://jabber.org/protocol/httpbind'>"
        b"<message xmlns='jabber:client' to='a@b'><body>x</body></message><presence xmlns='jabber:client'/></body>"
    )
    opened, message, presence, closed = first
    assert isinstance(opened, StreamOpened) and opened.attrs == {"rid": "1", "sid": "s"}
    assert opened.default_ns == ns.HTTPBIND
    assert isinstance(message, ElementReceived) and message.element.name == client("message")
    assert message.element.find_text(client("body")) == "x"
    assert isinstance(presence, ElementReceived) and isinstance(closed, StreamClosed)
    parser.reset()  # the next HTTP request carries the next document
    assert parser.feed(b"<body rid='2' sid='s' xmlns='http://jabber.org/protocol/httpbind'/>") == [
        StreamOpened(BOSH_ROOT, {"rid": "2", "sid": "s"}, ns.HTTPBIND, {}),
        StreamClosed(),
    ]
    assert error_of(b"<body xmlns='jabber:client'/>", root=BOSH_ROOT) == C.INVALID_NAMESPACE


def test_whitespace_keepalives_never_add_up_to_a_stanza() -> None:
    parser = XMLStreamParser(max_stanza_bytes=1000)
    parser.feed(HEADER + b"<presence/>")
    for _ in range(3000):
        assert parser.feed(b" ") == []
    assert stanzas(parser.feed(b"<presence/>")) == [Element(client("presence"))]


def test_many_distinct_names_stay_correct() -> None:
    # The parser bounds its table of known names; names met after it was emptied must still come out right.
    parser = XMLStreamParser()
    parser.feed(f"<stream:stream xmlns='jabber:server' {STREAM_NS}>".encode())
    engines = [parser._parser]  # kept alive, so that no two can share an identity
    for batch in range(10):
        data = b"".join(
            b"<m%d xmlns:p='urn:p%d' p:a%d='v'/>" % (i, i, i) for i in range(batch * 1000, batch * 1000 + 1000)
        )
        received = stanzas(parser.feed(data))
        assert [e.name for e in received] == [client(f"m{i}") for i in range(batch * 1000, batch * 1000 + 1000)]
        assert [e.attrs for e in received] == [
            {f"{{urn:p{i}}}a{i}": "v"} for i in range(batch * 1000, batch * 1000 + 1000)
        ]
        parser.feed(b" ")  # a new expat parser, if one was due, is built by the next feed
        if parser._parser is not engines[-1]:
            engines.append(parser._parser)
    # ... and expat's own tables, which only a new parser drops, went with the parser: 10,000 names, 4,096 each.
    assert len(engines) >= 3


# -- releasing expat between stanzas ------------------------------------------------------------------------


@settings(max_examples=60, deadline=2000)
@given(cuts=st.lists(st.integers(min_value=0, max_value=sum(map(len, CLIENT_TRANSCRIPT))), max_size=40))
def test_releasing_after_any_chunk_gives_identical_events(cuts: list[int]) -> None:
    """release() between any two feeds (refused where something is held) changes no event: the rebuilt parser
    reads the replayed root first, so the root's prefixes and content namespace still apply."""
    whole = run_transcript(None)
    parser = XMLStreamParser()
    result = []
    released = 0
    for segment in CLIENT_TRANSCRIPT:
        points = sorted({0, len(segment), *(c % (len(segment) + 1) for c in cuts)})
        events: list[ParserEvent] = []
        for a, b in itertools.pairwise(points):
            events += parser.feed(segment[a:b])
            released += parser.release()
        result.append(events)
        parser.reset()
    assert result == whole
    assert released > 0


def test_release_keeps_the_stream_prefix_and_content_namespace() -> None:
    parser = XMLStreamParser()
    parser.feed(f"<stream:stream xmlns='jabber:server' {STREAM_NS} xml:lang='en'>".encode())
    assert parser.release() and not parser.holding_parser
    events = parser.feed(b"<stream:features><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'/></stream:features>")
    assert parser.holding_parser
    assert stanzas(events) == [Element(ns.clark(ns.STREAM, "features"), children=[Element(ns.clark(ns.BIND, "bind"))])]
    assert parser.release()
    # RFC 6120 §4.8.3: the content namespace of the stream is reported as jabber:client.
    assert stanzas(parser.feed(b"<message><body>hi</body></message>"))[0].name == client("message")
    assert parser.release()
    assert parser.feed(b"</stream:stream>") == [StreamClosed()]


def test_release_is_refused_while_anything_is_held() -> None:
    parser = XMLStreamParser()
    assert not parser.release()  # the root has not opened: nothing to replay yet
    parser.feed(HEADER + b"<message><body>half")
    assert not parser.release()  # inside a stanza
    parser.feed(b"</body></message><pres")
    assert not parser.release()  # a partial tag buffered
    assert stanzas(parser.feed(b"ence/>")) == [Element(client("presence"))]
    assert parser.release()
    assert parser.release()  # already released


def test_release_checks_buffered_text_between_stanzas() -> None:
    parser = XMLStreamParser()
    parser.feed(HEADER + b"<presence/>  \n")
    assert parser.release()
    assert stanzas(parser.feed(b"<presence/>")) == [Element(client("presence"))]
    assert parser.release()
    # RFC 6120 §4.9.3.1: text between stanzas is bad-format, in a rebuilt parser too; a failed one stays failed.
    with pytest.raises(RemoteProtocolError) as info:
        parser.feed(b"stray text<presence/>")
    assert info.value.error.condition is C.BAD_FORMAT
    assert not parser.release()


def test_release_of_websocket_frames() -> None:
    parser = XMLStreamParser(root=None)
    for frame in FRAMES:
        assert parser.release()
        assert len(stanzas(parser.feed(frame))) <= 1


def test_byte_limit_still_holds_after_a_release() -> None:
    parser = XMLStreamParser(max_stanza_bytes=100)
    parser.feed(HEADER)
    assert parser.release()
    with pytest.raises(RemoteProtocolError) as info:
        parser.feed(b"<message>" + b"x" * 200 + b"</message>")
    assert info.value.error.condition is C.POLICY_VIOLATION


def test_a_retired_expat_parser_is_freed_without_the_garbage_collector() -> None:
    # Its handlers are closures over it: a restart, a release and close() drop them, so refcounting frees it.
    gc.collect()
    gc.disable()
    try:
        parser = XMLStreamParser()
        parser.feed(HEADER + b"<message><body>hi</body></message>")
        parser.reset()
        parser.feed(HEADER)
        assert parser.release()
        parser.feed(b"<presence/>")
        parser.close()
        del parser
        assert gc.collect() == 0
    finally:
        gc.enable()
