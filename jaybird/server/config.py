"""The server's configuration: a TOML file read into typed, frozen dataclasses and checked as it loads.

The dataclasses below are the schema. Each field's type, default and metadata (meaning, bounds, checks) drive
the validation, :func:`example_config` and :func:`config_reference` alike, so the documented keys cannot drift
from the accepted ones. Every key has a default: the server runs with no file at all. Relative paths are
relative to the working directory the server starts in.

Errors are :class:`~jaybird.errors.ConfigError` naming the file and the key by its dotted path
(``config.toml: limits.max_stanza_bytes: expected a positive integer, got -5``).
"""

from __future__ import annotations

import dataclasses
import difflib
import ipaddress
import json
import math
import re
import tomllib
import types
import typing
from collections.abc import Callable, Collection, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final, TypeVar

from jaybird.errors import ConfigError
from jaybird.jid import JID

if TYPE_CHECKING:
    from _typeshed import DataclassInstance

__all__ = [
    "DEFAULT_MODULES",
    "AuthConfig",
    "C2SListenerConfig",
    "CertificatePaths",
    "ComponentConfig",
    "ConfigOverrides",
    "HTTPListenerConfig",
    "HostConfig",
    "HostModulesConfig",
    "HostTLSConfig",
    "LimitsConfig",
    "ListenersConfig",
    "LoggingConfig",
    "ModuleOptions",
    "ModulesConfig",
    "RegistrationConfig",
    "S2SConfig",
    "S2SListenerConfig",
    "S2SPeerConfig",
    "ServerConfig",
    "StorageConfig",
    "TLSConfig",
    "ThrottleConfig",
    "config_reference",
    "example_config",
    "load_config",
    "parse_config",
]

_V = TypeVar("_V")
_D = TypeVar("_D", bound="DataclassInstance")

DEFAULT_SOURCE: Final = "<built-in defaults>"
CLI_SOURCE: Final = "command line"

DEFAULT_MODULES: Final[tuple[str, ...]] = (
    *("roster", "presence", "offline", "disco", "ping", "version", "time", "last", "vcard", "private"),
    *("blocking", "register"),
)
SASL_MECHANISMS: Final[tuple[str, ...]] = (
    *("SCRAM-SHA-512-PLUS", "SCRAM-SHA-512", "SCRAM-SHA-256-PLUS", "SCRAM-SHA-256", "SCRAM-SHA-1-PLUS"),
    *("SCRAM-SHA-1", "PLAIN", "EXTERNAL", "ANONYMOUS"),
)
# The bare dialect names are accepted and mapped to the driver jaybird runs them with: SQLite on the event
# loop's thread through the standard library (aiosqlite's thread only when named), PostgreSQL through asyncpg.
STORAGE_SCHEMES: Final = {
    "sqlite": "sqlite+pysqlite",
    "sqlite+pysqlite": "sqlite+pysqlite",
    "sqlite+aiosqlite": "sqlite+aiosqlite",
    "postgresql": "postgresql+asyncpg",
    "postgresql+asyncpg": "postgresql+asyncpg",
    "memory": "memory",
}
ALL_INTERFACES: Final = ("0.0.0.0", "::")
LOOPBACK: Final = ("127.0.0.1", "::1")
_PORT: Final = {"minimum": 1, "maximum": 65535}
_BARE_KEY_RE: Final = re.compile(r"[A-Za-z0-9_-]+")
_MODULE_NAME_RE: Final = re.compile(r"[a-z][a-z0-9_]*")
_HOSTNAME_RE: Final = re.compile(r"(?!-)[A-Za-z0-9-]{1,63}(?<!-)(?:\.(?!-)[A-Za-z0-9-]{1,63}(?<!-))*")
_TOML_POSITION_RE: Final = re.compile(r" \(at line (\d+), column (\d+)\)$")


# --- field metadata -------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Meta:
    doc: str
    minimum: int | None = None
    maximum: int | None = None
    why: str | None = None  # where a minimum comes from, quoted in the error
    choices: tuple[str, ...] = ()
    check: Callable[[str], str] | None = None  # returns the normalized value or raises ValueError(reason)
    nonempty: bool = False  # for lists
    derived: str | None = None  # the default is computed: this says from what (the key is shown commented)
    example: object = None  # a value to show for a key whose default is unset or required


def _m(doc: str, **kwargs: Any) -> dict[str, _Meta]:
    return {"jaybird": _Meta(doc, **kwargs)}


def _meta_of(f: dataclasses.Field[Any]) -> _Meta | None:
    meta = f.metadata.get("jaybird")
    return meta if isinstance(meta, _Meta) else None


# --- checks for string values ---------------------------------------------------------------------------


def _domain(value: str) -> str:
    jid = JID(value)  # JIDError is a ValueError
    if not jid.is_domain:
        raise ValueError(f"expected a domain, not the address {value!r}")
    return jid.domain


def _interface(value: str) -> str:
    try:
        return str(ipaddress.ip_address(value))
    except ValueError:
        if _HOSTNAME_RE.fullmatch(value) and len(value) <= 253:
            return value
    raise ValueError(f"expected an IP address or a host name, got {json.dumps(value)}")


def _url_path(value: str) -> str:
    if not value.startswith("/") or any(c in value for c in "?# "):
        raise ValueError(f"expected a URL path such as '/http-bind', got {json.dumps(value)}")
    return value


def _module_name(value: str) -> str:
    if not _MODULE_NAME_RE.fullmatch(value):
        raise ValueError(f"expected a module name (lowercase letters, digits, '_'), got {json.dumps(value)}")
    return value


