"""Which mechanism to use: the client's candidates and choice, the server's offer and factory."""

from __future__ import annotations

from collections.abc import Sequence

from jaybird.errors import AuthenticationError, SASLCondition
from jaybird.sasl.anonymous import ClientAnonymous, ServerAnonymous
from jaybird.sasl.credentials import SCRAM_MECHANISMS
from jaybird.sasl.external import ClientExternal, ServerExternal
from jaybird.sasl.mechanism import ChannelBinding, ClientMechanism, ServerMechanism
from jaybird.sasl.plain import ClientPlain, ServerPlain
from jaybird.sasl.scram import SUPPORTED_CHANNEL_BINDING_TYPES, ClientScram, ServerScram

__all__ = ["client_mechanisms", "select_client_mechanism", "server_mechanism", "server_mechanism_names"]

_C = SASLCondition


def client_mechanisms(
    *,
    username: str | None = None,
    password: str | None = None,
    authzid: str | None = None,
    channel_binding: ChannelBinding | None = None,
    external: bool = False,
    anonymous: bool = False,
    trace: str | None = None,
) -> list[ClientMechanism]:
    """Candidates, strongest first: EXTERNAL (if asked), SCRAM-SHA-512/256/1-PLUS (with a channel binding),
    SCRAM-SHA-512/256/1, PLAIN (with a password), ANONYMOUS (if asked).

    A binding of a type scramp cannot use (``tls-exporter``) counts as none: the client then says ``n``.
    Raises ``ValueError`` for a username or password PRECIS refuses.
    """
    cb = channel_binding
    if cb is not None and cb.type not in SUPPORTED_CHANNEL_BINDING_TYPES:
        cb = None
    found: list[ClientMechanism] = []
    if external:
        found.append(ClientExternal(authzid))
    if password is not None:
        if username is None:
            raise ValueError("a password needs a username")
        names = [f"{m}-PLUS" for m in SCRAM_MECHANISMS] if cb is not None else []
        for name in [*names, *SCRAM_MECHANISMS]:
            found.append(ClientScram(name, username=username, password=password, authzid=authzid, channel_binding=cb))
        found.append(ClientPlain(username=username, password=password, authzid=authzid))
    if anonymous:
        found.append(ClientAnonymous(trace))
    return found


def select_client_mechanism(
    offered: Sequence[str], candidates: Sequence[ClientMechanism], *, allow_plain: bool = False
) -> ClientMechanism:
    """The first candidate the server offered. PLAIN only with ``allow_plain``, which the stream machine sets
    on a TLS-protected stream or one explicitly allowed to be insecure.

    Raises ``mechanism-too-weak`` when PLAIN was the only match but not allowed, else ``invalid-mechanism``.
    """
    offer = set(offered)
    plain_refused = False
    for candidate in candidates:
        if candidate.name not in offer:
            continue
        if candidate.name == "PLAIN" and not allow_plain:
            plain_refused = True
            continue
        return candidate
    if plain_refused:
        raise AuthenticationError(_C.MECHANISM_TOO_WEAK, "PLAIN on a stream that is not secure")
    raise AuthenticationError(_C.INVALID_MECHANISM, f"no common mechanism in {sorted(offer)}")


def server_mechanism_names(
    *,
    secure: bool,
    channel_binding_types: Sequence[str] = (),
    allow_insecure_plain: bool = False,
    external_identities: Sequence[str] = (),
    allow_anonymous: bool = False,
    scram: Sequence[str] = SCRAM_MECHANISMS,
) -> list[str]:
    """What to advertise, strongest first.

    ``scram`` lists the SCRAM families the accounts have stored credentials for; -PLUS only with a channel
    binding scramp supports; PLAIN only on a secure stream unless ``allow_insecure_plain``; EXTERNAL only with
    verified identities; ANONYMOUS only when allowed.
    """
    families = [m for m in SCRAM_MECHANISMS if m in scram]
    names: list[str] = []
    if any(t in SUPPORTED_CHANNEL_BINDING_TYPES for t in channel_binding_types):
        names += [f"{m}-PLUS" for m in families]
    names += families
    if secure or allow_insecure_plain:
        names.append("PLAIN")
    if external_identities:
        names.append("EXTERNAL")
    if allow_anonymous:
        names.append("ANONYMOUS")
    return names


def server_mechanism(
    name: str,
    *,
    channel_binding: ChannelBinding | Sequence[ChannelBinding] | None = None,
    secure: bool = False,
    allow_insecure_plain: bool = False,
    external_identities: Sequence[str] = (),
    allow_anonymous: bool = False,
    scram: Sequence[str] = SCRAM_MECHANISMS,
    decoy_key: bytes | None = None,
) -> ServerMechanism:
    """The server side of ``name`` (from the client's ``<auth mechanism=.../>``), under the same policy as
    :func:`server_mechanism_names`; anything not advertised fails ``invalid-mechanism``, PLAIN on an insecure
    stream ``encryption-required`` (RFC 6120 §6.5.4).

    Pass every channel binding of the session (or None): the SCRAM servers then also refuse the ``y`` flag.
    ``decoy_key``: a persistent secret so unknown accounts keep their decoy salts across restarts.
    """
    if channel_binding is None:
        bindings: tuple[ChannelBinding, ...] = ()
    elif isinstance(channel_binding, ChannelBinding):
        bindings = (channel_binding,)
    else:
        bindings = tuple(channel_binding)
    bindings = tuple(b for b in bindings if b.type in SUPPORTED_CHANNEL_BINDING_TYPES)
    offered = server_mechanism_names(
        secure=secure,
        channel_binding_types=[b.type for b in bindings],
        allow_insecure_plain=allow_insecure_plain,
        external_identities=external_identities,
        allow_anonymous=allow_anonymous,
        scram=scram,
    )
    if name not in offered:
        if name == "PLAIN":
            raise AuthenticationError(_C.ENCRYPTION_REQUIRED, "PLAIN needs a TLS-protected stream")
        raise AuthenticationError(_C.INVALID_MECHANISM, f"{name} is not offered")
    if name == "PLAIN":
        return ServerPlain(scram=scram, decoy_key=decoy_key)
    if name == "EXTERNAL":
        return ServerExternal(external_identities)
    if name == "ANONYMOUS":
        return ServerAnonymous()
    return ServerScram(name, channel_bindings=bindings, decoy_key=decoy_key)
