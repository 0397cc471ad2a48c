"""The XML element value: a small, fast tree made for XMPP stanzas.

Names are in Clark notation (``{namespace}local``); attribute names are plain (``type``) or Clark
(``{http://www.w3.org/XML/1998/namespace}lang``). Children are elements or text strings, in document
order, so mixed content (XHTML-IM) round-trips.

Every stanza-level element is held in ``jabber:client`` whatever namespace its stream declared (the parser
maps it, the serializer maps it back): a stanza read from a server-to-server stream can be routed to a client
without rewriting a single child.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping

from jaybird import ns

__all__ = ["Element"]


class Element:
    """One XML element with attributes and ordered children (elements and text)."""

    __slots__ = ("attrs", "children", "name")

    name: str
    attrs: dict[str, str]
    children: list[Element | str]

    def __init__(
        self,
        name: str,
        attrs: Mapping[str, str] | None = None,
        children: Iterable[Element | str] | None = None,
        *,
        text: str | None = None,
    ) -> None:
        self.name = name
        self.attrs = dict(attrs) if attrs else {}
        self.children = list(children) if children else []
        if text:
            self.children.append(text)

    # -- names --------------------------------------------------------------------------------------------
    @property
    def namespace(self) -> str:
        """The element's namespace ("" when it has none)."""
        return ns.split(self.name)[0]

    @property
    def local(self) -> str:
        """The element's local name."""
        return ns.split(self.name)[1]

    # -- attributes -----------------------------------------------------------------------------------------
    def get(self, key: str, default: str | None = None) -> str | None:
        return self.attrs.get(key, default)

    def set(self, key: str, value: str | None) -> None:
        """Set an attribute, or remove it when ``value`` is None."""
        if value is None:
            self.attrs.pop(key, None)
        else:
            self.attrs[key] = value

    @property
    def lang(self) -> str | None:
        """The ``xml:lang`` attribute, if any."""
        return self.attrs.get(XML_LANG)

    # -- children -------------------------------------------------------------------------------------------
    def append(self, child: Element | str) -> Element | str:
        self.children.append(child)
        return child

    def add(self, name: str, attrs: Mapping[str, str] | None = None, *, text: str | None = None) -> Element:
        """Append a new child element and return it."""
        child = Element(name, attrs, text=text)
        self.children.append(child)
        return child

    def remove(self, child: Element) -> None:
        self.children.remove(child)

    def elements(self) -> Iterator[Element]:
        """The child elements (text nodes skipped)."""
        for child in self.children:
            if isinstance(child, Element):
                yield child

    def find(self, name: str) -> Element | None:
        """The first child element called ``name`` (Clark notation), or None."""
        for child in self.children:
            if isinstance(child, Element) and child.name == name:
                return child
        return None

    def find_all(self, name: str) -> list[Element]:
        return [c for c in self.children if isinstance(c, Element) and c.name == name]

    def find_ns(self, namespace: str) -> Element | None:
        """The first child element in ``namespace``, or None."""
        prefix = "{" + namespace + "}"
        for child in self.children:
            if isinstance(child, Element) and child.name.startswith(prefix):
                return child
        return None

    def find_text(self, name: str) -> str | None:
        """The text of the first child called ``name``, or None when there is no such child."""
        child = self.find(name)
        return None if child is None else child.text

    @property
    def text(self) -> str:
        """The concatenated text directly inside this element (not of its descendants)."""
        parts = [c for c in self.children if isinstance(c, str)]
        if not parts:
            return ""
        return parts[0] if len(parts) == 1 else "".join(parts)

    @text.setter
    def text(self, value: str) -> None:
        self.children = [c for c in self.children if not isinstance(c, str)]
        if value:
            self.children.insert(0, value)

    # -- values ---------------------------------------------------------------------------------------------
    def copy(self) -> Element:
        """A deep copy: routing code changes copies, never the element it received."""
        new = Element.__new__(Element)
        new.name = self.name
        new.attrs = dict(self.attrs)
        new.children = [c.copy() if isinstance(c, Element) else c for c in self.children]
        return new

    def shallow_copy(self) -> Element:
        """A copy with its own attributes and child list, sharing the child elements."""
        new = Element.__new__(Element)
        new.name = self.name
        new.attrs = dict(self.attrs)
        new.children = list(self.children)
        return new

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Element):
            return NotImplemented
        return self.name == other.name and self.attrs == other.attrs and self.children == other.children

    __hash__ = None  # type: ignore[assignment]  # mutable

    def __repr__(self) -> str:
        from jaybird.xml.serializer import serialize

        text = serialize(self)
        if len(text) > 200:
            text = text[:197] + "..."
        return f"<Element {text}>"

    def __str__(self) -> str:
        from jaybird.xml.serializer import serialize

        return serialize(self)


XML_LANG = ns.clark(ns.XML, "lang")
