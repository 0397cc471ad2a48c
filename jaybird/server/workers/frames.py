"""The frames worker processes exchange over their Unix-socket links.

A frame is a 4-byte big-endian length (of the payload), one type byte and the payload. A payload is a JSON
object (the header), a newline and an optional body of raw bytes (a serialised stanza). ``json.dumps`` escapes
every newline inside the header, so the first newline always ends it.
"""

from __future__ import annotations

import enum
import json
import struct
from dataclasses import dataclass, field
from typing import Any, Final

__all__ = ["MAX_FRAME_BYTES", "Frame", "FrameDecoder", "FrameError", "FrameType", "encode_frame"]

#: A frame larger than this is a broken peer, not a stanza (c2s stanzas are limited far below it).
MAX_FRAME_BYTES: Final = 64 * 1024 * 1024
_PREFIX: Final = struct.Struct(">IB")


class FrameType(enum.IntEnum):
    #: The first frame on a link: ``{"index": i, "workers": n}``.
    HELLO = 1
    #: The sender's bound sessions: ``{"sessions": [<SESSION_UP header>, ...]}``.
    SNAPSHOT = 2
    #: A session bound on the sender: ``{"sid", "jid", "host", "bound_at", "available", "interested",
    #: "priority", "presence"}`` (``presence``: the last available presence as XML, or null).
    SESSION_UP = 3
    #: The same header, for a session whose state changed.
    SESSION_STATE = 4
    #: ``{"sid", "jid", "host"}``: the session is gone.
    SESSION_DOWN = 5
    #: ``{"sid"}`` and the stanza's XML as the body: for that session, bound on the receiver.
    STANZA = 6
    #: ``{"sid", "jid", "host", "condition", "text"}``: close that session with this stream error.
    CLOSE = 7
    #: The sender stops gracefully: its link closing next is not a failure.
    BYE = 8
    #: ``{"host", "kind", "key"}`` and an optional element as the body: a module changed stored state others
    #: may have cached (:class:`~jaybird.server.events.SharedStateChanged`).
    SHARED_STATE = 9


@dataclass(frozen=True, slots=True)
class Frame:
    type: FrameType
    header: dict[str, Any] = field(default_factory=dict)
    body: bytes = b""


class FrameError(Exception):
    """The bytes on a link are not frames (a bug or a foreign peer): the link cannot be trusted any more."""


def encode_frame(type: FrameType, header: dict[str, Any] | None = None, body: bytes = b"") -> bytes:
    payload = json.dumps(header or {}, separators=(",", ":"), ensure_ascii=False).encode() + b"\n" + body
    if len(payload) > MAX_FRAME_BYTES:
        raise FrameError(f"a {type.name} frame of {len(payload)} bytes is over the limit of {MAX_FRAME_BYTES}")
    return _PREFIX.pack(len(payload), type) + payload


class FrameDecoder:
    """Bytes in, whole frames out (a frame may arrive in pieces, several may arrive at once)."""

    def __init__(self) -> None:
        self._buffer = bytearray()

    def feed(self, data: bytes) -> list[Frame]:
        self._buffer += data
        frames: list[Frame] = []
        buffer = self._buffer
        start = 0
        while len(buffer) - start >= _PREFIX.size:
            length, code = _PREFIX.unpack_from(buffer, start)
            if length > MAX_FRAME_BYTES:
                raise FrameError(f"a frame of {length} bytes is over the limit of {MAX_FRAME_BYTES}")
            end = start + _PREFIX.size + length
            if len(buffer) < end:
                break
            frames.append(_decode(code, bytes(buffer[start + _PREFIX.size : end])))
            start = end
        del buffer[:start]
        return frames

    @property
    def pending(self) -> int:
        """Bytes of an incomplete frame held."""
        return len(self._buffer)


def _decode(code: int, payload: bytes) -> Frame:
    try:
        frame_type = FrameType(code)
    except ValueError:
        raise FrameError(f"unknown frame type {code}") from None
    head, sep, body = payload.partition(b"\n")
    if not sep:
        raise FrameError(f"a {frame_type.name} frame without a header")
    try:
        header = json.loads(head)
    except ValueError as exc:
        raise FrameError(f"a {frame_type.name} frame with a malformed header: {exc}") from None
    if not isinstance(header, dict):
        raise FrameError(f"a {frame_type.name} frame whose header is not an object")
    return Frame(frame_type, header, body)
