"""Namespace constants used across jaybird."""

from __future__ import annotations

from typing import Final

XML: Final = "http://www.w3.org/XML/1998/namespace"
XMLNS: Final = "http://www.w3.org/2000/xmlns/"

STREAM: Final = "http://etherx.jabber.org/streams"
CLIENT: Final = "jabber:client"
SERVER: Final = "jabber:server"
COMPONENT_ACCEPT: Final = "jabber:component:accept"
COMPONENT_CONNECT: Final = "jabber:component:connect"
#: Namespaces a stream may declare as the default for its stanzas. Internally every stanza is in CLIENT
#: (see jaybird.xml.parser): the serializer writes it back in whatever the stream declared.
STANZA_NAMESPACES: Final = frozenset({CLIENT, SERVER, COMPONENT_ACCEPT, COMPONENT_CONNECT})

FRAMING: Final = "urn:ietf:params:xml:ns:xmpp-framing"  # RFC 7395 WebSocket
HTTPBIND: Final = "http://jabber.org/protocol/httpbind"  # XEP-0124 BOSH
XBOSH: Final = "urn:xmpp:xbosh"  # XEP-0206

STREAMS: Final = "urn:ietf:params:xml:ns:xmpp-streams"
STANZAS: Final = "urn:ietf:params:xml:ns:xmpp-stanzas"
TLS: Final = "urn:ietf:params:xml:ns:xmpp-tls"
SASL: Final = "urn:ietf:params:xml:ns:xmpp-sasl"
BIND: Final = "urn:ietf:params:xml:ns:xmpp-bind"
SESSION: Final = "urn:ietf:params:xml:ns:xmpp-session"
SM: Final = "urn:xmpp:sm:3"
DIALBACK: Final = "jabber:server:dialback"
DIALBACK_FEATURE: Final = "urn:xmpp:features:dialback"
ROSTER_VER_FEATURE: Final = "urn:xmpp:features:rosterver"

ROSTER: Final = "jabber:iq:roster"
DISCO_INFO: Final = "http://jabber.org/protocol/disco#info"
DISCO_ITEMS: Final = "http://jabber.org/protocol/disco#items"
PING: Final = "urn:xmpp:ping"
DELAY: Final = "urn:xmpp:delay"
VERSION: Final = "jabber:iq:version"
REGISTER: Final = "jabber:iq:register"


def clark(namespace: str, local: str) -> str:
    """Return the Clark-notation name ``{namespace}local`` used for element and attribute names."""
    return f"{{{namespace}}}{local}" if namespace else local


def split(name: str) -> tuple[str, str]:
    """Split a Clark-notation name into ``(namespace, local)``; the namespace is "" when there is none."""
    if name.startswith("{"):
        end = name.index("}")
        return name[1:end], name[end + 1 :]
    return "", name
