"""Stanza dispatch for client, component and server: the handler :class:`Mux` and the :class:`IqTracker`.

No I/O here: the mux is handed a ``send`` function for its replies, the tracker owns futures only.

The mux works like Go's ``net/http`` ServeMux: a pattern names the stanzas a handler takes, registering one
pattern twice is an error (two modules silently fighting over a namespace is a bug), and disco#info features
come from the registered IQ handlers instead of a second list that can drift from them.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TypeVar

from jaybird import ns
from jaybird.errors import JaybirdError, LocalProtocolError, StanzaError, StanzaErrorCondition
from jaybird.jid import JID, JIDError
from jaybird.stanza import Iq, IqType, Message, MessageType, Payload, Presence, PresenceType, Stanza
from jaybird.xml.element import Element

__all__ = [
    "IqHandler",
    "IqLimitReached",
    "IqPattern",
    "IqTimeout",
    "IqTracker",
    "MessageHandler",
    "MessagePattern",
    "Mux",
    "Pattern",
    "PresenceHandler",
    "PresencePattern",
    "Send",
]

log = logging.getLogger(__name__)

MessageHandler = Callable[[Message], Awaitable[None] | None]
PresenceHandler = Callable[[Presence], Awaitable[None] | None]
#: What an IQ handler returns: the payload of the ``result`` (None for an empty result).
IqResult = Element | Payload | None
IqHandler = Callable[[Iq], Awaitable[IqResult] | IqResult]
#: Sends one reply stanza on the stream the request came from.
Send = Callable[[Stanza], Awaitable[None] | None]

MH = TypeVar("MH", bound=MessageHandler)
PH = TypeVar("PH", bound=PresenceHandler)
IH = TypeVar("IH", bound=IqHandler)
S = TypeVar("S", bound=Stanza)


@dataclass(frozen=True, slots=True)
class MessagePattern:
    """Messages of ``type`` (None: any) carrying a ``payload`` element (Clark name; None: any)."""

    type: MessageType | None = None
    payload: str | None = None


@dataclass(frozen=True, slots=True)
class PresencePattern:
    """Presences of ``type`` (None: any) carrying a ``payload`` element (Clark name; None: any)."""

    type: PresenceType | None = None
    payload: str | None = None


@dataclass(frozen=True, slots=True)
class IqPattern:
    """IQ requests of ``type`` (get or set) whose payload is the element ``payload`` (Clark name)."""

    type: IqType
    payload: str

    def __post_init__(self) -> None:
        if self.type not in (IqType.GET, IqType.SET):
            raise ValueError("IQ handlers take requests (get or set); responses go to the IqTracker")
        if not self.payload.startswith("{"):
            raise ValueError(f"an IQ payload pattern is a namespaced Clark name, not {self.payload!r}")


Pattern = MessagePattern | PresencePattern | IqPattern
P = TypeVar("P", MessagePattern, PresencePattern)
H = TypeVar("H")
T = TypeVar("T", MessageType, PresenceType)


async def _call(handler: Callable[[S], object], stanza: S) -> object:
    result = handler(stanza)
    if inspect.isawaitable(result):
        return await result
    return result


def _result_payload(result: object) -> Element | None:
    if result is None or isinstance(result, Element):
        return result
    to_element = getattr(result, "to_element", None)
    element = to_element() if callable(to_element) else None
    if not isinstance(element, Element):
        raise TypeError(f"an IQ handler returned {type(result).__name__}, not an Element, a payload or None")
    return element


def _bad_request(text: str) -> StanzaError:
    return StanzaError(StanzaErrorCondition.BAD_REQUEST, text=text)


class Mux:
    """Routes incoming stanzas to handlers by pattern; answers IQ requests no handler takes."""

    def __init__(self) -> None:
        self._messages: dict[MessagePattern, MessageHandler] = {}
        self._presences: dict[PresencePattern, PresenceHandler] = {}
        self._iqs: dict[IqPattern, IqHandler] = {}

    # -- registration ---------------------------------------------------------------------------------------
    def _check_free(self, pattern: Pattern) -> None:
        if pattern in self:
            raise ValueError(f"a handler for {pattern} is registered already")

    def handle_message(
        self, handler: MessageHandler, *, type: MessageType | None = None, payload: str | None = None
    ) -> MessagePattern:
        pattern = MessagePattern(type, payload)
        self._check_free(pattern)
        self._messages[pattern] = handler
        return pattern

    def handle_presence(
        self, handler: PresenceHandler, *, type: PresenceType | None = None, payload: str | None = None
    ) -> PresencePattern:
        pattern = PresencePattern(type, payload)
        self._check_free(pattern)
        self._presences[pattern] = handler
        return pattern

    def handle_iq(self, type: IqType, payload: str, handler: IqHandler) -> IqPattern:
        pattern = IqPattern(type, payload)
        self._check_free(pattern)
        self._iqs[pattern] = handler
        return pattern

    def message(self, *, type: MessageType | None = None, payload: str | None = None) -> Callable[[MH], MH]:
        """Decorator form of :meth:`handle_message`."""

        def register(handler: MH) -> MH:
            self.handle_message(handler, type=type, payload=payload)
            return handler

        return register

    def presence(self, *, type: PresenceType | None = None, payload: str | None = None) -> Callable[[PH], PH]:
        """Decorator form of :meth:`handle_presence`."""

        def register(handler: PH) -> PH:
            self.handle_presence(handler, type=type, payload=payload)
            return handler

        return register

    def iq(self, type: IqType, payload: str) -> Callable[[IH], IH]:
        """Decorator form of :meth:`handle_iq`."""

        def register(handler: IH) -> IH:
            self.handle_iq(type, payload, handler)
            return handler

        return register

    def unregister(self, pattern: Pattern) -> None:
        """Remove the handler of ``pattern``; KeyError when there is none."""
        if isinstance(pattern, MessagePattern):
            del self._messages[pattern]
        elif isinstance(pattern, PresencePattern):
            del self._presences[pattern]
        else:
            del self._iqs[pattern]

    def __contains__(self, pattern: object) -> bool:
        return pattern in self._messages or pattern in self._presences or pattern in self._iqs

    def features(self) -> frozenset[str]:
        """The namespaces of the registered IQ handlers' payloads (XEP-0030 disco#info features)."""
        return frozenset(ns.split(pattern.payload)[0] for pattern in self._iqs)

    # -- dispatch -------------------------------------------------------------------------------------------
    async def dispatch(self, stanza: Message | Presence | Iq, send: Send) -> bool:
        """Run the handler for ``stanza`` and send what it answers; True when a handler ran.

        IQ get/set without a handler is answered ``service-unavailable`` (RFC 6120 §8.4). IQ results and
        errors are not dispatched (they belong to an :class:`IqTracker`); False is returned for them.
        """
        if isinstance(stanza, Iq):
            return await self._dispatch_iq(stanza, send)
        if isinstance(stanza, Message):
            return await self._run(self._message_handler(stanza), stanza, send)
        return await self._run(self._presence_handler(stanza), stanza, send)

    async def _run(self, handler: Callable[[S], object] | None, stanza: S, send: Send) -> bool:
        if handler is None:
            return False
        reply: Stanza | None = None
        try:
            await _call(handler, stanza)
        except StanzaError as exc:
            reply = self._error_reply(stanza, exc)
        except Exception:
            reply = self._crash_reply(stanza, handler)
        if reply is not None:
            await _send(send, reply)
        return True

    def _message_handler(self, message: Message) -> MessageHandler | None:
        names = list(dict.fromkeys(child.name for child in message.payloads()))
        return self._most_specific(self._messages, MessagePattern, message.type, names)

    def _presence_handler(self, presence: Presence) -> PresenceHandler | None:
        names = list(dict.fromkeys(child.name for child in presence.payloads()))
        return self._most_specific(self._presences, PresencePattern, presence.type, names)

    @staticmethod
    def _most_specific(
        table: dict[P, H], make: Callable[[T | None, str | None], P], type_: T | None, names: list[str]
    ) -> H | None:
        # type+payload > payload > type > any; among payloads, document order.
        candidates: list[P] = []
        if type_ is not None:
            candidates += [make(type_, name) for name in names]
        candidates += [make(None, name) for name in names]
        if type_ is not None:
            candidates.append(make(type_, None))
        candidates.append(make(None, None))
        for pattern in candidates:
            handler = table.get(pattern)
            if handler is not None:
                return handler
        return None

    async def _dispatch_iq(self, iq: Iq, send: Send) -> bool:
        if iq.is_error or iq.type is IqType.RESULT:
            return False
        handler: IqHandler | None = None
        children = list(iq.element.elements())
        if iq.type is None:
            reply: Stanza = iq.error_reply(_bad_request("an IQ has type get, set, result or error (RFC 6120 §8.2.3)"))
        elif len(children) != 1:
            reply = iq.error_reply(_bad_request("an IQ get or set carries exactly one payload (RFC 6120 §8.2.3)"))
        else:
            handler = self._iqs.get(IqPattern(iq.type, children[0].name))
            if handler is None:
                reply = iq.error_reply(StanzaError(StanzaErrorCondition.SERVICE_UNAVAILABLE))
            else:
                try:
                    reply = iq.result(_result_payload(await _call(handler, iq)))
                except StanzaError as exc:
                    reply = iq.error_reply(exc)
                except Exception:
                    reply = iq.error_reply(StanzaError(StanzaErrorCondition.INTERNAL_SERVER_ERROR))
                    log.exception("IQ handler %r failed on %r", handler, iq)
        await _send(send, reply)
        return handler is not None

    @staticmethod
    def _error_reply(stanza: Stanza, exc: StanzaError) -> Stanza | None:
        if stanza.is_error:  # RFC 6120 §8.3.1: never answer an error with an error
            log.debug("handler raised %r on an error stanza; nothing is sent", exc)
            return None
        return stanza.error_reply(exc)

    @staticmethod
    def _crash_reply(stanza: Stanza, handler: object) -> Stanza | None:
        log.exception("handler %r failed on %r", handler, stanza)
        if stanza.is_error:
            return None
        return stanza.error_reply(StanzaError(StanzaErrorCondition.INTERNAL_SERVER_ERROR))