def _storage_url(value: str) -> str:
    scheme, sep, rest = value.partition("://")
    if not sep:
        raise ValueError(f"expected a URL such as 'sqlite:///data/jaybird.sqlite3', got {json.dumps(value)}")
    driver = STORAGE_SCHEMES.get(scheme.lower())
    if driver is None:
        raise ValueError(
            f"unsupported scheme {json.dumps(scheme)}{_did_you_mean(scheme, STORAGE_SCHEMES)}; "
            f"expected one of {', '.join(STORAGE_SCHEMES)}"
        )
    return f"{driver}://{rest}"


# --- the schema -----------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ThrottleConfig:
    """At most ``limit`` events per IP address in any ``period_s`` seconds."""

    limit: int = field(default=3, metadata=_m("events allowed per IP address in one period", minimum=1))
    period_s: float = field(default=3600.0, metadata=_m("length of the period, in seconds"))


@dataclass(frozen=True, slots=True)
class HostTLSConfig:
    cert_file: Path | None = field(
        default=None,
        metadata=_m(
            "PEM certificate chain for this host (default: the server-wide one)",
            example="/etc/jaybird/example.com.crt",
        ),
    )
    key_file: Path | None = field(
        default=None,
        metadata=_m("PEM private key for cert_file", example="/etc/jaybird/example.com.key"),
    )


@dataclass(frozen=True, slots=True)
class HostModulesConfig:
    enable: tuple[str, ...] = field(
        default=(), metadata=_m("modules to load on this host besides modules.enabled", check=_module_name)
    )
    disable: tuple[str, ...] = field(
        default=(), metadata=_m("modules of modules.enabled not to load on this host", check=_module_name)
    )


@dataclass(frozen=True, slots=True)
class RegistrationConfig:
    enabled: bool = field(default=False, metadata=_m("allow in-band account registration (XEP-0077)"))
    throttle: ThrottleConfig = field(
        default_factory=ThrottleConfig, metadata=_m("registrations allowed per IP address")
    )


@dataclass(frozen=True, slots=True)
class HostConfig:
    """A virtual host: one domain the server answers for."""

    domain: str = field(metadata=_m("the domain (a JID domainpart, RFC 7622 §3.2)", check=_domain))
    tls: HostTLSConfig = field(default_factory=HostTLSConfig, metadata=_m("this host's certificate"))
    modules: HostModulesConfig = field(
        default_factory=HostModulesConfig, metadata=_m("per-host changes to the module list")
    )
    registration: RegistrationConfig = field(
        default_factory=RegistrationConfig, metadata=_m("in-band registration (XEP-0077)")
    )


@dataclass(frozen=True, slots=True)
class C2SListenerConfig:
    port: int = field(default=5222, metadata=_m("client port, STARTTLS (RFC 6120 §5)", **_PORT))
    tls_port: int = field(default=5223, metadata=_m("client port, direct TLS (XEP-0368)", **_PORT))
    interfaces: tuple[str, ...] = field(
        default=ALL_INTERFACES, metadata=_m("addresses to listen on", check=_interface, nonempty=True)
    )


@dataclass(frozen=True, slots=True)
class S2SListenerConfig:
    enabled: bool = field(default=False, metadata=_m("accept and open server-to-server streams"))
    port: int = field(default=5269, metadata=_m("server-to-server port", **_PORT))
    interfaces: tuple[str, ...] = field(
        default=ALL_INTERFACES, metadata=_m("addresses to listen on", check=_interface, nonempty=True)
    )


@dataclass(frozen=True, slots=True)
class S2SPeerConfig:
    """One remote domain: where to reach it without DNS, and policy that differs from the [s2s] defaults."""

    domain: str = field(metadata=_m("the remote domain", check=_domain, example="example.net"))
    host: str | None = field(
        default=None,
        metadata=_m("connect to this host instead of asking DNS (SRV)", check=_interface, example="127.0.0.1"),
    )
    port: int | None = field(
        default=None, metadata=_m("port to connect to with host (default 5269)", example=5269, **_PORT)
    )
    require_tls: bool | None = field(default=None, metadata=_m("override s2s.require_tls", example=True))
    require_valid_certificate: bool | None = field(
        default=None, metadata=_m("override s2s.require_valid_certificate", example=False)
    )
    allow_dialback: bool | None = field(default=None, metadata=_m("override s2s.allow_dialback", example=True))
    blocked: bool = field(default=False, metadata=_m("refuse every stream from and to this domain"))


@dataclass(frozen=True, slots=True)
class S2SConfig:
    """Federation policy (listeners.s2s turns it on)."""

    require_tls: bool = field(default=True, metadata=_m("streams must be encrypted before authenticating"))
    require_valid_certificate: bool = field(
        default=False,
        metadata=_m("authenticate remote servers only by a certificate valid for their domain (no dialback)"),
    )
    allow_dialback: bool = field(default=True, metadata=_m("accept and use server dialback (XEP-0220)"))
    request_client_certificates: bool = field(
        default=True,
        metadata=_m(
            "ask connecting servers for a certificate (SASL EXTERNAL); one that ca_file does not trust then "
            "fails the TLS handshake"
        ),
    )
    ca_file: Path | None = field(
        default=None,
        metadata=_m(
            "PEM CA certificates trusted for remote servers", derived="the system's CAs", example="/etc/ssl/ca.pem"
        ),
    )
    dialback_secret: str | None = field(
        default=None,
        repr=False,
        metadata=_m(
            "secret dialback keys are made from (XEP-0185)", derived="random at each start", example="change-me"
        ),
    )
    connect_timeout_s: float = field(default=10.0, metadata=_m("time to connect to one remote address"))
    negotiation_timeout_s: float = field(
        default=30.0, metadata=_m("time to finish negotiation (TLS, authentication) of a stream")
    )
    idle_timeout_s: float = field(default=300.0, metadata=_m("close a server-to-server stream idle this long"))
    max_queued_stanzas: int = field(
        default=200, metadata=_m("stanzas held per remote domain while connecting", minimum=1)
    )
    peers: tuple[S2SPeerConfig, ...] = field(
        default=(), metadata=_m("per-domain routes and policy, one [[s2s.peers]] table each")
    )

    def peer(self, domain: str) -> S2SPeerConfig | None:
        wanted = domain.lower()
        return next((peer for peer in self.peers if peer.domain.lower() == wanted), None)


