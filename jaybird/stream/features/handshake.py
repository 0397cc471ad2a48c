"""The XEP-0114 component handshake (``jabber:component:accept``) for both sides.

A component stream has no ``<stream:features/>``: the component opens a stream ``to`` its own domain, the
server answers with a header carrying a stream id, the component proves it knows the shared secret with
``<handshake>hex(SHA-1(id + secret))</handshake>`` and the server answers an empty ``<handshake/>``
(XEP-0114 §3). The machine treats every feature of a component stream's table as offered and required, so
this is one more :class:`~jaybird.stream.feature.StreamFeature` and the machine stays feature-agnostic.

Once the stream is ready, the receiving side checks each stanza the component sends
(:func:`component_stanza_check`): XEP-0114 §3 asks for ``from`` and ``to`` on every stanza and a ``from`` in
the component's domain. Refusing a second component for a domain that is connected already (``conflict``)
is the server's business, not the stream's.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Callable

from jaybird import ns
from jaybird.errors import RemoteProtocolError, StreamError, StreamErrorCondition
from jaybird.jid import JID
from jaybird.stream.feature import Negotiation, NegotiationContext, Offer, Outcome, Step, StreamFeature
from jaybird.stream.state import SessionState
from jaybird.xml.element import Element

__all__ = ["HANDSHAKE", "component_stanza_check", "handshake_digest"]

# The parser maps a component stream's content namespace to jabber:client, so the handshake lives there too.
_HANDSHAKE = ns.clark(ns.CLIENT, "handshake")
_STANZAS = frozenset(ns.clark(ns.CLIENT, local) for local in ("message", "presence", "iq"))
_C = StreamErrorCondition


def handshake_digest(stream_id: str, secret: str) -> str:
    """XEP-0114 §3: lowercase hex SHA-1 of the stream id followed by the secret, UTF-8 encoded.

    The XEP also asks to escape XML-special characters before hashing; Prosody, ejabberd and the component
    libraries hash the raw strings, and stream ids never contain such characters, so neither do we.
    """
    return hashlib.sha1((stream_id + secret).encode()).hexdigest()


def _accepts(element: Element) -> bool:
    return element.name == _HANDSHAKE


def _always(_ctx: NegotiationContext) -> bool:
    return True


def _wanted(_ctx: NegotiationContext, _offer: Offer) -> bool:
    return True


class _Receiving(Negotiation):
    """The server's side: check the digest against the secret configured for the addressed domain."""

    def __init__(self, ctx: NegotiationContext) -> None:
        self._ctx = ctx

    def receive(self, element: Element) -> Step:
        ctx = self._ctx
        lookup = ctx.receiving.component_secret
        secret = lookup(ctx.domain) if lookup is not None else None
        if list(element.elements()) or ctx.stream_id is None or secret is None:
            # A component domain with no secret configured can never authenticate (Prosody does the same).
            return _refused()
        expected = handshake_digest(ctx.stream_id, secret).encode()
        # Constant time; case-insensitive since §3 only asks the sender to lowercase.
        if not hmac.compare_digest(expected, element.text.strip().lower().encode()):
            return _refused()
        return Step(
            send=(Element(_HANDSHAKE),),
            outcome=Outcome.FINISHED,
            gained=SessionState.AUTHENTICATED,
            identity=JID(ctx.domain),
        )


def _refused() -> Step:
    # §3: the receiver closes the stream on bad credentials and SHOULD say not-authorized.
    return Step(error=StreamError(_C.NOT_AUTHORIZED, "the handshake does not match the shared secret"))


class _Initiating(Negotiation):
    """The component's side: send the digest, wait for the empty ``<handshake/>``."""

    def __init__(self, ctx: NegotiationContext) -> None:
        self._ctx = ctx

    def start(self) -> Step:
        ctx = self._ctx
        secret = ctx.initiating.password
        if secret is None or ctx.stream_id is None:
            return Step(failure="a component needs a shared secret and the server's stream id")
        return Step(send=(Element(_HANDSHAKE, text=handshake_digest(ctx.stream_id, secret)),))

    def receive(self, element: Element) -> Step:
        if element.name != _HANDSHAKE:
            return super().receive(element)
        if element.text or list(element.elements()):
            raise RemoteProtocolError.of(_C.BAD_FORMAT, "the server's <handshake/> must be empty (XEP-0114 §3)")
        return Step(outcome=Outcome.FINISHED, gained=SessionState.AUTHENTICATED, identity=JID(self._ctx.domain))


HANDSHAKE = StreamFeature(
    name=_HANDSHAKE,
    prohibited=SessionState.AUTHENTICATED,
    required=_always,
    accepts=_accepts,
    receiver=_Receiving,
    wanted=_wanted,
    initiator=lambda ctx, _offer: _Initiating(ctx),
)


def component_stanza_check(domain: str) -> Callable[[Element], None]:
    """The check every element an authenticated component sends must pass (receiving side).

    XEP-0114 §3: stanzas carry ``from`` and ``to``, and the domain of ``from`` is the component's. Missing
    addresses are ``improper-addressing`` (RFC 6120 §4.9.3.7), a foreign ``from`` is ``invalid-from``
    (§4.9.3.9), anything but a stanza is ``unsupported-stanza-type`` (§4.9.3.24).
    """
    expected = domain.lower()

    def check(element: Element) -> None:
        if element.name not in _STANZAS:
            raise RemoteProtocolError.of(_C.UNSUPPORTED_STANZA_TYPE, f"{element.name} is not a stanza")
        attrs = element.attrs
        sender = attrs.get("from")
        if not sender or not attrs.get("to"):
            raise RemoteProtocolError.of(_C.IMPROPER_ADDRESSING, "component stanzas need 'from' and 'to'")
        # The domain part of local@domain/resource, without preparing the whole JID on every stanza.
        bare = sender.partition("/")[0]
        if bare.rpartition("@")[2].lower() != expected:
            raise RemoteProtocolError.of(_C.INVALID_FROM, f"'from' must be in {domain}")

    return check
