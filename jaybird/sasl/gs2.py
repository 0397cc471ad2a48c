"""The GS2 header of SCRAM (RFC 5802 §7, RFC 5801 §4), parsed and written here rather than by scramp.

scramp 1.5 refuses an authorization identity in the header (``n,a=juliet@example.com,``), which XMPP
allows (RFC 6120 §6.3.8), so jaybird reads the header itself, hands scramp the same header without the
authzid, and gives scramp a :class:`CbindInput` holding the exact header bytes for the ``c=`` attribute.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Final

from jaybird.errors import AuthenticationError, SASLCondition

__all__ = ["CbindInput", "Gs2Header", "escape_saslname", "split_client_first", "unescape_saslname"]

_BAD_ESCAPE: Final = re.compile("=(?!2C|3D)")


def escape_saslname(name: str) -> str:
    """RFC 5802 §5.1: ``=`` and ``,`` are written ``=3D`` and ``=2C``."""
    return name.replace("=", "=3D").replace(",", "=2C")


def unescape_saslname(text: str) -> str:
    """Inverse of :func:`escape_saslname`; any other ``=`` is malformed (RFC 5802 §5.1)."""
    if _BAD_ESCAPE.search(text):
        raise AuthenticationError(SASLCondition.MALFORMED_REQUEST, "bad '=' escape in a SCRAM name")
    return text.replace("=2C", ",").replace("=3D", "=")


@dataclass(frozen=True, slots=True)
class Gs2Header:
    """``flag`` is ``"n"`` (no binding support), ``"y"`` (supported, server seems not) or ``"p"`` (bound)."""

    flag: str
    cb_type: str | None = None
    authzid: str | None = None

    def __str__(self) -> str:
        flag = f"p={self.cb_type}" if self.flag == "p" else self.flag
        authzid = f"a={escape_saslname(self.authzid)}" if self.authzid else ""
        return f"{flag},{authzid},"

    def without_authzid(self) -> str:
        """The header as scramp accepts it."""
        return str(Gs2Header(self.flag, self.cb_type))


def split_client_first(text: str) -> tuple[Gs2Header, str, str]:
    """Split a client-first message into ``(header, client-first-bare, username)``."""
    parts = text.split(",", 2)
    if len(parts) != 3:
        raise AuthenticationError(SASLCondition.MALFORMED_REQUEST, "no GS2 header")
    flag_text, authzid_text, bare = parts
    if flag_text in ("n", "y"):
        flag, cb_type = flag_text, None
    elif flag_text.startswith("p=") and len(flag_text) > 2:
        flag, cb_type = "p", flag_text[2:]
    else:
        raise AuthenticationError(SASLCondition.MALFORMED_REQUEST, "bad GS2 channel-binding flag")
    authzid: str | None = None
    if authzid_text:
        if not authzid_text.startswith("a=") or len(authzid_text) == 2:
            raise AuthenticationError(SASLCondition.MALFORMED_REQUEST, "bad GS2 authzid")
        authzid = unescape_saslname(authzid_text[2:])
    first = bare.split(",", 1)[0]
    # RFC 5802 §5.1: a leading m= (reserved extension) must fail; scramp says so too, but we parse first.
    if not first.startswith("n=") or len(first) == 2:
        raise AuthenticationError(SASLCondition.MALFORMED_REQUEST, "client-first must start with n=")
    return Gs2Header(flag, cb_type, authzid), bare, unescape_saslname(first[2:])


class CbindInput:
    """Stands in for scramp's header object: the only thing scramp asks of it is the ``c=`` input."""

    def __init__(self, header: Gs2Header, cb_data: bytes) -> None:
        self._input = str(header).encode() + (cb_data if header.flag == "p" else b"")

    def make_cbind_input(self, _cb: object) -> bytes:
        return self._input