@dataclass(frozen=True, slots=True)
class ComponentConfig:
    """An external component (XEP-0114) allowed to connect and serve ``domain``."""

    domain: str = field(
        metadata=_m("the component's domain", check=_domain, example="gateway.localhost"),
    )
    secret: str = field(repr=False, metadata=_m("shared secret of the handshake (XEP-0114 §3)", example="change-me"))
    port: int = field(default=5347, metadata=_m("port the component connects to", **_PORT))
    interfaces: tuple[str, ...] = field(
        default=LOOPBACK,
        metadata=_m("addresses to listen on (the handshake is not encrypted)", check=_interface, nonempty=True),
    )


@dataclass(frozen=True, slots=True)
class HTTPListenerConfig:
    enabled: bool = field(default=False, metadata=_m("serve BOSH, WebSocket and HTTP modules"))
    port: int = field(default=5280, metadata=_m("plain HTTP port", **_PORT))
    tls_port: int = field(default=5281, metadata=_m("HTTPS port", **_PORT))
    interfaces: tuple[str, ...] = field(
        default=ALL_INTERFACES, metadata=_m("addresses to listen on", check=_interface, nonempty=True)
    )
    bosh_path: str = field(default="/http-bind", metadata=_m("path of the BOSH endpoint (XEP-0206)", check=_url_path))
    websocket_path: str = field(
        default="/xmpp-websocket", metadata=_m("path of the WebSocket endpoint (RFC 7395)", check=_url_path)
    )
    consider_secure: bool = field(
        default=False,
        metadata=_m(
            "treat plain HTTP from any address as encrypted (a TLS-terminating proxy in front); "
            "plain HTTP from loopback is unless loopback_is_secure = false"
        ),
    )
    loopback_is_secure: bool = field(
        default=True,
        metadata=_m(
            "treat plain HTTP from 127.0.0.1 / ::1 as encrypted (a TLS-terminating proxy on this machine); "
            "false: only HTTPS, or consider_secure, counts"
        ),
    )
    cors_origins: tuple[str, ...] = field(
        default=("*",), metadata=_m("origins allowed to use BOSH and host-meta from a web page (CORS); '*': any")
    )
    max_sessions: int = field(default=10000, metadata=_m("BOSH and WebSocket sessions open at once", minimum=1))
    max_request_bytes: int = field(
        default=300000,
        metadata=_m("largest BOSH request body or WebSocket message", minimum=10000, why="RFC 6120 §13.12"),
    )
    bosh_max_wait_s: int = field(default=120, metadata=_m("longest a BOSH request is held (XEP-0124 wait)", minimum=1))
    bosh_max_hold: int = field(default=1, metadata=_m("BOSH requests held at once (XEP-0124 hold)", minimum=1))
    bosh_inactivity_s: int = field(
        default=60, metadata=_m("end a BOSH session with no request open for this long (XEP-0124 §7.1)", minimum=1)
    )
    bosh_max_pause_s: int = field(
        default=120, metadata=_m("longest pause a BOSH client may ask for (XEP-0124 §10)", minimum=1)
    )
    websocket_redirect: str | None = field(
        default=None,
        metadata=_m(
            "send every WebSocket client to this URL instead (RFC 7395 §3.6.1 see-other-uri)",
            example="wss://xmpp.example.com/xmpp-websocket",
        ),
    )


@dataclass(frozen=True, slots=True)
class ListenersConfig:
    c2s: C2SListenerConfig = field(default_factory=C2SListenerConfig, metadata=_m("client connections"))
    s2s: S2SListenerConfig = field(default_factory=S2SListenerConfig, metadata=_m("server federation"))
    http: HTTPListenerConfig = field(default_factory=HTTPListenerConfig, metadata=_m("HTTP services"))
    components: tuple[ComponentConfig, ...] = field(
        default=(), metadata=_m("external components (XEP-0114), one [[listeners.components]] table each")
    )


@dataclass(frozen=True, slots=True)
class TLSConfig:
    cert_file: Path | None = field(
        default=None,
        metadata=_m(
            "PEM certificate chain used by hosts without their own",
            derived="self-signed, generated into <data_dir>/certs/",
            example="/etc/jaybird/fullchain.pem",
        ),
    )
    key_file: Path | None = field(
        default=None,
        metadata=_m(
            "PEM private key for cert_file",
            derived="generated with the certificate",
            example="/etc/jaybird/privkey.pem",
        ),
    )
    require_c2s: bool = field(default=True, metadata=_m("clients must use TLS before authenticating"))
    allow_plain_on_loopback: bool = field(
        default=False, metadata=_m("let clients on 127.0.0.1 / ::1 skip TLS even when require_c2s is set")
    )


@dataclass(frozen=True, slots=True)
class StorageConfig:
    url: str = field(
        default="",
        metadata=_m(
            "database URL: sqlite:///PATH, postgresql+asyncpg://USER:PASSWORD@HOST/DB or memory://",
            check=_storage_url,
            derived="sqlite+pysqlite:///<data_dir>/jaybird.sqlite3",
        ),
    )


