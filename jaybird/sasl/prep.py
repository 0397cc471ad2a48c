"""String preparation of SASL identities and passwords (PRECIS, RFC 8264/8265).

* The authentication identity of an XMPP account is its localpart (RFC 6120 §6.3.8), which RFC 7622 §3.3
  prepares with the PRECIS ``UsernameCaseMapped`` profile: ``User`` and ``user`` are the same account.
* Passwords use ``OpaqueString`` (RFC 8265 §4.2), the PRECIS successor of SASLprep (RFC 4013) named by
  RFC 8265 for exactly this job. SCRAM (RFC 5802 §2.2) still says SASLprep, and ``scramp`` applies it after
  ours; since NFKC absorbs the NFC step of OpaqueString, the key derived from ``SASLprep(OpaqueString(p))``
  equals ``SASLprep(p)`` for every password OpaqueString accepts, so SASLprep-only peers derive the same keys.

Both functions raise ``ValueError`` (``UnicodeError``) for a string the profile refuses.
"""

from __future__ import annotations

from typing import Final

import precis_i18n

from jaybird.jid import username_case_mapped

__all__ = ["prepare_password", "prepare_username"]

_PASSWORD: Final = precis_i18n.get_profile("OpaqueString")


def prepare_username(username: str) -> str:
    """Enforce ``UsernameCaseMapped`` on an authentication identity (an account's localpart)."""
    return username_case_mapped(username)


def prepare_password(password: str) -> str:
    """Enforce ``OpaqueString`` on a password."""
    return str(_PASSWORD.enforce(password))
