"""Account creation for in-band registration (XEP-0077 §3.1), apart from any stream: what a pre-authentication
register IQ, the CLI or a web form would call. Errors are raised as the stanza errors XEP-0077 names."""

from __future__ import annotations

from jaybird.errors import StanzaError, StanzaErrorCondition, StanzaErrorType
from jaybird.jid import JID, JIDError, prepare_localpart
from jaybird.server.api import Host
from jaybird.server.auth import FailedLoginThrottle, add_user
from jaybird.server.storage import AccountExistsError

__all__ = ["RegistrationThrottle", "register_account"]

#: Registrations per IP address in a sliding window: the login throttle counts any event, so it serves here
#: with "failure" read as "registration".
RegistrationThrottle = FailedLoginThrottle

_C = StanzaErrorCondition


async def register_account(
    host: Host, username: str | None, password: str | None, ip: str, throttle: RegistrationThrottle
) -> JID:
    """Create ``username@host`` with ``password`` for a client at ``ip``; returns the new account's JID.

    Raises :class:`StanzaError`: ``not-allowed`` when the host has registration off; ``not-acceptable`` for
    a missing or invalid username or password (§3.1 "required information"; a username RFC 7622 §3.3 refuses,
    a password PRECIS OpaqueString refuses) and, with type ``wait``, for an address over its registration
    throttle (§3.1.1 allows ``not-acceptable`` for "too many times"); ``conflict`` when the account exists.
    """
    if not host.config.registration.enabled:
        raise StanzaError(_C.NOT_ALLOWED, text="registration is not open on this server")
    if not username or not password:
        raise StanzaError(_C.NOT_ACCEPTABLE, text="a username and a password are required")
    try:
        local = prepare_localpart(username)
    except JIDError as exc:
        raise StanzaError(_C.NOT_ACCEPTABLE, text=f"username not allowed: {exc}") from None
    if throttle.blocked(ip):
        raise StanzaError(_C.NOT_ACCEPTABLE, type=StanzaErrorType.WAIT, text="too many registrations from this address")
    account = JID.from_parts(local, host.domain)
    try:
        await add_user(host.storage, account, password, iterations=host.server_config.auth.scram_iterations)
    except AccountExistsError:
        raise StanzaError(_C.CONFLICT, text="that username is taken") from None
    except ValueError as exc:
        raise StanzaError(_C.NOT_ACCEPTABLE, text=f"password not allowed: {exc}") from None
    throttle.record_failure(ip)
    return account
