"""The incremental, sans-I/O XML stream parser: bytes in, :data:`ParserEvent` values out.

One parser serves every transport (Prosody's choice): a TCP stream (root ``<stream:stream>``), a BOSH
body (root ``<body/>`` of XEP-0124, one document per HTTP body) and WebSocket frames (``root=None``, RFC 7395:
every top-level element is a document of its own and is reported as :class:`ElementReceived`).

The engine is expat (``pyexpat``, in the standard library), chosen over lxml by ``bench/parser.py`` (see
``docs/benchmarks.md``). It is driven so that the per-element Python work is one call per start tag, one per
end tag and one per text run (``buffer_text``).

Error conditions (RFC 6120):

* DTD, entity or other markup declarations, comments, processing instructions, and references to entities
  other than the five predefined ones -> ``restricted-xml`` (§11.1). A reference to an undeclared entity is
  reported as ``restricted-xml`` rather than ``not-well-formed``: both would be correct for a document
  without a DTD, but §11.1 names entity references as the thing a stream must not contain, which tells the
  peer exactly what to fix. Character references (``&#65;``) are plain XML and allowed.
* An XML declaration naming an encoding other than UTF-8 -> ``unsupported-encoding`` (§11.6).
* An undeclared or reserved namespace prefix -> ``bad-namespace-prefix`` (§4.9.3.2).
* Anything else that is not well-formed XML, including data after the root closed -> ``not-well-formed``
  (§4.9.3.13, §11.3).
* A root element outside the expected namespace -> ``invalid-namespace`` (§4.8.1, §4.9.3.10); the right
  namespace but another local name -> ``bad-format`` (§4.9.3.1: XML the receiver cannot process).
* Non-whitespace text directly inside the root, between stanzas -> ``bad-format`` (§4.9.3.1). It is
  well-formed XML, so ``not-well-formed`` would be untrue; only whitespace (keepalives, §4.6.1) may appear.
* A resource limit exceeded -> ``policy-violation`` (§4.9.3.14).

WebSocket frames are read as children of an invisible root, so a frame that carries its own XML declaration
or DTD is ``not-well-formed`` there. Names arrive in Clark notation; an element (or, in practice never seen,
an attribute) in the stream's content namespace is reported in ``jabber:client``.

A failure is final: every later :meth:`XMLStreamParser.feed` (and a :meth:`~XMLStreamParser.reset`) keeps
raising the same stream error, because a stream error always ends the stream (§4.9.1).
"""

from __future__ import annotations

import pyexpat
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from itertools import islice

from jaybird import ns
from jaybird.errors import RemoteProtocolError, StreamError, StreamErrorCondition
from jaybird.xml.element import Element

__all__ = ["ElementReceived", "ParserEvent", "StreamClosed", "StreamOpened", "XMLStreamParser"]

_Condition = StreamErrorCondition


@dataclass(frozen=True, slots=True)
class StreamOpened:
    """The root start tag arrived. ``attrs`` use plain or Clark names (``xml:lang`` in Clark notation).

    ``default_ns`` is the namespace the root declared with ``xmlns`` (None when it declared none) and
    ``prefixes`` maps each prefix the root declared to its namespace (``{"stream": ns.STREAM}``): the stream
    machine checks both (RFC 6120 §4.8).
    """

    name: str
    attrs: Mapping[str, str]
    default_ns: str | None = None
    prefixes: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class ElementReceived:
    """A complete child of the root (a stanza, ``<stream:features/>``...), or a WebSocket frame's element."""

    element: Element


@dataclass(frozen=True, slots=True)
class StreamClosed:
    """The root end tag arrived (``</stream:stream>``, ``</body>``)."""


ParserEvent = StreamOpened | ElementReceived | StreamClosed

