"""Typed stanzas (RFC 6120 §8): :class:`Message`, :class:`Presence`, :class:`Iq` over one :class:`Element`.

A stanza object is a thin typed view of its element (no copy, no parse up front): attributes are read when asked
for, so routing a stanza costs only what the router looks at. ``reply()`` and ``error_reply()`` build new
stanzas; nothing here changes the stanza it was called on.

Payloads (the extension elements inside a stanza) are plain classes with a ``name`` (Clark notation) and
``from_element`` / ``to_element``. A :class:`PayloadRegistry` belongs to one client or server instance, never to
the process, so two clients in one program can understand different extensions.
"""

from __future__ import annotations

import enum
import secrets
from collections.abc import Iterator
from typing import ClassVar, Generic, Protocol, Self, TypeVar

from jaybird import ns
from jaybird.errors import LocalProtocolError, StanzaError
from jaybird.jid import JID
from jaybird.xml.element import XML_LANG, Element

__all__ = [
    "Iq",
    "IqType",
    "Message",
    "MessageType",
    "Payload",
    "PayloadRegistry",
    "Presence",
    "PresenceShow",
    "PresenceType",
    "Stanza",
    "new_id",
    "wrap",
]

_MESSAGE = ns.clark(ns.CLIENT, "message")
_PRESENCE = ns.clark(ns.CLIENT, "presence")
_IQ = ns.clark(ns.CLIENT, "iq")
_ERROR = ns.clark(ns.CLIENT, "error")
_BODY = ns.clark(ns.CLIENT, "body")
_SUBJECT = ns.clark(ns.CLIENT, "subject")
_THREAD = ns.clark(ns.CLIENT, "thread")
_SHOW = ns.clark(ns.CLIENT, "show")
_STATUS = ns.clark(ns.CLIENT, "status")
_PRIORITY = ns.clark(ns.CLIENT, "priority")


def new_id() -> str:
    """A fresh stanza id: unpredictable, so replies cannot be forged by guessing (RFC 6120 §8.1.3)."""
    return secrets.token_urlsafe(12)


class MessageType(enum.Enum):
    """RFC 6121 §5.2.2."""

    CHAT = "chat"
    ERROR = "error"
    GROUPCHAT = "groupchat"
    HEADLINE = "headline"
    NORMAL = "normal"


class PresenceType(enum.Enum):
    """RFC 6121 §4.7.1; ``AVAILABLE`` stands for the absent ``type`` attribute."""

    AVAILABLE = "available"
    ERROR = "error"
    PROBE = "probe"
    SUBSCRIBE = "subscribe"
    SUBSCRIBED = "subscribed"
    UNAVAILABLE = "unavailable"
    UNSUBSCRIBE = "unsubscribe"
    UNSUBSCRIBED = "unsubscribed"


class PresenceShow(enum.Enum):
    """RFC 6121 §4.7.2.1; ``ONLINE`` stands for the absent ``<show/>``."""

    ONLINE = "online"
    AWAY = "away"
    CHAT = "chat"
    DND = "dnd"
    XA = "xa"


class IqType(enum.Enum):
    """RFC 6120 §8.2.3."""

    GET = "get"
    SET = "set"
    RESULT = "result"
    ERROR = "error"


