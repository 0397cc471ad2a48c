"""The serializer (jaybird.xml.serializer) checked against the parser: parse(serialize(x)) == x."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from jaybird import ns
from jaybird.xml.element import XML_LANG, Element
from jaybird.xml.parser import ElementReceived, XMLStreamParser
from jaybird.xml.serializer import escape_attr, escape_text, serialize

STREAM_PREFIXES = {ns.STREAM: "stream", ns.DIALBACK: "db"}


def parse_fragment(xml: str) -> Element:
    (event,) = XMLStreamParser(None).feed(xml.encode())
    assert isinstance(event, ElementReceived)
    return event.element


def parse_on_stream(xml: str, content_ns: str) -> Element:
    """Parse ``xml`` as a stanza on a stream that declared ``content_ns`` and the stream/dialback prefixes."""
    header = (f"<stream:stream xmlns='{content_ns}' xmlns:stream='{ns.STREAM}' xmlns:db='{ns.DIALBACK}'>").encode()
    events = XMLStreamParser().feed(header + xml.encode())
    assert len(events) == 2 and isinstance(events[1], ElementReceived)
    return events[1].element


# -- generated elements --------------------------------------------------------------------------------------

# XML 1.0 §2.2 Char (the utf-8 codec already leaves out the surrogates Python strings can hold).
xml_chars = st.characters(
    codec="utf-8",
    exclude_characters=[chr(c) for c in range(0x20) if chr(c) not in "\t\n\r"] + ["\ufffe", "\uffff"],
)
xml_text = st.text(xml_chars, min_size=1, max_size=20)
local_names = st.from_regex(r"\A[a-zA-Z_][a-zA-Z0-9_.\-]{0,8}\Z")
namespaces = st.sampled_from(
    ["", ns.CLIENT, "urn:a", "urn:b", "http://example.org/x?a=1&b='2'", "http://jabber.org/protocol/caps"]
)
attr_keys = st.one_of(
    local_names,
    st.builds(ns.clark, st.sampled_from(["urn:attr", "urn:other", ns.XML]), local_names),
)


def _children_ok(children: list[Element | str]) -> list[Element | str]:
    # The parser merges adjacent text runs, so the generator produces none.
    out: list[Element | str] = []
    for child in children:
        if isinstance(child, str) and out and isinstance(out[-1], str):
            continue
        out.append(child)
    return out


def elements(max_leaves: int = 12) -> st.SearchStrategy[Element]:
    leaf = st.builds(
        Element,
        st.builds(ns.clark, namespaces, local_names),
        st.dictionaries(attr_keys, st.text(xml_chars, max_size=12), max_size=4),
    )

    def extend(children: st.SearchStrategy[Element]) -> st.SearchStrategy[Element]:
        return st.builds(
            Element,
            st.builds(ns.clark, namespaces, local_names),
            st.dictionaries(attr_keys, st.text(xml_chars, max_size=12), max_size=3),
            st.lists(st.one_of(children, xml_text), max_size=5).map(_children_ok),
        )

    return st.recursive(leaf, extend, max_leaves=max_leaves)


@settings(max_examples=300, deadline=None)
@given(elements())
def test_roundtrip_generated_elements(element: Element) -> None:
    assert parse_fragment(serialize(element)) == element


@settings(max_examples=150, deadline=None)
@given(elements(), st.sampled_from([ns.CLIENT, ns.SERVER, ns.COMPONENT_ACCEPT]))
def test_roundtrip_on_a_stream_in_its_content_namespace(element: Element, content_ns: str) -> None:
    # A stanza held in jabber:client is written in the stream's namespace and read back into jabber:client.
    stanza = Element(ns.clark(ns.CLIENT, "message"), {"to": "a@b"}, [element])
    xml = serialize(stanza, default_ns=content_ns, content_ns=content_ns, prefixes=STREAM_PREFIXES)
    assert parse_on_stream(xml, content_ns) == stanza


# -- escaping ------------------------------------------------------------------------------------------------

AWKWARD = "a & b < c > d \" e ' f \r g \n h \t i ]]> j \r\n k"


def test_escaping_in_text_and_attributes_roundtrips() -> None:
    element = Element("{urn:x}e", {"a": AWKWARD, "b": " \t\n\r "}, text=AWKWARD)
    xml = serialize(element)
    assert "\r" not in xml  # a raw CR would be normalised away by any XML parser (XML 1.0 §2.11)
    assert parse_fragment(xml) == element


def test_escape_functions() -> None:
    assert escape_text("<a&b>\r") == "&lt;a&amp;b&gt;&#13;"
    assert escape_attr("<\"&'>\n\r\t") == "&lt;&quot;&amp;'&gt;&#10;&#13;&#9;"
    with pytest.raises(ValueError):
        escape_text("\x00")
    with pytest.raises(ValueError):
        escape_attr("\ufffe")


# -- namespaces ----------------------------------------------------------------------------------------------


def test_stream_and_dialback_prefixes() -> None:
    features = Element(ns.clark(ns.STREAM, "features"), children=[Element(ns.clark(ns.TLS, "starttls"))])
    xml = serialize(features, default_ns=ns.SERVER, content_ns=ns.SERVER, prefixes=STREAM_PREFIXES)
    assert xml.startswith("<stream:features>")
    assert parse_on_stream(xml, ns.SERVER) == features

    result = Element(ns.clark(ns.DIALBACK, "result"), {"from": "a", "to": "b"}, text="key")
    xml = serialize(result, default_ns=ns.SERVER, content_ns=ns.SERVER, prefixes=STREAM_PREFIXES)
    assert xml == '<db:result from="a" to="b">key</db:result>'
    assert parse_on_stream(xml, ns.SERVER) == result


def test_content_namespace_is_written_back() -> None:
    message = Element(ns.clark(ns.CLIENT, "message"), children=[Element(ns.clark(ns.CLIENT, "body"), text="x")])
    assert serialize(message, default_ns=ns.SERVER, content_ns=ns.SERVER) == "<message><body>x</body></message>"
    assert serialize(message, content_ns=ns.SERVER) == '<message xmlns="jabber:server"><body>x</body></message>'
    assert parse_on_stream(serialize(message, default_ns=ns.SERVER, content_ns=ns.SERVER), ns.SERVER) == message


def test_namespaced_attributes() -> None:
    element = Element(
        "{urn:e}e",
        {XML_LANG: "en", "{urn:attr}a": "1", "{urn:other}b": "2"},
        [Element("{urn:e}child", {"{urn:attr}c": "3"}), Element("{urn:attr}in-attr-ns")],
    )
    xml = serialize(element)
    assert 'xml:lang="en"' in xml and "xmlns:xml" not in xml
    assert parse_fragment(xml) == element


def test_no_namespace_child_inside_a_default_namespace() -> None:
    element = Element("{urn:e}e", children=[Element("plain", text="t")])
    assert parse_fragment(serialize(element)) == element
