"""How a stream's XML travels: one TCP stream, WebSocket frames (RFC 7395) or BOSH bodies (XEP-0124/0206).

The stream machine negotiates the same way over each; the framing changes only three things:

* opening and closing: the stream header and ``</stream:stream>``; ``<open/>`` and ``<close/>`` in the
  ``urn:ietf:params:xml:ns:xmpp-framing`` namespace (RFC 7395 §3.3, §3.6); on BOSH, attributes of a ``<body/>``
  (XEP-0206 §4: ``to`` and ``xmpp:version`` create the session, ``xmpp:restart='true'`` restarts the stream,
  XEP-0124 §13: ``type='terminate'`` ends it);
* writing: on TCP an element is written inside the header's namespace scope; in a frame every element is a
  complete document declaring its own namespaces, so stanzas carry ``xmlns='jabber:client'`` (RFC 7395 §3.4);
* reading: the parser runs in fragment mode (``root=None``) and :class:`Unframer` translates the framing's
  open and close elements into the parser's :class:`~jaybird.xml.parser.StreamOpened` /
  :class:`~jaybird.xml.parser.StreamClosed`, so negotiation sees one kind of stream whatever carried it.

BOSH: the machine knows nothing of HTTP. Session ids, request ids, acks, ``wait`` and ``hold`` belong to the
transport (a BOSH client, or a connection manager). The machine writes its stream-level signals as an
attribute-only ``<body/>`` frame (:func:`body_frame`), which the transport merges into the next body it sends
(:func:`wrap_body`); every other frame is payload inside that body. The transport feeds every body it receives,
whole and in ``rid`` order, to the machine, which takes a body as the stream header when it waits for one.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Mapping, Sequence
from typing import Final

from jaybird import ns
from jaybird.errors import StreamError, StreamErrorCondition
from jaybird.xml import parser
from jaybird.xml.element import XML_LANG, Element
from jaybird.xml.serializer import escape_attr

__all__ = [
    "BODY",
    "CLOSE",
    "CLOSE_FRAME",
    "OPEN",
    "TERMINATE_FRAME",
    "XBOSH_RESTART",
    "XBOSH_VERSION",
    "Framing",
    "Unframer",
    "body_frame",
    "body_frame_attrs",
    "is_body_frame",
    "open_frame",
    "wrap_body",
]

OPEN: Final = ns.clark(ns.FRAMING, "open")
CLOSE: Final = ns.clark(ns.FRAMING, "close")
BODY: Final = ns.clark(ns.HTTPBIND, "body")
XBOSH_VERSION: Final = ns.clark(ns.XBOSH, "version")
XBOSH_RESTART: Final = ns.clark(ns.XBOSH, "restart")
_SEE_OTHER_URI: Final = "see-other-uri"
_STREAM_ERROR: Final = ns.clark(ns.STREAM, "error")
_BODY_START: Final = b"<body "
_C = StreamErrorCondition


class Framing(enum.Enum):
    """What carries the stream."""

    TCP = "tcp"  # RFC 6120: one XML document per stream, restarted after TLS and SASL
    WEBSOCKET = "websocket"  # RFC 7395: one element per WebSocket message
    BOSH = "bosh"  # XEP-0124/XEP-0206: elements wrapped in HTTP request and response bodies

    @property
    def framed(self) -> bool:
        """Whether every element travels as a document of its own."""
        return self is not Framing.TCP

    @property
    def parser_root(self) -> str | None:
        return ns.clark(ns.STREAM, "stream") if self is Framing.TCP else None


def _attrs(values: Iterable[tuple[str, str | None]]) -> str:
    return "".join(f" {key}='{escape_attr(value)}'" for key, value in values if value is not None)


def open_frame(*, from_: str | None, to: str | None, stream_id: str | None, lang: str | None) -> bytes:
    """``<open/>`` (RFC 7395 §3.3.1, §3.3.2): the WebSocket stream header."""
    attrs = _attrs((("from", from_), ("to", to), ("id", stream_id), ("version", "1.0"), ("xml:lang", lang)))
    return f"<open xmlns='{ns.FRAMING}'{attrs}/>".encode()


#: ``<close/>`` (RFC 7395 §3.6): the WebSocket ``</stream:stream>``.
CLOSE_FRAME: Final = f"<close xmlns='{ns.FRAMING}'/>".encode()

_BOSH_NAMES: Final = {XBOSH_VERSION: "xmpp:version", XBOSH_RESTART: "xmpp:restart", XML_LANG: "xml:lang"}


def _body(attrs: Mapping[str, str], payload: Sequence[bytes]) -> bytes:
    named = ((_BOSH_NAMES.get(key, key), value) for key, value in attrs.items())
    head = f"<body xmlns='{ns.HTTPBIND}' xmlns:xmpp='{ns.XBOSH}'{_attrs(named)}>".encode()
    return b"".join((head, *payload, b"</body>"))


def body_frame(attrs: Mapping[str, str]) -> bytes:
    """An attribute-only ``<body/>``: a stream-level signal for the BOSH transport to merge into its next body.

    ``attrs`` may name ``xmpp:`` (XEP-0206) and ``xml:`` attributes in Clark notation.
    """
    return _body(attrs, ()).replace(b"></body>", b"/>", 1)


#: The client ends the session (XEP-0124 §13); a connection manager answers in kind.
TERMINATE_FRAME: Final = body_frame({"type": "terminate"})


def is_body_frame(frame: bytes) -> bool:
    """Whether a frame from the machine is a stream-level ``<body/>`` rather than payload."""
    return frame.startswith(_BODY_START)


def body_frame_attrs(frame: bytes) -> dict[str, str]:
    """The attributes of a :func:`body_frame` (Clark names), for the transport to merge."""
    events = parser.XMLStreamParser(root=None).feed(frame)
    if len(events) != 1 or not isinstance(events[0], parser.ElementReceived) or events[0].element.name != BODY:
        raise ValueError(f"not a BOSH body frame: {frame[:80]!r}")
    return dict(events[0].element.attrs)


def wrap_body(attrs: Mapping[str, str], payload: Sequence[bytes]) -> bytes:
    """The HTTP body: session attributes (``rid``, ``sid``...) and the machine's frames inside it."""
    if any(is_body_frame(frame) for frame in payload):
        raise ValueError("merge body frames into the attributes; they cannot nest")
    return _body(attrs, payload)