_ERR = pyexpat.errors.codes
_EXPAT_CONDITIONS: dict[int, StreamErrorCondition] = {
    _ERR[pyexpat.errors.XML_ERROR_UNBOUND_PREFIX]: _Condition.BAD_NAMESPACE_PREFIX,
    _ERR[pyexpat.errors.XML_ERROR_UNDECLARING_PREFIX]: _Condition.BAD_NAMESPACE_PREFIX,
    _ERR[pyexpat.errors.XML_ERROR_RESERVED_PREFIX_XML]: _Condition.BAD_NAMESPACE_PREFIX,
    _ERR[pyexpat.errors.XML_ERROR_RESERVED_PREFIX_XMLNS]: _Condition.BAD_NAMESPACE_PREFIX,
    _ERR[pyexpat.errors.XML_ERROR_RESERVED_NAMESPACE_URI]: _Condition.BAD_NAMESPACE_PREFIX,
    _ERR[pyexpat.errors.XML_ERROR_UNDEFINED_ENTITY]: _Condition.RESTRICTED_XML,
    _ERR[pyexpat.errors.XML_ERROR_RECURSIVE_ENTITY_REF]: _Condition.RESTRICTED_XML,
    _ERR[pyexpat.errors.XML_ERROR_EXTERNAL_ENTITY_HANDLING]: _Condition.RESTRICTED_XML,
}
#: What expat puts between a namespace and a local name: "}" makes "ns}local", one "{" short of Clark.
_SEP = "}"
_TEXT_BUFFER = 1024
#: In fragment mode every frame is parsed as a child of this invisible root, so one expat parser can read any
#: number of top-level elements. It declares no namespace, so frames keep exactly the namespaces they declare.
_FRAGMENT_ROOT = b"<fragments>"
#: Bound on expat's table of names, so a peer inventing names cannot grow memory without limit.
_NAME_CACHE_SIZE = 4096
_UTF8 = frozenset({"utf-8", "utf8"})
_XML_WHITESPACE = " \t\r\n"


def _fail(condition: StreamErrorCondition, text: str) -> RemoteProtocolError:
    return RemoteProtocolError(StreamError(condition, text))


def _qualify(name: str, content_ns: str | None) -> str:
    """expat's ``namespace}local`` in Clark notation; the stream's content namespace reported as jabber:client."""
    if _SEP not in name or name[0] == "{":
        return name
    namespace, local = name.split(_SEP, 1)
    if namespace == content_ns:
        namespace = ns.CLIENT
    return "{" + namespace + "}" + local


#: Names (namespace, local) every login and chat sends, in both roles: put into expat's name table when a
#: root opens (see ``root_start``). An empty namespace is an unprefixed attribute.
_COMMON_NAMES: tuple[tuple[str, str], ...] = (
    *(
        (ns.CLIENT, local)
        for local in ("iq", "message", "presence", "body", "thread", "subject", "show", "status", "priority", "error")
    ),
    *(
        ("", local)
        for local in (
            "to",
            "from",
            "id",
            "type",
            "version",
            "mechanism",
            "jid",
            "name",
            "subscription",
            "ask",
            "ver",
            "node",
            "hash",
            "h",
            "resume",
            "previd",
            "var",
            "category",
            "max",
        )
    ),
    (ns.XML, "lang"),
    *((ns.STREAM, local) for local in ("features", "error")),
    *((ns.TLS, local) for local in ("starttls", "proceed", "required")),
    *(
        (ns.SASL, local)
        for local in ("auth", "response", "challenge", "success", "failure", "abort", "mechanisms", "mechanism")
    ),
    *((ns.BIND, local) for local in ("bind", "resource", "jid")),
    (ns.SESSION, "session"),
    *(("jabber:iq:roster", local) for local in ("query", "item", "group")),
    *(("http://jabber.org/protocol/disco#info", local) for local in ("query", "identity", "feature")),
    ("http://jabber.org/protocol/disco#items", "query"),
    ("http://jabber.org/protocol/caps", "c"),
    *(("urn:xmpp:sm:3", local) for local in ("sm", "enable", "enabled", "r", "a", "resume", "resumed")),
    *(("urn:xmpp:carbons:2", local) for local in ("enable", "received", "sent", "private")),
    *(("http://jabber.org/protocol/chatstates", local) for local in ("active", "composing", "paused")),
    *(("urn:xmpp:receipts", local) for local in ("request", "received")),
    ("urn:xmpp:sid:0", "origin-id"),
    ("urn:xmpp:ping", "ping"),
)
_COMMON_TABLES: dict[str | None, dict[str, str]] = {}