class Stanza:
    """Base of the three stanza kinds: a typed view of one element."""

    __slots__ = ("element",)
    tag: ClassVar[str]

    def __init__(self, element: Element) -> None:
        if element.name != self.tag:
            raise ValueError(f"{type(self).__name__} needs a {self.tag} element, not {element.name}")
        self.element = element

    # -- addressing -----------------------------------------------------------------------------------------
    @property
    def to(self) -> JID | None:
        value = self.element.attrs.get("to")
        return JID(value) if value else None

    @to.setter
    def to(self, value: JID | str | None) -> None:
        self.element.set("to", None if value is None else str(value))

    @property
    def from_(self) -> JID | None:
        value = self.element.attrs.get("from")
        return JID(value) if value else None

    @from_.setter
    def from_(self, value: JID | str | None) -> None:
        self.element.set("from", None if value is None else str(value))

    @property
    def id(self) -> str | None:
        return self.element.attrs.get("id")

    @id.setter
    def id(self, value: str | None) -> None:
        self.element.set("id", value)

    @property
    def lang(self) -> str | None:
        return self.element.attrs.get(XML_LANG)

    @property
    def type_value(self) -> str | None:
        """The raw ``type`` attribute (None when absent)."""
        return self.element.attrs.get("type")

    @property
    def is_error(self) -> bool:
        return self.element.attrs.get("type") == "error"

    @property
    def error(self) -> StanzaError | None:
        """The stanza error this stanza carries, if it is of type ``error``."""
        if not self.is_error:
            return None
        child = self.element.find(_ERROR)
        if child is None:
            return StanzaError.from_element(Element(_ERROR))
        return StanzaError.from_element(child)

    # -- payloads -------------------------------------------------------------------------------------------
    def payloads(self) -> Iterator[Element]:
        """The extension elements: children not in the stanza namespace."""
        for child in self.element.children:
            if isinstance(child, Element) and not child.name.startswith("{jabber:client}"):
                yield child

    def find(self, name: str) -> Element | None:
        return self.element.find(name)

    def get(self, payload: type[P]) -> P | None:
        """Decode the first child that ``payload`` (a :class:`Payload` class) reads, or None."""
        child = self.element.find(payload.name)
        return None if child is None else payload.from_element(child)

    def add(self, payload: Payload | Element) -> Self:
        self.element.append(payload if isinstance(payload, Element) else payload.to_element())
        return self

    # -- replies --------------------------------------------------------------------------------------------
    def _reply_element(self, type_: str | None) -> Element:
        attrs: dict[str, str] = {}
        sender = self.element.attrs.get("from")
        recipient = self.element.attrs.get("to")
        if sender:
            attrs["to"] = sender
        if recipient:
            attrs["from"] = recipient
        stanza_id = self.element.attrs.get("id")
        if stanza_id is not None:
            attrs["id"] = stanza_id
        if type_ is not None:
            attrs["type"] = type_
        return Element(self.tag, attrs)

    def error_reply(self, error: StanzaError, *, include_original: bool = False) -> Self:
        """The error reply to this stanza (RFC 6120 §8.3.1): addresses swapped, same id, ``type='error'``.

        An error is never answered with an error (§8.3.1 rule 2): doing so raises LocalProtocolError.
        ``include_original`` copies the original payload back, as the RFC allows.
        """
        if self.is_error:
            raise LocalProtocolError("an error stanza must not be answered with another error (RFC 6120 §8.3.1)")
        el = self._reply_element("error")
        if include_original:
            el.children.extend(c.copy() if isinstance(c, Element) else c for c in self.element.children)
        el.append(error.to_element())
        return type(self)(el)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.element!r})"

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Stanza):
            return NotImplemented
        return type(self) is type(other) and self.element == other.element

    __hash__ = None  # type: ignore[assignment]


class Message(Stanza):
    """``<message/>`` (RFC 6121 §5)."""

    __slots__ = ()
    tag = _MESSAGE

    @classmethod
    def build(
        cls,
        to: JID | str | None = None,
        body: str | None = None,
        *,
        type: MessageType = MessageType.NORMAL,
        id: str | None = None,
        subject: str | None = None,
        thread: str | None = None,
        from_: JID | str | None = None,
        lang: str | None = None,
    ) -> Message:
        attrs: dict[str, str] = {}
        if to is not None:
            attrs["to"] = str(to)
        if from_ is not None:
            attrs["from"] = str(from_)
        if type is not MessageType.NORMAL:
            attrs["type"] = type.value
        attrs["id"] = id if id is not None else new_id()
        if lang:
            attrs[XML_LANG] = lang
        el = Element(_MESSAGE, attrs)
        if subject is not None:
            el.add(_SUBJECT, text=subject)
        if body is not None:
            el.add(_BODY, text=body)
        if thread is not None:
            el.add(_THREAD, text=thread)
        return cls(el)

    @property
    def type(self) -> MessageType:
        """The message type; absent or unknown values read as ``normal`` (RFC 6121 §5.2.2)."""
        value = self.element.attrs.get("type")
        if value is None:
            return MessageType.NORMAL
        try:
            return MessageType(value)
        except ValueError:
            return MessageType.NORMAL

    @property
    def body(self) -> str | None:
        return self.element.find_text(_BODY)

    @property
    def subject(self) -> str | None:
        return self.element.find_text(_SUBJECT)

    @property
    def thread(self) -> str | None:
        return self.element.find_text(_THREAD)

    def reply(self, body: str | None = None) -> Message:
        """A message back to the sender, same type and thread."""
        el = self._reply_element(self.element.attrs.get("type"))
        el.attrs["id"] = new_id()
        if body is not None:
            el.add(_BODY, text=body)
        thread = self.thread
        if thread is not None:
            el.add(_THREAD, text=thread)
        return Message(el)