@dataclass(frozen=True, slots=True)
class AuthConfig:
    scram_iterations: int = field(
        default=10000,
        metadata=_m("PBKDF2 iterations for new SCRAM credentials", minimum=4096, why="RFC 7677 §4"),
    )
    mechanisms: tuple[str, ...] = field(
        default=("SCRAM-SHA-256-PLUS", "SCRAM-SHA-256", "SCRAM-SHA-1-PLUS", "SCRAM-SHA-1", "PLAIN"),
        metadata=_m("SASL mechanisms offered, strongest first", choices=SASL_MECHANISMS, nonempty=True),
    )
    max_attempts: int = field(
        default=3, metadata=_m("failed authentications allowed on one stream before it is closed", minimum=1)
    )
    failed_login_throttle: ThrottleConfig = field(
        default_factory=lambda: ThrottleConfig(limit=10, period_s=60.0),
        metadata=_m("failed logins allowed per IP address"),
    )


@dataclass(frozen=True, slots=True)
class LimitsConfig:
    max_stanza_bytes: int = field(
        default=262144, metadata=_m("largest stanza accepted", minimum=10000, why="RFC 6120 §13.12")
    )
    max_connections_per_ip: int = field(default=20, metadata=_m("open connections per IP address", minimum=1))
    c2s_rate_bytes_per_s: int = field(default=10240, metadata=_m("read rate of one client stream", minimum=1))
    idle_timeout_s: float = field(default=600.0, metadata=_m("close a stream silent for this long"))
    handshake_timeout_s: float = field(default=30.0, metadata=_m("time to finish stream negotiation (TLS, SASL, bind)"))
    ping_interval_s: float = field(default=300.0, metadata=_m("ping a silent client after this long"))
    offline_max_per_user: int = field(default=1000, metadata=_m("offline messages kept per user (0: none)", minimum=0))


@dataclass(frozen=True, slots=True)
class ModulesConfig:
    enabled: tuple[str, ...] = field(
        default=DEFAULT_MODULES, metadata=_m("modules loaded on every host", check=_module_name)
    )
    #: ``[modules.<name>]`` tables as written, read by each module through :class:`ModuleOptions`.
    options: Mapping[str, Mapping[str, object]] = field(default_factory=lambda: types.MappingProxyType({}), hash=False)


@dataclass(frozen=True, slots=True)
class LoggingConfig:
    level: str = field(
        default="info", metadata=_m("least severe level logged", choices=("debug", "info", "warning", "error"))
    )
    format: str = field(default="text", metadata=_m("text lines or one JSON object a line", choices=("text", "json")))


@dataclass(frozen=True, slots=True)
class CertificatePaths:
    """The certificate a host presents; ``self_signed`` ones are generated on first run if missing."""

    cert_file: Path
    key_file: Path
    self_signed: bool


@dataclass(frozen=True, slots=True)
class ServerConfig:
    """The whole server configuration; :func:`load_config` makes one from a file (or from nothing)."""

    data_dir: Path = field(default=Path("data"), metadata=_m("where the server keeps its state"))
    workers: int = field(
        default=1,
        metadata=_m(
            "server processes sharing the client ports, to use more than one core (1: a single process; more "
            "needs a storage they share, and no s2s, component or HTTP listener)",
            minimum=1,
        ),
    )
    hosts: tuple[HostConfig, ...] = field(
        default=(HostConfig("localhost"),),
        metadata=_m("virtual hosts, one [[hosts]] table each", nonempty=True),
    )
    listeners: ListenersConfig = field(default_factory=ListenersConfig, metadata=_m("network listeners"))
    tls: TLSConfig = field(default_factory=TLSConfig, metadata=_m("TLS certificates and policy"))
    storage: StorageConfig = field(default_factory=StorageConfig, metadata=_m("where data is stored"))
    auth: AuthConfig = field(default_factory=AuthConfig, metadata=_m("authentication (SASL, RFC 6120 §6)"))
    limits: LimitsConfig = field(default_factory=LimitsConfig, metadata=_m("resource limits and timeouts"))
    s2s: S2SConfig = field(default_factory=S2SConfig, metadata=_m("server federation policy"))
    modules: ModulesConfig = field(
        default_factory=ModulesConfig,
        metadata=_m("server modules; each module's own options go in a [modules.<name>] table"),
    )
    logging: LoggingConfig = field(default_factory=LoggingConfig, metadata=_m("log output"))
    #: Where the configuration came from, for error messages (not a key).
    source: str = field(default=DEFAULT_SOURCE, compare=False, repr=False)

    def __post_init__(self) -> None:
        # An empty URL means "under data_dir": filled here so every ServerConfig holds a usable one.
        # dataclasses.replace(config, data_dir=...) keeps an already filled URL.
        if not self.storage.url:
            url = f"sqlite+pysqlite:///{(self.data_dir / 'jaybird.sqlite3').as_posix()}"
            object.__setattr__(self, "storage", replace(self.storage, url=url))

    @property
    def certs_dir(self) -> Path:
        return self.data_dir / "certs"

    def certificate_for(self, host: HostConfig) -> CertificatePaths:
        """The host's own certificate, else the server-wide one, else a self-signed one in certs_dir."""
        for tls in (host.tls, self.tls):
            if tls.cert_file is not None and tls.key_file is not None:
                return CertificatePaths(tls.cert_file, tls.key_file, self_signed=False)
        base = self.certs_dir / host.domain
        return CertificatePaths(base.with_name(base.name + ".crt"), base.with_name(base.name + ".key"), True)

    def modules_for(self, host: HostConfig) -> tuple[str, ...]:
        """The modules to load on ``host``: modules.enabled, plus the host's enable, less its disable."""
        names = [name for name in self.modules.enabled if name not in host.modules.disable]
        names += [name for name in host.modules.enable if name not in names]
        return tuple(names)

    def module_options(self, module: str) -> ModuleOptions:
        """A fresh reader of ``[modules.<module>]`` (empty when the file has no such table)."""
        return ModuleOptions(module, self.modules.options.get(module, {}), source=self.source)

    def check_module_names(self, known: Collection[str]) -> None:
        """Raise :class:`ConfigError` for a module name that is not in ``known`` (the modules that exist)."""
        named = [(f"modules.enabled[{i}]", name) for i, name in enumerate(self.modules.enabled)]
        named += [(_join("modules", name), name) for name in self.modules.options]
        for h, host in enumerate(self.hosts):
            for key in ("enable", "disable"):
                names = getattr(host.modules, key)
                named += [(f"hosts[{h}].modules.{key}[{i}]", name) for i, name in enumerate(names)]
        for key, name in named:
            if name not in known:
                raise ConfigError(self.source, key, f"unknown module {json.dumps(name)}{_did_you_mean(name, known)}")


