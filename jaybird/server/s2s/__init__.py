"""Server-to-server federation (RFC 6120, XEP-0220 dialback, XEP-0178 SASL EXTERNAL, XEP-0288 bidi).

:class:`S2SService` is what the server core starts when ``listeners.s2s.enabled``. The pieces work on their own
too (see docs/federation.md): :func:`open_link` dials a remote server and returns a :class:`Link` driving an
initiating :class:`~jaybird.stream.XMPPStream`; the stream features come from :mod:`jaybird.stream.features.s2s`
and :mod:`jaybird.stream.features.dialback`.
"""

from jaybird.server.s2s.incoming import IncomingLink
from jaybird.server.s2s.link import Link
from jaybird.server.s2s.outgoing import OutgoingLink, RemoteDomain, open_link, verify_key
from jaybird.server.s2s.policy import Policy, policy_for
from jaybird.server.s2s.service import S2SService

__all__ = [
    "IncomingLink",
    "Link",
    "OutgoingLink",
    "Policy",
    "RemoteDomain",
    "S2SService",
    "open_link",
    "policy_for",
    "verify_key",
]