class Presence(Stanza):
    """``<presence/>`` (RFC 6121 §4)."""

    __slots__ = ()
    tag = _PRESENCE

    @classmethod
    def build(
        cls,
        to: JID | str | None = None,
        *,
        type: PresenceType = PresenceType.AVAILABLE,
        show: PresenceShow = PresenceShow.ONLINE,
        status: str | None = None,
        priority: int | None = None,
        id: str | None = None,
        from_: JID | str | None = None,
    ) -> Presence:
        attrs: dict[str, str] = {}
        if to is not None:
            attrs["to"] = str(to)
        if from_ is not None:
            attrs["from"] = str(from_)
        if type is not PresenceType.AVAILABLE:
            attrs["type"] = type.value
        if id is not None:
            attrs["id"] = id
        el = Element(_PRESENCE, attrs)
        if show is not PresenceShow.ONLINE:
            el.add(_SHOW, text=show.value)
        if status is not None:
            el.add(_STATUS, text=status)
        if priority is not None:
            if not -128 <= priority <= 127:
                raise ValueError("presence priority must be within -128..127 (RFC 6121 §4.7.2.3)")
            el.add(_PRIORITY, text=str(priority))
        return cls(el)

    @property
    def type(self) -> PresenceType | None:
        """The presence type, or None for a value RFC 6121 does not define (to be answered ``bad-request``)."""
        value = self.element.attrs.get("type")
        if value is None:
            return PresenceType.AVAILABLE
        if value == "available":  # not a wire value: the absent attribute means available
            return None
        try:
            return PresenceType(value)
        except ValueError:
            return None

    @property
    def show(self) -> PresenceShow:
        value = self.element.find_text(_SHOW)
        if not value:
            return PresenceShow.ONLINE
        try:
            return PresenceShow(value.strip())
        except ValueError:
            return PresenceShow.ONLINE

    @property
    def status(self) -> str | None:
        return self.element.find_text(_STATUS)

    @property
    def priority(self) -> int:
        """The priority (RFC 6121 §4.7.2.3): 0 when absent or not an integer in -128..127."""
        value = self.element.find_text(_PRIORITY)
        if value is None:
            return 0
        try:
            number = int(value.strip())
        except ValueError:
            return 0
        return number if -128 <= number <= 127 else 0


class Iq(Stanza):
    """``<iq/>`` (RFC 6120 §8.2.3): one request, exactly one response."""

    __slots__ = ()
    tag = _IQ

    @classmethod
    def build(
        cls,
        type: IqType,
        payload: Payload | Element | None = None,
        *,
        to: JID | str | None = None,
        id: str | None = None,
        from_: JID | str | None = None,
    ) -> Iq:
        attrs: dict[str, str] = {"type": type.value, "id": id if id is not None else new_id()}
        if to is not None:
            attrs["to"] = str(to)
        if from_ is not None:
            attrs["from"] = str(from_)
        el = Element(_IQ, attrs)
        if payload is not None:
            el.append(payload if isinstance(payload, Element) else payload.to_element())
        return cls(el)

    @property
    def type(self) -> IqType | None:
        """The IQ type, or None when missing or unknown (the peer is then answered ``bad-request``)."""
        value = self.element.attrs.get("type")
        if value is None:
            return None
        try:
            return IqType(value)
        except ValueError:
            return None

    @property
    def is_request(self) -> bool:
        return self.element.attrs.get("type") in ("get", "set")

    @property
    def payload(self) -> Element | None:
        """The request's one child element (RFC 6120 §8.2.3: a get or set has exactly one)."""
        for child in self.element.children:
            if isinstance(child, Element) and child.name != _ERROR:
                return child
        return None

    def result(self, payload: Payload | Element | None = None) -> Iq:
        """The ``result`` answer to this get or set."""
        if not self.is_request:
            raise LocalProtocolError("only an IQ get or set is answered with a result (RFC 6120 §8.2.3)")
        el = self._reply_element("result")
        if payload is not None:
            el.append(payload if isinstance(payload, Element) else payload.to_element())
        return Iq(el)


class Payload(Protocol):
    """An extension payload: a value with a wire form."""

    name: ClassVar[str]

    @classmethod
    def from_element(cls, element: Element) -> Self: ...

    def to_element(self) -> Element: ...


P = TypeVar("P", bound=Payload)
S = TypeVar("S", bound=Stanza)

_KINDS: dict[str, type[Stanza]] = {_MESSAGE: Message, _PRESENCE: Presence, _IQ: Iq}


def wrap(element: Element) -> Message | Presence | Iq:
    """The typed stanza for a top-level ``message``, ``presence`` or ``iq`` element."""
    kind = _KINDS.get(element.name)
    if kind is None:
        raise ValueError(f"not a stanza: {element.name}")
    stanza = kind(element)
    assert isinstance(stanza, Message | Presence | Iq)
    return stanza


class PayloadRegistry(Generic[P]):
    """The payload classes one client or server understands, by element name. Registering twice is an error."""

    def __init__(self) -> None:
        self._by_name: dict[str, type[P]] = {}

    def register(self, payload: type[P]) -> type[P]:
        if payload.name in self._by_name:
            raise ValueError(f"a payload class for {payload.name} is registered already")
        self._by_name[payload.name] = payload
        return payload

    def unregister(self, payload: type[P]) -> None:
        if self._by_name.get(payload.name) is payload:
            del self._by_name[payload.name]

    def __contains__(self, name: object) -> bool:
        return name in self._by_name

    def decode(self, element: Element) -> P | None:
        """Decode ``element`` with the class registered for its name, or None when none is."""
        payload = self._by_name.get(element.name)
        return None if payload is None else payload.from_element(element)

    def names(self) -> frozenset[str]:
        return frozenset(self._by_name)