# --- module options -------------------------------------------------------------------------------------


class ModuleOptions:
    """One module's ``[modules.<name>]`` table, read through typed getters.

    A getter returns ``default`` for an absent key and raises :class:`ConfigError` naming
    ``modules.<name>.<key>`` for a bad value. Once a module has read its options, :meth:`check_unread`
    reports any key it never asked for as unknown, with a suggestion among those it did ask for.
    """

    def __init__(self, module: str, values: Mapping[str, object], *, source: str = DEFAULT_SOURCE) -> None:
        self.module = module
        self.source = source
        self._values = values
        self._asked: list[str] = []

    def _key(self, key: str) -> str:
        return _join(_join("modules", self.module), key)

    def _get(self, key: str, convert: Callable[[object, str], _V], default: _V) -> _V:
        if key not in self._asked:
            self._asked.append(key)
        if key not in self._values:
            return default
        try:
            return convert(self._values[key], self._key(key))
        except _Invalid as exc:
            raise ConfigError(self.source, exc.key, exc.reason) from None

    def get_int(self, key: str, default: int, *, minimum: int | None = None, maximum: int | None = None) -> int:
        return self._get(key, lambda v, k: _as_int(v, k, minimum=minimum, maximum=maximum), default)

    def get_float(self, key: str, default: float, *, positive: bool = False) -> float:
        return self._get(key, lambda v, k: _as_float(v, k, positive=positive), default)

    def get_str(self, key: str, default: str, *, choices: Sequence[str] = ()) -> str:
        return self._get(key, lambda v, k: _as_str(v, k, choices=tuple(choices)), default)

    def get_bool(self, key: str, default: bool) -> bool:
        return self._get(key, _as_bool, default)

    def get_list(self, key: str, default: Sequence[str]) -> tuple[str, ...]:
        """A list of strings."""

        def convert(value: object, k: str) -> tuple[str, ...]:
            return tuple(_as_str(item, f"{k}[{i}]") for i, item in enumerate(_as_list(value, k)))

        return self._get(key, convert, tuple(default))

    @property
    def unread(self) -> tuple[str, ...]:
        """Keys present in the table that no getter asked for."""
        return tuple(key for key in self._values if key not in self._asked)

    def check_unread(self) -> None:
        """Raise :class:`ConfigError` for the first key the module did not read."""
        for key in self.unread:
            hint = (
                _did_you_mean(key, self._asked)
                if self._asked
                else f" (module {json.dumps(self.module)} takes no options)"
            )
            raise ConfigError(self.source, self._key(key), f"unknown key{hint}")


# --- converting TOML values -----------------------------------------------------------------------------


class _Invalid(Exception):
    def __init__(self, key: str, reason: str) -> None:
        super().__init__(f"{key}: {reason}")
        self.key = key
        self.reason = reason


def _show(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, Mapping):
        return "a table"
    if isinstance(value, list | tuple):
        return "[" + ", ".join(_show(item) for item in value) + "]"
    return str(value)


def _did_you_mean(word: str, candidates: Collection[str]) -> str:
    close = difflib.get_close_matches(word, list(candidates), n=1)
    return f" (did you mean '{close[0]}'?)" if close else ""


def _join(path: str, key: str) -> str:
    part = key if _BARE_KEY_RE.fullmatch(key) else json.dumps(key, ensure_ascii=False)
    return f"{path}.{part}" if path else part


def _as_bool(value: object, key: str) -> bool:
    if not isinstance(value, bool):
        raise _Invalid(key, f"expected true or false, got {_show(value)}")
    return value


def _as_int(value: object, key: str, *, minimum: int | None, maximum: int | None, why: str | None = None) -> int:
    if not isinstance(value, int) or isinstance(value, bool):
        raise _Invalid(key, f"expected an integer, got {_show(value)}")
    if (minimum is None or value >= minimum) and (maximum is None or value <= maximum):
        return value
    if (minimum, maximum) == (1, 65535):
        expected = "a port number from 1 to 65535"
    elif maximum is not None:
        expected = f"an integer from {minimum} to {maximum}" if minimum is not None else f"at most {maximum}"
    elif minimum == 0:
        expected = "a non-negative integer"
    elif minimum == 1 or value < 1:
        expected = "a positive integer"
    else:
        expected = f"at least {minimum}" + (f" ({why})" if why else "")
    raise _Invalid(key, f"expected {expected}, got {value}")


def _as_float(value: object, key: str, *, positive: bool) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise _Invalid(key, f"expected a number, got {_show(value)}")
    if not math.isfinite(value) or (positive and value <= 0):
        raise _Invalid(key, f"expected a positive number, got {_show(value)}")
    return float(value)


def _as_str(value: object, key: str, *, choices: tuple[str, ...] = ()) -> str:
    if not isinstance(value, str):
        raise _Invalid(key, f"expected a string, got {_show(value)}")
    if not value:
        raise _Invalid(key, "expected a non-empty string")
    if choices and value not in choices:
        listed = ", ".join(json.dumps(c) for c in choices)
        raise _Invalid(key, f"expected one of {listed}, got {_show(value)}{_did_you_mean(value, choices)}")
    return value