async def _send(send: Send, stanza: Stanza) -> None:
    result = send(stanza)
    if inspect.isawaitable(result):
        await result


class IqTimeout(JaybirdError, TimeoutError):
    """No response to an IQ request arrived in time."""

    def __init__(self, iq_id: str, to: JID | None, timeout: float) -> None:
        super().__init__(f"no response to IQ {iq_id!r} sent to {to or 'our server'} within {timeout:g} s")
        self.iq_id = iq_id
        self.to = to
        self.timeout = timeout


class IqLimitReached(JaybirdError):
    """Too many IQ requests are awaiting responses; wait for some before sending more."""


@dataclass(slots=True)
class _Pending:
    future: asyncio.Future[Iq]
    to: JID | None
    timer: asyncio.TimerHandle


class IqTracker:
    """Matches IQ responses to the requests awaiting them (RFC 6120 §8.2.3: one request, one response).

    A response resolves a request only when its id matches and it comes from the address the request went
    to, so another entity cannot answer in someone else's name by guessing or copying an id.
    """

    def __init__(self, own_jid: JID | None = None, *, max_pending: int = 1024) -> None:
        if max_pending < 1:
            raise ValueError("max_pending must be at least 1")
        self.max_pending = max_pending
        self._pending: dict[str, _Pending] = {}
        self._own_jid: JID | None = None
        self._own_domain: JID | None = None
        self.own_jid = own_jid

    @property
    def own_jid(self) -> JID | None:
        """Our own address (the bound full JID once resource binding is done)."""
        return self._own_jid

    @own_jid.setter
    def own_jid(self, jid: JID | None) -> None:
        self._own_jid = jid
        self._own_domain = None if jid is None else JID(jid.domain)

    def __len__(self) -> int:
        return len(self._pending)

    def track(self, iq: Iq, *, timeout: float) -> asyncio.Future[Iq]:
        """A future for the response to ``iq`` (a get or set about to be sent).

        The future's result is the ``result`` IQ; a ``type='error'`` response raises its :class:`StanzaError`;
        no response within ``timeout`` seconds raises :class:`IqTimeout`. Cancelling the future forgets it.
        """
        if not iq.is_request:
            raise LocalProtocolError("only an IQ get or set awaits a response")
        iq_id = iq.id
        if not iq_id:
            raise LocalProtocolError("an IQ request needs an id to be matched with its response")
        if iq_id in self._pending:
            raise LocalProtocolError(f"an IQ with id {iq_id!r} is awaiting its response already")
        if len(self._pending) >= self.max_pending:
            raise IqLimitReached(f"{len(self._pending)} IQ requests await responses (max_pending reached)")
        if timeout <= 0:
            raise ValueError("an IQ timeout must be positive")
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Iq] = loop.create_future()
        to = iq.to
        timer = loop.call_later(timeout, self._expire, iq_id, future, to, timeout)
        self._pending[iq_id] = _Pending(future, to, timer)
        future.add_done_callback(lambda done: self._forget(iq_id, done))
        return future

    def _forget(self, iq_id: str, future: asyncio.Future[Iq]) -> None:
        entry = self._pending.get(iq_id)
        if entry is not None and entry.future is future:
            entry.timer.cancel()
            del self._pending[iq_id]

    def _expire(self, iq_id: str, future: asyncio.Future[Iq], to: JID | None, timeout: float) -> None:
        if not future.done():
            future.set_exception(IqTimeout(iq_id, to, timeout))

    def _sender_ok(self, to: JID | None, sender: JID | None) -> bool:
        own = self._own_jid
        if to is None or (own is not None and to == own.bare):
            # RFC 6120 §10.3.3 / §10.5.3: our server answers for our account, without 'from' or from our
            # bare JID (some servers use the domain).
            if sender is None:
                return True
            return own is not None and sender in (own.bare, self._own_domain)
        if sender is None:
            # No 'from' on a client stream means our own server (RFC 6120 §8.1.2.1).
            return to == self._own_domain
        return sender == to

    def resolve(self, stanza: Stanza) -> bool:
        """Hand an incoming IQ result or error to the request awaiting it; False when none matches."""
        if not isinstance(stanza, Iq) or stanza.type not in (IqType.RESULT, IqType.ERROR):
            return False
        iq_id = stanza.id
        entry = self._pending.get(iq_id) if iq_id is not None else None
        if iq_id is None or entry is None:
            return False
        try:
            sender = stanza.from_
        except JIDError:
            log.warning("IQ response %r has a malformed 'from'; ignored", iq_id)
            return False
        if not self._sender_ok(entry.to, sender):
            log.warning("IQ response %r from %s ignored: the request went to %s", iq_id, sender, entry.to)
            return False
        del self._pending[iq_id]
        entry.timer.cancel()
        if not entry.future.done():
            error = stanza.error
            if error is not None:
                entry.future.set_exception(error)
            else:
                entry.future.set_result(stanza)
        return True

    def fail_all(self, exc: BaseException) -> None:
        """Fail every pending request with ``exc`` (the stream is gone; no response can come any more)."""
        pending, self._pending = self._pending, {}
        for entry in pending.values():
            entry.timer.cancel()
            if not entry.future.done():
                entry.future.set_exception(exc)