class Unframer:
    """Translates what the fragment parser read into the events of a TCP stream (see the module docstring).

    Kept per stream: a BOSH restart response carries only features (XEP-0206 §5), so the stream id and the
    version agreed when the session was created hold for every later header of the session.
    """

    __slots__ = ("_framing", "_initiating", "_stream_id", "_version")

    def __init__(self, framing: Framing, *, initiating: bool) -> None:
        if not framing.framed:
            raise ValueError("a TCP stream needs no unframing")
        self._framing = framing
        self._initiating = initiating
        self._stream_id: str | None = None
        self._version: str | None = None

    def translate(self, event: parser.ParserEvent, *, awaiting_header: bool) -> list[parser.ParserEvent]:
        if not isinstance(event, parser.ElementReceived):
            return [event]  # the fragment parser reports nothing else; kept for completeness
        element = event.element
        if self._framing is Framing.WEBSOCKET:
            return self._websocket(element)
        if element.name != BODY:
            return [parser.StreamOpened(element.name, element.attrs)] if awaiting_header else [event]
        return self._bosh(element, awaiting_header)

    def _websocket(self, element: Element) -> list[parser.ParserEvent]:
        name = element.name
        if name == OPEN:
            return [parser.StreamOpened(name, element.attrs)]
        if name == CLOSE:
            uri = element.get(_SEE_OTHER_URI)
            if uri is None:
                return [parser.StreamClosed()]
            # RFC 7395 §3.6.1: a redirect travels on <close/>; it is reported like TCP's see-other-host, with the
            # new endpoint's URI as the "host", so a driver handles both in one place.
            return [_error_element(StreamError(_C.SEE_OTHER_HOST, other_host=uri)), parser.StreamClosed()]
        return [parser.ElementReceived(element)]

    def _bosh(self, body: Element, awaiting_header: bool) -> list[parser.ParserEvent]:
        attrs = body.attrs
        children = [parser.ElementReceived(child) for child in body.elements()]
        terminate = attrs.get("type") == "terminate"
        out: list[parser.ParserEvent] = []
        if awaiting_header and not terminate:
            # An empty poll response is no header: only the session creation response (it has a sid) or a body
            # carrying the features is. A connection manager takes every client body as the header it awaits.
            if self._initiating and "sid" not in attrs and not children:
                return []
            out.append(self._header(body))
        out.extend(children)
        if terminate:
            condition = attrs.get("condition")
            if condition is not None and not any(c.element.name == _STREAM_ERROR for c in children):
                out.append(_error_element(_terminal_error(condition, body)))
            out.append(parser.StreamClosed())
        return out

    def _header(self, body: Element) -> parser.StreamOpened:
        attrs = body.attrs
        self._stream_id = attrs.get("authid", self._stream_id)
        self._version = attrs.get(XBOSH_VERSION, self._version)
        values = {
            key: value
            for key, value in (
                ("from", attrs.get("from")),
                ("to", attrs.get("to")),
                ("id", self._stream_id),
                ("version", self._version),
                (XML_LANG, attrs.get(XML_LANG)),
            )
            if value is not None
        }
        return parser.StreamOpened(BODY, values)


def _error_element(error: StreamError) -> parser.ElementReceived:
    return parser.ElementReceived(error.to_element())


def _terminal_error(condition: str, body: Element) -> StreamError:
    """XEP-0124 §17.2 terminal conditions as stream errors: the same name where RFC 6120 has one."""
    if condition == _SEE_OTHER_URI:
        uri = body.find(ns.clark(ns.HTTPBIND, "uri"))
        return StreamError(_C.SEE_OTHER_HOST, other_host=uri.text if uri is not None else None)
    try:
        return StreamError(StreamErrorCondition(condition), text="BOSH session terminated")
    except ValueError:
        return StreamError(_C.UNDEFINED_CONDITION, text=f"BOSH session terminated: {condition}")