def _as_list(value: object, key: str) -> list[object]:
    if not isinstance(value, list | tuple):  # module options hold arrays frozen into tuples
        raise _Invalid(key, f"expected an array, got {_show(value)}")
    return list(value)


def _as_table(value: object, key: str) -> dict[str, object]:
    if not isinstance(value, dict):
        raise _Invalid(key, f"expected a table, got {_show(value)}")
    return value


def _freeze(value: object) -> object:
    if isinstance(value, dict):
        return types.MappingProxyType({k: _freeze(v) for k, v in value.items()})
    if isinstance(value, list):
        return tuple(_freeze(v) for v in value)
    return value


def _is_dataclass_type(hint: object) -> bool:
    return isinstance(hint, type) and dataclasses.is_dataclass(hint)


def _convert(hint: object, value: object, key: str, meta: _Meta, base: object) -> object:
    if hint is bool:
        return _as_bool(value, key)
    if hint is int:
        return _as_int(value, key, minimum=meta.minimum, maximum=meta.maximum, why=meta.why)
    if hint is float:
        return _as_float(value, key, positive=True)
    if hint is str:
        text = _as_str(value, key, choices=meta.choices)
        try:
            return meta.check(text) if meta.check is not None else text
        except ValueError as exc:
            raise _Invalid(key, str(exc)) from None
    if hint is Path:
        return Path(_as_str(value, key)).expanduser()
    if hint is ModulesConfig:
        return _modules(_as_table(value, key), key)
    args = typing.get_args(hint)
    if typing.get_origin(hint) is types.UnionType:  # only ``X | None``: None is the unset default
        return _convert(next(a for a in args if a is not type(None)), value, key, meta, base)
    if typing.get_origin(hint) is tuple:
        items = _as_list(value, key)
        if meta.nonempty and not items:
            raise _Invalid(key, "expected at least one entry")
        if _is_dataclass_type(args[0]):
            return tuple(_build(args[0], _as_table(v, f"{key}[{i}]"), f"{key}[{i}]", None) for i, v in enumerate(items))
        converted = [_convert(args[0], v, f"{key}[{i}]", meta, None) for i, v in enumerate(items)]
        for i, item in enumerate(converted):
            if item in converted[:i]:
                raise _Invalid(f"{key}[{i}]", f"duplicate entry {_show(item)}")
        return tuple(converted)
    if _is_dataclass_type(hint):
        cls = typing.cast("type[DataclassInstance]", hint)
        return _build(cls, _as_table(value, key), key, typing.cast("DataclassInstance | None", base))
    raise TypeError(f"the schema has no converter for {hint!r}")  # a bug in the dataclasses above


def _field_default(f: dataclasses.Field[Any]) -> object:
    if f.default is not dataclasses.MISSING:
        return f.default
    if f.default_factory is not dataclasses.MISSING:
        return f.default_factory()
    return dataclasses.MISSING


def _keys(cls: type[DataclassInstance]) -> dict[str, tuple[dataclasses.Field[Any], _Meta]]:
    found = {}
    for f in dataclasses.fields(cls):
        meta = _meta_of(f)
        if meta is not None:
            found[f.name] = (f, meta)
    return found


def _build(cls: type[_D], table: Mapping[str, object], path: str, base: _D | None) -> _D:
    """``cls`` from a TOML table; an absent key keeps its value in ``base`` (or the field's default)."""
    known = _keys(cls)
    for key in table:
        if key not in known:
            hint = _did_you_mean(key, known) or f" (expected one of: {', '.join(known)})"
            raise _Invalid(_join(path, key), f"unknown key{hint}")
    hints = typing.get_type_hints(cls)
    kwargs: dict[str, object] = {}
    for name, (f, meta) in known.items():
        default = getattr(base, name) if base is not None else _field_default(f)
        if name in table:
            kwargs[name] = _convert(hints[name], table[name], _join(path, name), meta, default)
        elif default is dataclasses.MISSING:
            raise _Invalid(_join(path, name), "required key is missing")
        else:
            kwargs[name] = default
    return cls(**kwargs)


def _modules(table: Mapping[str, object], path: str) -> ModulesConfig:
    enabled_meta = _keys(ModulesConfig)["enabled"][1]
    enabled: tuple[str, ...] = DEFAULT_MODULES
    options: dict[str, object] = {}
    for key, value in table.items():
        if key == "enabled":
            enabled = typing.cast(
                "tuple[str, ...]", _convert(tuple[str, ...], value, _join(path, key), enabled_meta, None)
            )
        elif isinstance(value, dict):
            try:
                options[_module_name(key)] = _freeze(value)
            except ValueError as exc:
                raise _Invalid(_join(path, key), str(exc)) from None
        else:
            raise _Invalid(_join(path, key), f"unknown key{_did_you_mean(key, ['enabled'])}")
    frozen = typing.cast("Mapping[str, Mapping[str, object]]", types.MappingProxyType(options))
    return ModulesConfig(enabled=enabled, options=frozen)


def _check_whole(config: ServerConfig) -> None:
    """What no single key can check: duplicates, pairs set together, port clashes."""
    seen: dict[str, str] = {}
    for i, host in enumerate(config.hosts):
        key = f"hosts[{i}].domain"
        if host.domain in seen:
            raise _Invalid(key, f"duplicate host {_show(host.domain)} (also {seen[host.domain]})")
        seen[host.domain] = key
        _check_pair(host.tls, f"hosts[{i}].tls")
    for i, component in enumerate(config.listeners.components):
        key = f"listeners.components[{i}].domain"
        if component.domain in seen:
            raise _Invalid(key, f"duplicate domain {_show(component.domain)} (also {seen[component.domain]})")
        seen[component.domain] = key
    _check_pair(config.tls, "tls")
    _check_ports(config.listeners)
    _check_workers(config)


