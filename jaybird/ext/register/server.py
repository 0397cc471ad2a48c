"""In-band registration on the server (XEP-0077), for authenticated users: their registration (a get),
password change (§3.3) and account removal (§3.2); and, when the host has registration enabled, account
creation before authentication (§3.1) through the stream feature of :mod:`jaybird.ext.register.feature`.

Choices: a password change naming another account is ``forbidden`` (§3.3 has no condition for it; RFC 6120
§8.3.3.4); an empty ``<password/>`` is ``bad-request`` and keeps the old password (§3.3 MUST). Removal answers
the request, closes every session of the account with a ``not-authorized`` stream error (§3.2), deletes the
account, then fires :class:`~jaybird.server.events.AccountRemoved` so each module deletes its data.
"""

from __future__ import annotations

from typing import ClassVar

from jaybird.errors import StanzaError, StanzaErrorCondition, StreamError, StreamErrorCondition
from jaybird.ext.register.accounts import RegistrationThrottle, register_account
from jaybird.ext.register.feature import INSTRUCTIONS, registration_feature
from jaybird.ext.register.wire import NAME, NS, RegisterQuery
from jaybird.jid import JID, JIDError, prepare_localpart
from jaybird.server.api import IqRequest, IqScope, ServerModule
from jaybird.server.auth import change_password, delete_user
from jaybird.server.events import AccountRemoved
from jaybird.server.storage import AccountNotFoundError
from jaybird.stanza import IqType

__all__ = ["INSTRUCTIONS", "RegisterModule"]

_C = StanzaErrorCondition


class RegisterModule(ServerModule):
    name: ClassVar[str] = "register"
    implements: ClassVar[tuple[str, ...]] = ("XEP-0077",)

    async def load(self) -> None:
        self.throttle = RegistrationThrottle(self.host.config.registration.throttle)
        for scope in (IqScope.HOST, IqScope.ACCOUNT):  # with to='domain' (§3.3 example) or without 'to'
            self.iq(IqType.GET, NAME, self._get, scope=scope)
            self.iq(IqType.SET, NAME, self._set, scope=scope)
        self.feature(NS)
        if self.host.config.registration.enabled:
            # XEP-0077 §4: offered on the host's client streams before authentication (only when enabled).
            self.stream_feature(registration_feature(self.register))

    async def register(self, username: str | None, password: str | None, ip: str) -> JID:
        """Create an account (§3.1) under this host's policy and throttle; raises StanzaError."""
        return await register_account(self.host, username, password, ip, self.throttle)

    def _account(self, request: IqRequest) -> JID:
        account = request.sender.bare
        if account.local is None or account.domain != self.host.domain:
            raise StanzaError(_C.NOT_ALLOWED, text="only accounts of this server register here")
        if request.to.local is not None and request.to.bare != account:
            raise StanzaError(_C.FORBIDDEN, text="another account's registration")
        return account

    async def _get(self, request: IqRequest) -> RegisterQuery:
        """§3.1: an entity that is registered already gets ``<registered/>`` and its username."""
        account = self._account(request)
        return RegisterQuery(registered=True, username=account.local, instructions=INSTRUCTIONS)

    async def _set(self, request: IqRequest) -> None:
        account = self._account(request)
        payload = request.iq.payload
        assert payload is not None, "the core dispatched on this payload"
        query = RegisterQuery.from_element(payload)
        if query.remove:
            if not query.only_remove:
                raise StanzaError(_C.BAD_REQUEST, text="<remove/> must be the only child")
            await self._remove(request, account)
        else:
            await self._change_password(account, query)

    async def _change_password(self, account: JID, query: RegisterQuery) -> None:
        if not query.username or not query.password:
            raise StanzaError(_C.BAD_REQUEST, text="a password change needs <username/> and <password/>")
        try:
            named = prepare_localpart(query.username)
        except JIDError:
            named = None
        if named != account.local:
            raise StanzaError(_C.FORBIDDEN, text="the username is not the sender's")
        iterations = self.host.server_config.auth.scram_iterations
        try:
            await change_password(self.host.storage, account, query.password, iterations=iterations)
        except AccountNotFoundError:
            raise StanzaError(_C.REGISTRATION_REQUIRED) from None
        except ValueError as exc:
            raise StanzaError(_C.NOT_ACCEPTABLE, text=f"password not allowed: {exc}") from None

    async def _remove(self, request: IqRequest, account: JID) -> None:
        try:
            await delete_user(self.host.storage, account)
        except AccountNotFoundError:
            raise StanzaError(_C.REGISTRATION_REQUIRED) from None
        # The result goes out before the stream error closes the stream (the core's own reply then finds the
        # stream closing and is dropped).
        if request.origin is not None:
            await request.origin.send(request.iq.result())
        for session in list(self.host.sessions.of(account)):
            session.close(StreamError(StreamErrorCondition.NOT_AUTHORIZED, text="the account was removed"))
        await self.host.hooks.fire(AccountRemoved(account))