def _common_names(content_ns: str | None) -> dict[str, str]:
    """expat name-table entries (``namespace}local`` -> Clark) for :data:`_COMMON_NAMES` in a stream whose
    content namespace is ``content_ns`` (None or one of the few stanza namespaces: a bounded cache)."""
    table = _COMMON_TABLES.get(content_ns)
    if table is None:
        names = list(_COMMON_NAMES)
        if content_ns is not None and content_ns != ns.CLIENT:  # jabber:server or a component's: same stanzas
            names += [(content_ns, local) for namespace, local in _COMMON_NAMES if namespace == ns.CLIENT]
        keys = (namespace + _SEP + local if namespace else local for namespace, local in names)
        table = _COMMON_TABLES[content_ns] = {key: _qualify(key, content_ns) for key in keys}
    return table


def _clark_attrs(attrs: dict[str, str]) -> dict[str, str]:
    return {("{" + key if _SEP in key else key): value for key, value in attrs.items()}


class XMLStreamParser:
    """Parse an XML stream incrementally; any chunking of the input gives the same events.

    Limits (each exceeded -> ``policy-violation``): ``max_stanza_bytes`` bytes in one child of the root
    (counted from its start tag, also while it is incomplete), ``max_depth`` levels of nesting counted from
    the stanza (the stanza itself is level 1), ``max_attrs`` attributes on one element (namespace
    declarations not counted), ``max_children`` child nodes of one element (a run of text is one node).
    """

    __slots__ = (
        "_error",
        "_events",
        "_fed",
        "_max_attrs",
        "_max_children",
        "_max_depth",
        "_max_stanza_bytes",
        "_opening",
        "_parser",
        "_recycle",
        "_root",
        "_stack",
        "_stanza",
        "_stanza_start",
    )

    def __init__(
        self,
        root: str | None = "{http://etherx.jabber.org/streams}stream",
        *,
        max_stanza_bytes: int = 256 * 1024,
        max_depth: int = 64,
        max_attrs: int = 64,
        max_children: int = 4096,
    ) -> None:
        for name, value in (
            ("max_stanza_bytes", max_stanza_bytes),
            ("max_depth", max_depth),
            ("max_attrs", max_attrs),
            ("max_children", max_children),
        ):
            if value < 1:
                raise ValueError(f"{name} must be at least 1, not {value}")
        self._root = root
        self._max_stanza_bytes = max_stanza_bytes
        self._max_depth = max_depth
        self._max_attrs = max_attrs
        self._max_children = max_children
        self._error: StreamError | None = None
        self._events: list[ParserEvent] = []
        self._stack: list[list[Element | str]] = []
        self._stanza: Element | None = None
        self._stanza_start = 0
        self._fed = 0
        # what a rebuilt parser must read first: the root's (name, default namespace, prefixes); None until the
        # root opened. Kept as parts: the tag is written only when a parser is rebuilt, rarely.
        self._opening: tuple[str, str | None, Mapping[str, str]] | None = None
        self._recycle = False
        self._parser: pyexpat.XMLParserType | None = self._new_document()

    # -- public API -----------------------------------------------------------------------------------------
    def feed(self, data: bytes) -> list[ParserEvent]:
        """Parse the next bytes of the stream and return the events they completed.

        Raises :class:`~jaybird.errors.RemoteProtocolError` carrying the stream error to send; events that
        the same call completed before the error are dropped with the stream.
        """
        if self._error is not None:
            raise RemoteProtocolError(self._error)
        parser = self._parser
        if parser is None:
            opening = self._opening
            parser = self._parser = self._new_document(b"" if opening is None else _start_tag(*opening))
        step = self._max_stanza_bytes
        try:
            if len(data) <= step:
                parser.Parse(data, False)
                self._fed += len(data)
                self._check_pending(parser)
            else:
                # Slices no longer than the stanza limit, so an oversized stanza is caught before expat has
                # buffered all of a huge chunk.
                view = memoryview(data)
                for offset in range(0, len(view), step):
                    piece = view[offset : offset + step]
                    parser.Parse(piece, False)
                    self._fed += len(piece)
                    self._check_pending(parser)
        except pyexpat.ExpatError as exc:
            self._events.clear()
            self._error = self._text_before(parser) or StreamError(
                _EXPAT_CONDITIONS.get(exc.code, _Condition.NOT_WELL_FORMED), str(exc)
            )
            raise RemoteProtocolError(self._error) from None
        except RemoteProtocolError as exc:
            self._events.clear()
            self._error = exc.error
            raise
        if self._recycle:
            self.release()
        if not self._events:
            return []
        events = self._events.copy()
        self._events.clear()
        return events

    def reset(self) -> None:
        """Forget the current document: a new one (a new stream header) follows (RFC 6120 §4.3.3)."""
        self._events.clear()
        self._stack.clear()
        self._opening = None
        if self._parser is not None:
            _retire(self._parser)
        self._parser = self._new_document()

    def close(self) -> None:
        """The stream is over: free the expat parser now. (Its handlers are closures over it and over this
        object, a reference cycle that only the garbage collector would otherwise free, with everything the
        connection holds.) A later :meth:`feed` starts a new document."""
        if self._parser is not None:
            _retire(self._parser)
            self._parser = None
        self._opening = None
        self._stack.clear()
        self._stanza = None

    def release(self) -> bool:
        """Free the expat parser between two stanzas; the next :meth:`feed` builds a new one and replays the
        root's start tag into it first (nothing is reported for the replay). True when released (or already).

        An expat parser keeps every buffer and name table it ever grew (about 20 KB after a login) until it is
        freed: a connection idle for a while gives all that back, and the name tables cannot grow past
        ``_NAME_CACHE_SIZE`` names (a peer inventing names gets a fresh parser instead). Only possible where
        nothing is held: not inside a stanza, no partial tag buffered, the root opened, no error.
        """
        parser = self._parser
        if parser is None:
            return True
        if self._error is not None or self._stack or parser.CurrentByteIndex != self._fed:
            return False
        if self._opening is None and self._root is not None:
            return False
        if parser.buffer_used:  # whitespace between stanzas, not yet handed over: check it now
            try:
                parser.buffer_text = False
            except RemoteProtocolError as exc:
                self._error = exc.error
                return False
        _retire(parser)
        self._parser = None
        self._recycle = False
        return True

    @property
    def holding_parser(self) -> bool:
        """Whether an expat parser is allocated (False after :meth:`release`, until the next feed)."""
        return self._parser is not None

    # -- internals ------------------------------------------------------------------------------------------
    def _text_before(self, parser: pyexpat.XMLParserType) -> StreamError | None:
        """The error in text expat still buffered before the syntax error it found, if there is one.

        Between stanzas, text is checked when expat hands it over, which depends on where the chunks were
        cut; flushing it here makes the reported error the first one in the document, whatever the chunking.
        """
        if self._stack or not parser.buffer_used:
            return None
        try:
            parser.buffer_text = False  # flushing hands the buffered text to the handler, which checks it
        except RemoteProtocolError as exc:
            return exc.error
        return None

    def _check_pending(self, parser: pyexpat.XMLParserType) -> None:
        # Between stanzas, expat's position is the start of the bytes it holds unparsed (a partial tag).
        start = self._stanza_start if self._stack else parser.CurrentByteIndex
        if self._fed - start > self._max_stanza_bytes:
            raise _fail(_Condition.POLICY_VIOLATION, f"stanza larger than {self._max_stanza_bytes} bytes")

    def _new_document(self, replay: bytes = b"") -> pyexpat.XMLParserType:
        """A fresh expat parser; its handlers are closures for speed (no attribute lookups per event).
        ``replay`` is a root start tag already reported once: parsed here again, silently."""
        parser = pyexpat.ParserCreate("UTF-8", _SEP)
        # The text buffer is allocated per parser, so per connection: expat's default of 8 KB was a quarter of
        # an idle client's memory. A longer text run arrives in pieces, which the text handler joins anyway.
        parser.buffer_size = _TEXT_BUFFER
        parser.buffer_text = True
        parser.SetParamEntityParsing(pyexpat.XML_PARAM_ENTITY_PARSING_NEVER)
        # expat >= 2.6 may hold back a large token until more data arrives; a stream needs every stanza now.
        set_deferral: Callable[[bool], None] | None = getattr(parser, "SetReparseDeferralEnabled", None)
        if set_deferral is not None:
            set_deferral(False)
        self._install_restrictions(parser)

        events = self._events
        max_depth, max_attrs, max_children = self._max_depth, self._max_attrs, self._max_children
        max_bytes = self._max_stanza_bytes
        root = self._root
        declared: dict[str | None, str | None] = {}
        interned: dict[str, str] = parser.intern
        known = 0  # how many entries of `interned` are already in Clark notation
        content_ns: list[str | None] = [None]  # the root's default namespace when it is a stanza namespace
        new_element = Element.__new__
        open_children = self._stack  # the child lists of the open elements of the current stanza
        current: list[Element | str] | None = None  # the innermost one

        def qualify(name: str) -> str:
            return _qualify(name, content_ns[0])

        def convert_new_names() -> None:
            """Teach expat to hand over the names it met since the last call in Clark notation.

            expat looks every name up in its intern table and returns the table's value, so storing the Clark
            form there makes it deliver element and attribute names ready to use, with no work per element.
            """
            nonlocal known
            fresh = list(islice(reversed(interned), len(interned) - known)) if known <= len(interned) else None
            for key in interned if fresh is None else fresh:
                # (namespace declarations on the root put None (no prefix) there too; a name without a
                # namespace is already what it should be)
                if type(key) is str and _SEP in key:
                    interned[key] = qualify(key)
            known = len(interned)

        def learn(name: str, attrs: dict[str, str]) -> tuple[str, dict[str, str]]:
            """expat met names it had not seen: convert them (and the element's name and attributes, which it
            already looked up)."""
            if len(interned) > _NAME_CACHE_SIZE:  # a peer inventing names must not grow the tables forever:
                interned.clear()  # ours now, expat's own (which only a new parser drops) after this feed
                self._recycle = True
            convert_new_names()
            if attrs and _SEP in "".join(attrs):
                attrs = {qualify(key): value for key, value in attrs.items()}
            return qualify(name), attrs

        def start(name: str, attrs: dict[str, str]) -> None:
            nonlocal current
            if len(interned) != known:
                name, attrs = learn(name, attrs)
            if attrs and len(attrs) > max_attrs:
                raise _fail(_Condition.POLICY_VIOLATION, f"more than {max_attrs} attributes")
            element = new_element(Element)
            element.name = name
            element.attrs = attrs
            children: list[Element | str] = []
            element.children = children
            if current is None:
                self._stanza_start = parser.CurrentByteIndex
                self._stanza = element
            else:
                if len(open_children) >= max_depth:
                    raise _fail(_Condition.POLICY_VIOLATION, f"elements nested deeper than {max_depth}")
                current.append(element)
            open_children.append(children)
            current = children

        def end(name: str) -> None:
            nonlocal current
            if current is None:  # the root's end tag
                if root is None:  # someone closed the invisible fragment root
                    raise _fail(_Condition.NOT_WELL_FORMED, f"unexpected end tag {name!r}")
                events.append(StreamClosed())
                return
            if len(current) > max_children:
                raise _fail(_Condition.POLICY_VIOLATION, f"more than {max_children} children")
            open_children.pop()
            if open_children:
                current = open_children[-1]
                return
            current = None
            if parser.CurrentByteIndex - self._stanza_start > max_bytes:
                raise _fail(_Condition.POLICY_VIOLATION, f"stanza larger than {max_bytes} bytes")
            assert self._stanza is not None
            events.append(ElementReceived(self._stanza))
            self._stanza = None

        def text(data: str) -> None:
            if current is None:
                if data.strip(_XML_WHITESPACE):
                    raise _fail(_Condition.BAD_FORMAT, "text between stanzas")
            elif current and type(current[-1]) is str:
                current[-1] += data
            else:
                current.append(data)

        def namespace_declared(prefix: str | None, uri: str | None) -> None:
            declared[prefix] = uri

        def root_start(name: str, attrs: dict[str, str]) -> None:
            nonlocal known
            qualified = "{" + name if _SEP in name else name
            if root is not None and qualified != root:
                expected_ns, expected_local = ns.split(root)
                got_ns, got_local = ns.split(qualified)
                if got_ns != expected_ns:
                    raise _fail(_Condition.INVALID_NAMESPACE, f"root element in namespace {got_ns!r}")
                raise _fail(_Condition.BAD_FORMAT, f"root element {got_local!r}, expected {expected_local!r}")
            if len(attrs) > max_attrs:
                raise _fail(_Condition.POLICY_VIOLATION, f"more than {max_attrs} attributes")
            default_ns = declared.pop(None, None)
            prefixes = {prefix: uri for prefix, uri in declared.items() if prefix is not None and uri}
            if default_ns in ns.STANZA_NAMESPACES:
                content_ns[0] = default_ns
            # The root's own names are converted, then the names of a login and a chat are added ready-made:
            # each stream restart starts an empty table, and learning them one stanza at a time cost more than
            # the rest of the restart. Every entry is exactly what learning it would have stored.
            convert_new_names()
            interned.update(_common_names(content_ns[0]))
            known = len(interned)
            parser.StartNamespaceDeclHandler = None
            parser.StartElementHandler = start
            if root is not None and not replay:
                events.append(StreamOpened(qualified, _clark_attrs(attrs), default_ns, prefixes))
                self._opening = (qualified, default_ns, prefixes)

        parser.StartNamespaceDeclHandler = namespace_declared
        parser.StartElementHandler = root_start
        parser.EndElementHandler = end
        parser.CharacterDataHandler = text
        self._stanza_start = 0
        self._fed = 0
        opening = _FRAGMENT_ROOT if root is None else replay
        if opening:
            parser.Parse(opening, False)
            self._fed = len(opening)
        return parser

    @staticmethod
    def _install_restrictions(parser: pyexpat.XMLParserType) -> None:
        """RFC 6120 §11.1: refuse DTDs, declarations, comments and PIs the moment expat sees them.

        The DOCTYPE handler fires at ``<!DOCTYPE`` before the internal subset is read, so no entity is ever
        declared, let alone expanded (no "billion laughs"). The handlers are shared by every parser.
        """
        parser.StartDoctypeDeclHandler = _REFUSE_DOCTYPE
        parser.EntityDeclHandler = _REFUSE_ENTITY
        parser.UnparsedEntityDeclHandler = _REFUSE_ENTITY
        parser.NotationDeclHandler = _REFUSE_NOTATION
        parser.ElementDeclHandler = _REFUSE_ELEMENT_DECL
        parser.AttlistDeclHandler = _REFUSE_ATTLIST
        parser.ExternalEntityRefHandler = _REFUSE_EXTERNAL  # type: ignore[assignment]
        parser.SkippedEntityHandler = _REFUSE_ENTITY_REF
        parser.CommentHandler = _REFUSE_COMMENT
        parser.ProcessingInstructionHandler = _REFUSE_PI
        parser.XmlDeclHandler = _xml_declaration