def _check_workers(config: ServerConfig) -> None:
    """Several worker processes share the database and route client stanzas between them; what keeps state in
    one process only (an in-memory storage, BOSH sessions, s2s dialback, a component's connection) cannot be
    split across them yet."""
    n = config.workers
    if n == 1:
        return
    if STORAGE_SCHEMES.get(config.storage.url.partition("://")[0].lower()) == "memory":
        raise _Invalid("workers", f"workers = {n} needs a storage every worker shares; storage.url is memory://")
    refused = [
        ("listeners.s2s.enabled", config.listeners.s2s.enabled),
        ("listeners.http.enabled", config.listeners.http.enabled),
        ("listeners.components", bool(config.listeners.components)),
    ]
    for key, used in refused:
        if used:
            raise _Invalid("workers", f"workers = {n} cannot be combined with {key} yet; use workers = 1")


def _check_pair(tls: HostTLSConfig | TLSConfig, path: str) -> None:
    if tls.cert_file is None and tls.key_file is not None:
        raise _Invalid(f"{path}.key_file", "is set without cert_file")
    if tls.cert_file is not None and tls.key_file is None:
        raise _Invalid(f"{path}.cert_file", "is set without key_file")


def _check_ports(listeners: ListenersConfig) -> None:
    used = [("listeners.c2s.port", listeners.c2s.port), ("listeners.c2s.tls_port", listeners.c2s.tls_port)]
    if listeners.s2s.enabled:
        used.append(("listeners.s2s.port", listeners.s2s.port))
    if listeners.http.enabled:
        used += [("listeners.http.port", listeners.http.port), ("listeners.http.tls_port", listeners.http.tls_port)]
    used += [(f"listeners.components[{i}].port", c.port) for i, c in enumerate(listeners.components)]
    owner: dict[int, str] = {}
    for key, port in used:
        other = owner.setdefault(port, key)
        # XEP-0114 components name their domain in the stream header, so several may share one port
        if other != key and not (other.startswith("listeners.components") and key.startswith("listeners.components")):
            raise _Invalid(key, f"port {port} is already used by {other}")


# --- loading --------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ConfigOverrides:
    """Command-line settings, applied over the file and checked like it (errors name the option).

    ``domains``, when given, replaces the host list; a domain the file has a ``[[hosts]]`` table for keeps
    that table's settings. ``http_port`` also enables the HTTP listener.
    """

    data_dir: Path | None = None
    domains: tuple[str, ...] = ()
    c2s_port: int | None = None
    c2s_tls_port: int | None = None
    http_port: int | None = None
    workers: int | None = None


def _subtable(raw: dict[str, object], *keys: str) -> dict[str, object] | None:
    table = raw
    for key in keys:
        child = table.setdefault(key, {})
        if not isinstance(child, dict):
            return None  # the file's own error is reported when it is checked
        table = child
    return table


def _apply_overrides(raw: dict[str, object], overrides: ConfigOverrides) -> dict[str, str]:
    """Write the overrides into the raw table; returns which dotted keys came from which option."""
    options: dict[str, str] = {}
    if overrides.data_dir is not None:
        raw["data_dir"] = str(overrides.data_dir)
        options["data_dir"] = "--data-dir"
    if overrides.workers is not None:
        raw["workers"] = overrides.workers
        options["workers"] = "--workers"
    if overrides.domains:
        by_domain: dict[str, dict[str, object]] = {}
        hosts = raw.get("hosts")
        for table in hosts if isinstance(hosts, list) else []:
            if isinstance(table, dict) and isinstance(table.get("domain"), str):
                by_domain.setdefault(_prepared_or_raw(table["domain"]), table)
        raw["hosts"] = [
            {**by_domain.get(_prepared_or_raw(domain), {}), "domain": domain} for domain in overrides.domains
        ]
        options.update({f"hosts[{i}].domain": "--domain" for i in range(len(overrides.domains))})
    for keys, value, option in (
        (("listeners", "c2s"), overrides.c2s_port, "--c2s-port"),
        (("listeners", "c2s"), overrides.c2s_tls_port, "--c2s-tls-port"),
        (("listeners", "http"), overrides.http_port, "--http-port"),
    ):
        table = _subtable(raw, *keys) if value is not None else None
        if table is not None:
            name = "tls_port" if option == "--c2s-tls-port" else "port"
            table[name] = value
            options[".".join((*keys, name))] = option
            if option == "--http-port":
                table["enabled"] = True
    return options


def _prepared_or_raw(domain: str) -> str:
    try:
        return _domain(domain)
    except ValueError:
        return domain


def _load(raw: dict[str, object], source: str, overrides: ConfigOverrides | None) -> ServerConfig:
    options = _apply_overrides(raw, overrides or ConfigOverrides())
    try:
        config = _build(ServerConfig, raw, "", None)
        _check_whole(config)
    except _Invalid as exc:
        option = options.get(exc.key)
        if option is not None:
            raise ConfigError(CLI_SOURCE, option, exc.reason) from None
        raise ConfigError(source, exc.key, exc.reason) from None
    return replace(config, source=source)


def parse_config(text: str, *, source: str = "<string>", overrides: ConfigOverrides | None = None) -> ServerConfig:
    """A configuration from TOML text; ``source`` names it in errors."""
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        message = str(exc)
        position = _TOML_POSITION_RE.search(message)
        if position is None:
            raise ConfigError(source, None, f"invalid TOML: {message}") from None
        reason = f"invalid TOML (column {position[2]}): {message[: position.start()]}"
        raise ConfigError(source, None, reason, line=int(position[1])) from None
    return _load(raw, source, overrides)


