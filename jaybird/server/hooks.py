"""Typed hooks: the one way the server core and its modules meet.

An event is a class (a frozen dataclass, named as a fact); a handler subscribes to that class with a priority.
Handlers run highest priority first; one that returns True has *handled* the event and the rest do not run.
Every subscription returns a :class:`Registration`; a module's registrations are all cancelled when it unloads
(Prosody's rule: unloading a module removes every hook it added).
"""

from __future__ import annotations

import bisect
import itertools
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

from jaybird.errors import StanzaError

__all__ = ["Handler", "HookBus", "Registration"]

log = logging.getLogger("jaybird.server.hooks")

E = TypeVar("E")
#: A handler returns True when it handled the event (the chain stops), None or False otherwise.
Handler = Callable[[E], Awaitable[bool | None] | bool | None]

_order = itertools.count()


@dataclass(eq=False)
class Registration:
    """Something a module added (a hook, an IQ handler, a disco feature); ``cancel()`` removes it."""

    description: str
    _cancel: Callable[[], None] = field(repr=False)
    cancelled: bool = False

    def cancel(self) -> None:
        if not self.cancelled:
            self.cancelled = True
            self._cancel()


@dataclass(order=True)
class _Entry(Generic[E]):
    sort_key: tuple[int, int]
    handler: Handler[E] = field(compare=False)


class HookBus:
    """Handlers per event class. Firing an event with no handlers costs one dict lookup."""

    def __init__(self) -> None:
        self._entries: dict[type[Any], list[_Entry[Any]]] = {}
        # What fire() reads: a tuple per event class, rebuilt on every change, so firing copies nothing.
        self._handlers: dict[type[Any], tuple[Handler[Any], ...]] = {}

    def on(self, event: type[E], handler: Handler[E], *, priority: int = 0) -> Registration:
        entries = self._entries.setdefault(event, [])
        entry: _Entry[E] = _Entry((-priority, next(_order)), handler)
        bisect.insort(entries, entry)
        self._handlers[event] = tuple(e.handler for e in entries)

        def cancel() -> None:
            entries.remove(entry)
            if entries:
                self._handlers[event] = tuple(e.handler for e in entries)
            else:
                self._entries.pop(event, None)
                self._handlers.pop(event, None)

        return Registration(f"{event.__name__} -> {getattr(handler, '__qualname__', handler)!s}", cancel)

    def has(self, event: type[Any]) -> bool:
        return event in self._handlers

    async def fire(self, event: object) -> bool:
        """Run the handlers of ``type(event)``; True when one of them handled it.

        A handler that raises is logged and counts as not handling the event: one broken module must not stop
        delivery for everyone. (:class:`~jaybird.errors.StanzaError` is the exception: it propagates, so the
        caller can answer the stanza with it.)
        """
        handlers = self._handlers.get(type(event))
        if handlers is None:
            return False
        for handler in handlers:
            try:
                result = handler(event)
                if result is not None and not isinstance(result, bool):
                    result = await result
            except StanzaError:
                raise
            except Exception:
                log.exception("hook %s failed on %s", handler, type(event).__name__)
                continue
            if result:
                return True
        return False