def _retire(parser: pyexpat.XMLParserType) -> None:
    """Drop the handlers of a parser no longer used: they are closures over it (see ``_new_document``)."""
    parser.StartElementHandler = None
    parser.EndElementHandler = None
    parser.CharacterDataHandler = None
    parser.StartNamespaceDeclHandler = None


def _refuse(what: str) -> Callable[..., None]:
    def handler(*_: object) -> None:
        raise _fail(_Condition.RESTRICTED_XML, f"{what} not allowed in an XML stream")

    return handler


_REFUSE_DOCTYPE = _refuse("document type declaration")
_REFUSE_ENTITY = _refuse("entity declaration")
_REFUSE_NOTATION = _refuse("notation declaration")
_REFUSE_ELEMENT_DECL = _refuse("element declaration")
_REFUSE_ATTLIST = _refuse("attribute-list declaration")
_REFUSE_EXTERNAL = _refuse("external entity reference")
_REFUSE_ENTITY_REF = _refuse("entity reference")
_REFUSE_COMMENT = _refuse("comment")
_REFUSE_PI = _refuse("processing instruction")


def _xml_declaration(version: str, encoding: str | None, standalone: int) -> None:
    if encoding is not None and encoding.lower() not in _UTF8:
        raise _fail(_Condition.UNSUPPORTED_ENCODING, f"encoding {encoding!r}: only UTF-8 (RFC 6120 §11.6)")


def _start_tag(name: str, default_ns: str | None, prefixes: Mapping[str, str]) -> bytes:
    """A start tag for the root ``name`` (Clark notation) declaring the same namespaces: what a rebuilt parser
    must read first to resolve the prefixes of the stanzas that follow."""
    namespace, local = ns.split(name)
    prefix = next((p for p, uri in prefixes.items() if uri == namespace), None)
    tag = local if prefix is None else f"{prefix}:{local}"
    declarations = "" if default_ns is None else f' xmlns="{_attr(default_ns)}"'
    declarations += "".join(f' xmlns:{p}="{_attr(uri)}"' for p, uri in prefixes.items())
    if prefix is None and namespace and default_ns != namespace:  # not declared in a way kept above
        tag = f"_root:{local}"
        declarations += f' xmlns:_root="{_attr(namespace)}"'
    return f"<{tag}{declarations}>".encode()


def _attr(value: str) -> str:
    return value.replace("&", "&amp;").replace("<", "&lt;").replace('"', "&quot;")
