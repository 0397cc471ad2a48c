"""Stream headers (RFC 6120 §4.7): building ours, checking the peer's."""

from __future__ import annotations

from jaybird import ns
from jaybird.errors import RemoteProtocolError, StreamErrorCondition
from jaybird.stream.events import StreamOpened
from jaybird.stream.state import StreamKind
from jaybird.xml import parser
from jaybird.xml.element import XML_LANG
from jaybird.xml.serializer import escape_attr

__all__ = ["CLOSE_TAG", "build_header", "check_header"]

CLOSE_TAG = b"</stream:stream>"
_C = StreamErrorCondition


def build_header(
    kind: StreamKind,
    *,
    from_: str | None,
    to: str | None,
    stream_id: str | None,
    lang: str | None,
    version: str | None = "1.0",
) -> bytes:
    """The XML declaration and the opening tag of ``<stream:stream>`` in the kind's namespaces.

    ``version=None`` leaves the attribute out, as XEP-0114 §3 component headers do."""
    parts = [f"<?xml version='1.0'?><stream:stream xmlns='{kind.content_ns}'"]
    for namespace, prefix in kind.prefixes.items():
        parts.append(f" xmlns:{prefix}='{escape_attr(namespace)}'")
    for key, value in (("from", from_), ("to", to), ("id", stream_id)):
        if value is not None:
            parts.append(f" {key}='{escape_attr(value)}'")
    if version is not None:
        parts.append(f" version='{escape_attr(version)}'")
    if lang:
        parts.append(f" xml:lang='{escape_attr(lang)}'")
    parts.append(">")
    return "".join(parts).encode()


def check_header(opened: parser.StreamOpened, kind: StreamKind, *, namespaces: bool = True) -> StreamOpened:
    """Check the namespaces and the version of a received header; raise the stream error to send back.

    ``namespaces=False`` for a framed stream's header (RFC 7395 ``<open/>``, a BOSH body): it declares no
    content namespace, since every frame declares its own.
    """
    if namespaces and opened.default_ns != kind.content_ns:
        # §4.8.2 / §4.9.3.10: the content namespace is not the one this kind of stream speaks.
        raise RemoteProtocolError.of(_C.INVALID_NAMESPACE, f"this stream speaks {kind.content_ns}")
    if namespaces and kind is StreamKind.S2S and opened.prefixes.get("db", ns.DIALBACK) != ns.DIALBACK:
        raise RemoteProtocolError.of(_C.BAD_NAMESPACE_PREFIX, "the db: prefix must be jabber:server:dialback")
    attrs = opened.attrs
    version = attrs.get("version")
    # XEP-0114 §3: component streams predate XMPP 1.0 headers and carry no version.
    if not (_supported_version(version) or (version is None and kind is StreamKind.COMPONENT)):
        # §4.7.5: no version means a pre-1.0 peer; a major version other than 1 is one we do not speak.
        raise RemoteProtocolError.of(_C.UNSUPPORTED_VERSION, "XMPP 1.0 is required")
    return StreamOpened(
        stream_id=attrs.get("id"),
        from_=attrs.get("from"),
        to=attrs.get("to"),
        version=version,
        lang=attrs.get(XML_LANG),
    )


def _supported_version(version: str | None) -> bool:
    if version is None:
        return False
    major, dot, minor = version.partition(".")
    if not (dot and major.isdigit() and minor.isdigit()):
        return False
    # §4.7.5: leading zeros are ignored; the minor number may be higher than ours.
    return int(major) == 1