def load_config(path: Path | None = None, *, overrides: ConfigOverrides | None = None) -> ServerConfig:
    """Read and check the configuration file; ``path=None`` gives the built-in defaults."""
    if path is None:
        return _load({}, DEFAULT_SOURCE, overrides)
    source = str(path)
    try:
        text = path.read_bytes().decode("utf-8")
    except OSError as exc:
        raise ConfigError(source, None, f"cannot read the file: {exc.strerror or exc}") from None
    except UnicodeDecodeError as exc:
        raise ConfigError(source, None, f"not UTF-8 text (byte {exc.start})") from None
    return parse_config(text, source=source, overrides=overrides)


# --- documentation: the example file and the reference table --------------------------------------------

_EXAMPLE_HEADER: Final = """\
# jaybird server configuration (TOML). Every key is shown with its default value, so this file
# configures exactly what the server does with no file at all. Keys shown commented out have no
# fixed default: remove the '#' to set them. Relative paths are relative to the working directory."""


def _toml(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str | Path):
        return json.dumps(str(value), ensure_ascii=False)
    if isinstance(value, tuple | list):
        items = [_toml(item) for item in value]
        line = "[" + ", ".join(items) + "]"
        return line if len(line) <= 80 else "[\n" + "".join(f"    {item},\n" for item in items) + "]"
    return repr(value)


def _example_item(cls: type[_D]) -> _D:
    kwargs = {name: meta.example for name, (f, meta) in _keys(cls).items() if _field_default(f) is dataclasses.MISSING}
    return cls(**kwargs)


def _emit(out: list[str], obj: DataclassInstance, path: str) -> None:
    hints = typing.get_type_hints(type(obj))
    tables: list[tuple[str, _Meta]] = []
    for name, (_, meta) in _keys(type(obj)).items():
        value = getattr(obj, name)
        hint = hints[name]
        if _is_dataclass_type(hint) or _is_dataclass_type(next(iter(typing.get_args(hint)), None)):
            tables.append((name, meta))
            continue
        out.append(f"# {meta.doc}" + (f" (default: {meta.derived})" if meta.derived else ""))
        if meta.derived is not None or value is None:
            out.append(f"# {name} = {_toml(meta.example if value is None else value)}")
        else:
            out.append(f"{name} = {_toml(value)}")
    for name, meta in tables:
        key, value = _join(path, name), getattr(obj, name)
        out += ["", f"# {meta.doc}"]
        if not isinstance(value, tuple):
            out.append(f"[{key}]")
            _emit(out, value, key)
            continue
        items = list(value) or [_example_item(typing.get_args(hints[name])[0])]
        for item in items:
            block = [f"[[{key}]]"]
            _emit(block, item, key)
            out += block if value else [line if line.startswith("#") else f"# {line}" for line in block]


def example_config() -> str:
    """A commented TOML file of every key with its default; it loads back to the default configuration."""
    out = [_EXAMPLE_HEADER, ""]
    _emit(out, ServerConfig(), "")
    return "\n".join(out) + "\n"


def _describe(hint: object, meta: _Meta) -> str:
    if hint is bool:
        return "boolean"
    if hint is int:
        if meta.maximum is not None:
            return f"integer {meta.minimum}-{meta.maximum}"
        return f"integer ≥ {meta.minimum}" if meta.minimum is not None else "integer"
    if hint is float:
        return "number > 0"
    if hint is str:
        return "one of " + ", ".join(meta.choices) if meta.choices else "string"
    if hint is Path:
        return "path"
    args = typing.get_args(hint)
    if typing.get_origin(hint) is types.UnionType:
        return _describe(next(a for a in args if a is not type(None)), meta)
    if typing.get_origin(hint) is tuple:
        if _is_dataclass_type(args[0]):
            return "array of tables"
        return "array of " + (", ".join(meta.choices) if meta.choices else "strings")
    return "table"


def _rows(cls: type[DataclassInstance], base: object, path: str) -> Iterator[tuple[str, str, str, str]]:
    hints = typing.get_type_hints(cls)
    for name, (f, meta) in _keys(cls).items():
        key, hint = _join(path, name), hints[name]
        default = getattr(base, name) if base is not None else _field_default(f)
        args = typing.get_args(hint)
        if _is_dataclass_type(hint):
            yield from _rows(hint, default, key)
            if hint is ModulesConfig:
                yield (f"{key}.<name>.*", "table", "", "options of one module, checked by that module")
            continue
        if default is dataclasses.MISSING:
            shown = "*required*"
        elif meta.derived is not None:
            shown = meta.derived
        elif default is None:
            shown = "*unset*"
        elif isinstance(default, tuple) and args and _is_dataclass_type(args[0]):
            shown = "`[" + ", ".join(_inline_required(item) for item in default) + "]`"
        else:
            shown = f"`{' '.join(_toml(default).split())}`".replace("[ ", "[").replace(", ]", "]")
        yield key, _describe(hint, meta), shown, meta.doc
        if args and _is_dataclass_type(args[0]):
            yield from _rows(args[0], None, f"{key}[]")


def _inline_required(item: DataclassInstance) -> str:
    keys = _keys(type(item)).items()
    required = [name for name, (f, _) in keys if _field_default(f) is dataclasses.MISSING]
    return "{" + ", ".join(f"{name} = {_toml(getattr(item, name))}" for name in required) + "}"


def _html_escape(text: str) -> str:
    parts = text.split("`")
    return "`".join(part if i % 2 else part.replace("<", "&lt;").replace(">", "&gt;") for i, part in enumerate(parts))


def config_reference() -> str:
    """A Markdown table of every key: its type, default and meaning."""
    lines = ["| key | type | default | meaning |", "|---|---|---|---|"]
    for key, kind, default, doc in _rows(ServerConfig, None, ""):
        # a bare <data_dir> would read as an HTML tag
        cells = (f"`{key}`", kind, _html_escape(default), _html_escape(doc))
        lines.append("| " + " | ".join(cell.replace("|", "\\|") for cell in cells) + " |")
    return "\n".join(lines) + "\n"
