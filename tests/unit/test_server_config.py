"""The server configuration: defaults, parsing, errors that name the key, overrides, module options, docs."""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable, Mapping
from pathlib import Path

import pytest

from jaybird.errors import ConfigError, JaybirdError
from jaybird.server.config import (
    DEFAULT_MODULES,
    CertificatePaths,
    ConfigOverrides,
    ModuleOptions,
    ServerConfig,
    config_reference,
    example_config,
    load_config,
    parse_config,
)

DOCS = Path(__file__).resolve().parents[2] / "docs" / "configuration.md"


def parse(text: str, overrides: ConfigOverrides | None = None) -> ServerConfig:
    return parse_config(text, source="config.toml", overrides=overrides)


def error_of(text: str, overrides: ConfigOverrides | None = None) -> str:
    with pytest.raises(ConfigError) as info:
        parse(text, overrides)
    return str(info.value)


# --- defaults ---------------------------------------------------------------------------------------------


def test_defaults_need_no_file() -> None:
    config = load_config(None)
    assert [host.domain for host in config.hosts] == ["localhost"]
    assert config.data_dir == Path("data")
    c2s = config.listeners.c2s
    assert (c2s.port, c2s.tls_port, c2s.interfaces) == (5222, 5223, ("0.0.0.0", "::"))
    assert not config.listeners.s2s.enabled and config.listeners.s2s.port == 5269
    assert not config.listeners.http.enabled
    assert (config.listeners.http.port, config.listeners.http.tls_port) == (5280, 5281)
    assert config.listeners.components == ()
    assert config.storage.url == "sqlite+pysqlite:///data/jaybird.sqlite3"
    assert config.tls.require_c2s and not config.tls.allow_plain_on_loopback
    assert config.auth.scram_iterations == 10000 and config.auth.max_attempts == 3
    assert config.limits.max_stanza_bytes == 262144
    assert config.limits.max_connections_per_ip == 20
    assert config.limits.c2s_rate_bytes_per_s == 10240
    assert (config.limits.idle_timeout_s, config.limits.handshake_timeout_s) == (600.0, 30.0)
    assert config.limits.ping_interval_s == 300.0 and config.limits.offline_max_per_user == 1000
    assert config.modules.enabled == DEFAULT_MODULES and dict(config.modules.options) == {}
    assert not config.hosts[0].registration.enabled
    assert (config.logging.level, config.logging.format) == ("info", "text")


def test_default_certificate_is_self_signed_under_the_data_dir() -> None:
    config = load_config(None, overrides=ConfigOverrides(data_dir=Path("/srv/xmpp")))
    assert config.certificate_for(config.hosts[0]) == CertificatePaths(
        Path("/srv/xmpp/certs/localhost.crt"), Path("/srv/xmpp/certs/localhost.key"), self_signed=True
    )
    # four slashes: SQLAlchemy's form of an absolute SQLite path
    assert config.storage.url == "sqlite+pysqlite:////srv/xmpp/jaybird.sqlite3"


def test_an_empty_file_is_the_default() -> None:
    assert parse("") == load_config(None)


def test_config_is_frozen() -> None:
    config = load_config(None)
    with pytest.raises(dataclasses.FrozenInstanceError):
        config.data_dir = Path("x")  # type: ignore[misc]


# --- every section ----------------------------------------------------------------------------------------

FULL = """
data_dir = "/var/lib/jaybird"

[[hosts]]
domain = "Example.COM"
[hosts.tls]
cert_file = "/etc/jaybird/example.crt"
key_file = "/etc/jaybird/example.key"
[hosts.modules]
enable = ["muc"]
disable = ["mam"]
[hosts.registration]
enabled = true
[hosts.registration.throttle]
limit = 1
period_s = 86400

[[hosts]]
domain = "capulet.lit"

[listeners.c2s]
port = 15222
tls_port = 15223
interfaces = ["127.0.0.1", "::1", "xmpp.example.com"]
[listeners.s2s]
enabled = true
port = 15269
[listeners.http]
enabled = true
port = 15280
tls_port = 15281
interfaces = ["127.0.0.1"]
[[listeners.components]]
domain = "gateway.example.com"
secret = "s3cret"
[[listeners.components]]
domain = "pubsub.example.com"
secret = "other"
port = 5347
interfaces = ["0.0.0.0"]

[tls]
cert_file = "/etc/jaybird/all.crt"
key_file = "/etc/jaybird/all.key"
require_c2s = false
allow_plain_on_loopback = true

[storage]
url = "postgresql+asyncpg://jaybird:pw@db.example.com/jaybird"

[auth]
scram_iterations = 4096
mechanisms = ["SCRAM-SHA-256", "PLAIN"]
max_attempts = 5
[auth.failed_login_throttle]
limit = 4
period_s = 0.5

[limits]
max_stanza_bytes = 10000
max_connections_per_ip = 2
c2s_rate_bytes_per_s = 1
idle_timeout_s = 1.5
handshake_timeout_s = 2
ping_interval_s = 3
offline_max_per_user = 0

[modules]
enabled = ["disco", "roster", "mam"]
[modules.mam]
default_policy = "roster"
max_items = 50

[logging]
level = "debug"
format = "json"
"""


def test_every_section_parses() -> None:
    config = parse(FULL)
    assert config.data_dir == Path("/var/lib/jaybird")
    first, second = config.hosts
    assert first.domain == "example.com"  # prepared: RFC 7622 §3.2 (UTS #46 mapping lowercases)
    assert (first.tls.cert_file, first.tls.key_file) == (
        Path("/etc/jaybird/example.crt"),
        Path("/etc/jaybird/example.key"),
    )
    assert (first.modules.enable, first.modules.disable) == (("muc",), ("mam",))
    assert first.registration.enabled
    assert (first.registration.throttle.limit, first.registration.throttle.period_s) == (1, 86400.0)
    assert second.domain == "capulet.lit" and not second.registration.enabled
    assert second.registration.throttle.limit == 3  # the defaults of a table the file leaves out
    listeners = config.listeners
    assert (listeners.c2s.port, listeners.c2s.tls_port) == (15222, 15223)
    assert listeners.c2s.interfaces == ("127.0.0.1", "::1", "xmpp.example.com")
    assert listeners.s2s.enabled and listeners.s2s.port == 15269
    assert listeners.http.enabled and (listeners.http.port, listeners.http.tls_port) == (15280, 15281)
    gateway, pubsub = listeners.components
    assert (gateway.domain, gateway.secret, gateway.port, gateway.interfaces) == (
        "gateway.example.com",
        "s3cret",
        5347,
        ("127.0.0.1", "::1"),
    )
    assert pubsub.interfaces == ("0.0.0.0",)
    assert config.tls.cert_file == Path("/etc/jaybird/all.crt") and not config.tls.require_c2s
    assert config.tls.allow_plain_on_loopback
    assert config.storage.url == "postgresql+asyncpg://jaybird:pw@db.example.com/jaybird"
    assert config.auth.scram_iterations == 4096 and config.auth.mechanisms == ("SCRAM-SHA-256", "PLAIN")
    assert config.auth.max_attempts == 5
    assert (config.auth.failed_login_throttle.limit, config.auth.failed_login_throttle.period_s) == (4, 0.5)
    limits = config.limits
    assert (limits.max_stanza_bytes, limits.max_connections_per_ip, limits.c2s_rate_bytes_per_s) == (10000, 2, 1)
    assert (limits.idle_timeout_s, limits.handshake_timeout_s, limits.ping_interval_s) == (1.5, 2.0, 3.0)
    assert isinstance(limits.handshake_timeout_s, float) and limits.offline_max_per_user == 0
    assert config.modules.enabled == ("disco", "roster", "mam")
    assert dict(config.modules.options["mam"]) == {"default_policy": "roster", "max_items": 50}
    assert (config.logging.level, config.logging.format) == ("debug", "json")


def test_per_host_module_list_and_certificates() -> None:
    config = parse(FULL)
    first, second = config.hosts
    assert config.modules_for(first) == ("disco", "roster", "muc")
    assert config.modules_for(second) == ("disco", "roster", "mam")
    assert config.certificate_for(first) == CertificatePaths(
        Path("/etc/jaybird/example.crt"), Path("/etc/jaybird/example.key"), self_signed=False
    )
    assert config.certificate_for(second).cert_file == Path("/etc/jaybird/all.crt")


@pytest.mark.parametrize(
    ("written", "url"),
    [
        ("sqlite:///state/x.db", "sqlite+pysqlite:///state/x.db"),
        ("sqlite+aiosqlite:///state/x.db", "sqlite+aiosqlite:///state/x.db"),
        ("postgresql://u@h/db", "postgresql+asyncpg://u@h/db"),
        ("memory://", "memory://"),
    ],
)
def test_storage_url_gets_its_driver(written: str, url: str) -> None:
    config = parse(f'[storage]\nurl = "{written}"')
    assert config.storage.url == url


def test_an_explicit_storage_url_does_not_follow_data_dir() -> None:
    config = parse('data_dir = "elsewhere"\n[storage]\nurl = "sqlite:///kept.db"')
    assert config.storage.url == "sqlite+pysqlite:///kept.db"
    assert parse('data_dir = "elsewhere"').storage.url == "sqlite+pysqlite:///elsewhere/jaybird.sqlite3"


def test_component_secret_is_not_in_repr() -> None:
    config = parse('[[listeners.components]]\ndomain = "gw.localhost"\nsecret = "hunter2"')
    assert "hunter2" not in repr(config)


# --- unknown keys -----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('data_dri = "x"', "config.toml: data_dri: unknown key (did you mean 'data_dir'?)"),
        ("[listeners.c2s]\nprot = 1", "config.toml: listeners.c2s.prot: unknown key (did you mean 'port'?)"),
        ("[listners]", "config.toml: listners: unknown key (did you mean 'listeners'?)"),
        (
            '[[hosts]]\ndomain = "a.example"\n[hosts.registraton]',
            "config.toml: hosts[0].registraton: unknown key (did you mean 'registration'?)",
        ),
        (
            '[[hosts]]\ndomain = "a.example"\n[hosts.registration.throttle]\nlimt = 1',
            "config.toml: hosts[0].registration.throttle.limt: unknown key (did you mean 'limit'?)",
        ),
        (
            '[[listeners.components]]\ndomain = "gw.localhost"\nsecert = "x"',
            "config.toml: listeners.components[0].secert: unknown key (did you mean 'secret'?)",
        ),
        (
            "[auth.failed_login_throttle]\nperod_s = 1",
            "config.toml: auth.failed_login_throttle.perod_s: unknown key (did you mean 'period_s'?)",
        ),
        ('[modules]\nenabeld = ["disco"]', "config.toml: modules.enabeld: unknown key (did you mean 'enabled'?)"),
        ('[logging]\nlevle = "info"', "config.toml: logging.levle: unknown key (did you mean 'level'?)"),
        ('[storage]\n"a.b" = 1', 'config.toml: storage."a.b": unknown key (expected one of: url)'),
    ],
)
def test_unknown_keys_are_named_with_a_suggestion(text: str, message: str) -> None:
    assert error_of(text) == message


def test_config_error_carries_source_and_key() -> None:
    with pytest.raises(ConfigError) as info:
        parse("[limits]\nmax_stanza_bytes = -5")
    assert isinstance(info.value, JaybirdError)
    assert (info.value.source, info.value.key) == ("config.toml", "limits.max_stanza_bytes")
    assert info.value.reason == "expected a positive integer, got -5"


# --- wrong values -----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[limits]\nmax_stanza_bytes = -5", "limits.max_stanza_bytes: expected a positive integer, got -5"),
        ('[listeners.c2s]\nport = "5222"', 'listeners.c2s.port: expected an integer, got "5222"'),
        ("[listeners.c2s]\nport = true", "listeners.c2s.port: expected an integer, got true"),
        ("[listeners.c2s]\nport = 5222.0", "listeners.c2s.port: expected an integer, got 5222.0"),
        (
            "[listeners.http]\ntls_port = 70000",
            "listeners.http.tls_port: expected a port number from 1 to 65535, got 70000",
        ),
        ("[listeners.s2s]\nport = 0", "listeners.s2s.port: expected a port number from 1 to 65535, got 0"),
        # RFC 7677 §4: the iteration count SHOULD be at least 4096
        ("[auth]\nscram_iterations = 4095", "auth.scram_iterations: expected at least 4096 (RFC 7677 §4), got 4095"),
        # RFC 6120 §13.12: a server must accept stanzas of at least 10000 bytes
        (
            "[limits]\nmax_stanza_bytes = 9999",
            "limits.max_stanza_bytes: expected at least 10000 (RFC 6120 §13.12), got 9999",
        ),
        ("[limits]\noffline_max_per_user = -1", "limits.offline_max_per_user: expected a non-negative integer, got -1"),
        ("[limits]\nidle_timeout_s = 0", "limits.idle_timeout_s: expected a positive number, got 0"),
        ('[limits]\nidle_timeout_s = "10m"', 'limits.idle_timeout_s: expected a number, got "10m"'),
        ("[limits]\nping_interval_s = inf", "limits.ping_interval_s: expected a positive number, got inf"),
        ('[tls]\nrequire_c2s = "yes"', 'tls.require_c2s: expected true or false, got "yes"'),
        (
            '[logging]\nformat = "jsno"',
            'logging.format: expected one of "text", "json", got "jsno" (did you mean \'json\'?)',
        ),
        ('data_dir = ""', "data_dir: expected a non-empty string"),
        ("data_dir = 3", "data_dir: expected a string, got 3"),
        ("listeners = 3", "listeners: expected a table, got 3"),
        ('hosts = ["localhost"]', 'hosts[0]: expected a table, got "localhost"'),
        ("hosts = []", "hosts: expected at least one entry"),
        ('[listeners.c2s]\ninterfaces = "::"', 'listeners.c2s.interfaces: expected an array, got "::"'),
        (
            '[listeners.c2s]\ninterfaces = ["::", "not an address!"]',
            'listeners.c2s.interfaces[1]: expected an IP address or a host name, got "not an address!"',
        ),
        (
            '[listeners.c2s]\ninterfaces = ["::1", "::1"]',
            'listeners.c2s.interfaces[1]: duplicate entry "::1"',
        ),
        (
            '[auth]\nmechanisms = ["SCRAM-SHA-256", "SCRAM-SHA256"]',
            "auth.mechanisms[1]: expected one of",
        ),
        ('[modules]\nenabled = ["Disco"]', "modules.enabled[0]: expected a module name"),
        ("[modules.Mam]\nx = 1", "modules.Mam: expected a module name"),
        (
            '[[listeners.components]]\ndomain = "gw.localhost"',
            "listeners.components[0].secret: required key is missing",
        ),
        ("[[hosts]]\n", "hosts[0].domain: required key is missing"),
    ],
)
def test_bad_values_are_named(text: str, message: str) -> None:
    assert error_of(text).startswith(f"config.toml: {message}")


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("mysql://u@h/db", 'unsupported scheme "mysql"; expected one of sqlite, sqlite+pysqlite, sqlite+aiosqlite, '),
        ("postgres://u@h/db", "unsupported scheme \"postgres\" (did you mean 'postgresql'?); expected one of"),
        ("data/jaybird.sqlite3", "expected a URL such as 'sqlite:///data/jaybird.sqlite3'"),
    ],
)
def test_bad_storage_url_is_named(url: str, reason: str) -> None:
    assert error_of(f'[storage]\nurl = "{url}"').startswith(f"config.toml: storage.url: {reason}")


@pytest.mark.parametrize(
    ("domain", "reason"),
    [
        ("exa mple.com", "domainpart: is not a valid domain name"),
        ("juliet@example.com", "expected a domain, not the address 'juliet@example.com'"),
        ("example.com/balcony", "expected a domain, not the address"),
        ("[::1", "domainpart: '[::1' is not a valid IPv6 literal"),
    ],
)
def test_bad_domain_is_named(domain: str, reason: str) -> None:
    message = error_of(f'[[hosts]]\ndomain = "{domain}"')
    assert message.startswith(f"config.toml: hosts[0].domain: {reason}")


def test_duplicate_hosts_after_preparation() -> None:
    text = '[[hosts]]\ndomain = "example.com"\n[[hosts]]\ndomain = "EXAMPLE.com."'
    assert error_of(text) == 'config.toml: hosts[1].domain: duplicate host "example.com" (also hosts[0].domain)'


def test_component_domain_may_not_be_a_host() -> None:
    text = '[[listeners.components]]\ndomain = "localhost"\nsecret = "x"'
    assert error_of(text) == (
        'config.toml: listeners.components[0].domain: duplicate domain "localhost" (also hosts[0].domain)'
    )


def test_certificate_and_key_go_together() -> None:
    assert error_of('[tls]\ncert_file = "a.crt"') == "config.toml: tls.cert_file: is set without key_file"
    text = '[[hosts]]\ndomain = "a.example"\n[hosts.tls]\nkey_file = "a.key"'
    assert error_of(text) == "config.toml: hosts[0].tls.key_file: is set without cert_file"


def test_listener_ports_may_not_clash() -> None:
    assert error_of("[listeners.c2s]\ntls_port = 5222") == (
        "config.toml: listeners.c2s.tls_port: port 5222 is already used by listeners.c2s.port"
    )
    # a disabled listener holds no port
    assert parse("[listeners.s2s]\nport = 5222").listeners.s2s.port == 5222
    assert error_of("[listeners.s2s]\nenabled = true\nport = 5222").startswith("config.toml: listeners.s2s.port:")


def test_components_may_share_a_port() -> None:
    text = '[[listeners.components]]\ndomain = "a.localhost"\nsecret = "x"\n'
    text += '[[listeners.components]]\ndomain = "b.localhost"\nsecret = "y"\n'
    assert [c.port for c in parse(text).listeners.components] == [5347, 5347]


# --- files and TOML syntax --------------------------------------------------------------------------------


def test_toml_syntax_error_names_file_and_line(tmp_path: Path) -> None:
    path = tmp_path / "config.toml"
    path.write_text('data_dir = "x"\n\n[limits]\nmax_stanza_bytes 5\n', encoding="utf-8")
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert info.value.line == 4
    assert str(info.value).startswith(f"{path}:4: invalid TOML (column 18): ")


def test_duplicate_toml_key_is_a_syntax_error() -> None:
    with pytest.raises(ConfigError) as info:
        parse("[auth]\nmax_attempts = 1\nmax_attempts = 2\n")
    assert info.value.line == 3 and str(info.value).startswith("config.toml:3: invalid TOML")


def test_errors_from_a_file_name_the_file(tmp_path: Path) -> None:
    path = tmp_path / "jaybird.toml"
    path.write_text("[listeners.c2s]\nprot = 1\n", encoding="utf-8")
    with pytest.raises(ConfigError, match=re.escape(f"{path}: listeners.c2s.prot: unknown key")):
        load_config(path)


def test_missing_and_non_utf8_files(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read the file: No such file"):
        load_config(tmp_path / "absent.toml")
    path = tmp_path / "latin1.toml"
    path.write_bytes(b'data_dir = "caf\xe9"\n')
    with pytest.raises(ConfigError, match=re.escape(f"{path}: not UTF-8 text (byte 15)")):
        load_config(path)


def test_a_loaded_file_is_its_own_source(tmp_path: Path) -> None:
    path = tmp_path / "config.toml"
    path.write_text(FULL, encoding="utf-8")
    config = load_config(path)
    assert config.source == str(path) and config == parse(FULL)


# --- overrides --------------------------------------------------------------------------------------------


def test_overrides_win_over_the_file() -> None:
    overrides = ConfigOverrides(
        data_dir=Path("/tmp/jb"),
        domains=("capulet.lit", "montague.lit"),
        c2s_port=25222,
        c2s_tls_port=25223,
        http_port=25280,
    )
    config = parse(FULL, overrides)
    assert config.data_dir == Path("/tmp/jb")
    assert [host.domain for host in config.hosts] == ["capulet.lit", "montague.lit"]
    assert (config.listeners.c2s.port, config.listeners.c2s.tls_port) == (25222, 25223)
    assert config.listeners.http.port == 25280 and config.listeners.http.tls_port == 15281
    # the rest of the file still holds
    assert config.listeners.c2s.interfaces == ("127.0.0.1", "::1", "xmpp.example.com")
    assert config.storage.url.startswith("postgresql+asyncpg://")


def test_domain_override_keeps_the_settings_of_a_host_the_file_has() -> None:
    config = parse(FULL, ConfigOverrides(domains=("EXAMPLE.com", "new.example")))
    kept, new = config.hosts
    assert kept.domain == "example.com" and kept.registration.enabled and kept.modules.enable == ("muc",)
    assert new.domain == "new.example" and not new.registration.enabled


def test_data_dir_override_moves_the_derived_paths() -> None:
    config = parse('data_dir = "from-file"', ConfigOverrides(data_dir=Path("from-cli")))
    assert config.storage.url == "sqlite+pysqlite:///from-cli/jaybird.sqlite3"
    assert config.certificate_for(config.hosts[0]).cert_file == Path("from-cli/certs/localhost.crt")


def test_http_port_override_enables_http() -> None:
    config = load_config(None, overrides=ConfigOverrides(http_port=8080))
    assert config.listeners.http.enabled and config.listeners.http.port == 8080


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (ConfigOverrides(c2s_port=70000), "command line: --c2s-port: expected a port number from 1 to 65535"),
        (ConfigOverrides(domains=("a@b",)), "command line: --domain: expected a domain, not the address 'a@b'"),
        (ConfigOverrides(domains=("a.example", "A.example")), "command line: --domain: duplicate host"),
        (ConfigOverrides(c2s_tls_port=5222), "command line: --c2s-tls-port: port 5222 is already used"),
    ],
)
def test_bad_overrides_name_the_option(overrides: ConfigOverrides, message: str) -> None:
    assert error_of("", overrides).startswith(message)


def test_a_file_error_is_not_blamed_on_the_command_line() -> None:
    message = error_of("listeners = 1", ConfigOverrides(c2s_port=1234))
    assert message == "config.toml: listeners: expected a table, got 1"


# --- module options ---------------------------------------------------------------------------------------

MAM = """
[modules.mam]
max_items = 50
default_policy = "roster"
store_groupchat = true
retention_days = 30.5
exclude = ["a@example.com", "b@example.com"]
"""


def test_module_options_typed_getters() -> None:
    options = parse(MAM).module_options("mam")
    assert options.get_int("max_items", 100, minimum=1) == 50
    assert options.get_str("default_policy", "never", choices=("always", "roster", "never")) == "roster"
    assert options.get_bool("store_groupchat", False) is True
    assert options.get_float("retention_days", 7, positive=True) == 30.5
    assert options.get_list("exclude", []) == ("a@example.com", "b@example.com")
    assert options.get_int("absent", 7) == 7 and options.get_list("none", ["x"]) == ("x",)
    assert options.unread == ()
    options.check_unread()


@pytest.mark.parametrize(
    ("read", "message"),
    [
        (
            lambda o: o.get_int("max_items", 1, minimum=0, maximum=10),
            "modules.mam.max_items: expected an integer from 0 to 10, got 50",
        ),
        (lambda o: o.get_int("max_items", 1, maximum=10), "modules.mam.max_items: expected at most 10, got 50"),
        (lambda o: o.get_int("default_policy", 1), 'modules.mam.default_policy: expected an integer, got "roster"'),
        (lambda o: o.get_str("max_items", ""), "modules.mam.max_items: expected a string, got 50"),
        (
            lambda o: o.get_str("default_policy", "", choices=("always", "never")),
            'modules.mam.default_policy: expected one of "always", "never", got "roster"',
        ),
        (lambda o: o.get_bool("max_items", False), "modules.mam.max_items: expected true or false, got 50"),
        (lambda o: o.get_float("default_policy", 1.0), 'modules.mam.default_policy: expected a number, got "roster"'),
        (lambda o: o.get_list("max_items", []), "modules.mam.max_items: expected an array, got 50"),
    ],
)
def test_module_option_errors_name_the_key(read: Callable[[ModuleOptions], object], message: str) -> None:
    options = parse(MAM).module_options("mam")
    with pytest.raises(ConfigError) as info:
        read(options)
    assert str(info.value).startswith(f"config.toml: {message}")


def test_list_option_items_are_checked() -> None:
    options = parse('[modules.muc]\nadmins = ["a@x", 3]').module_options("muc")
    with pytest.raises(ConfigError, match=re.escape("config.toml: modules.muc.admins[1]: expected a string, got 3")):
        options.get_list("admins", [])


def test_unread_module_options_are_unknown_keys() -> None:
    options = parse("[modules.mam]\nmax_itmes = 5\nmax_items = 1").module_options("mam")
    assert options.get_int("max_items", 100) == 1
    options.get_bool("store_groupchat", False)  # asked but absent: still a known key
    assert options.unread == ("max_itmes",)
    with pytest.raises(ConfigError) as info:
        options.check_unread()
    assert str(info.value) == "config.toml: modules.mam.max_itmes: unknown key (did you mean 'max_items'?)"


def test_a_module_without_options_rejects_any() -> None:
    options = parse("[modules.ping]\ninterval = 5").module_options("ping")
    with pytest.raises(ConfigError, match=r"modules\.ping\.interval: unknown key \(module \"ping\" takes no options\)"):
        options.check_unread()


def test_each_reader_starts_fresh_and_options_are_immutable() -> None:
    config = parse("[modules.mam]\nmax_items = 5\n[modules.mam.nested]\nx = [1]")
    first = config.module_options("mam")
    first.get_int("max_items", 1)
    assert config.module_options("mam").unread == ("max_items", "nested")
    with pytest.raises(TypeError):
        config.modules.options["mam"]["max_items"] = 6  # type: ignore[index]
    nested = config.modules.options["mam"]["nested"]
    assert isinstance(nested, Mapping) and nested["x"] == (1,)
    assert config.module_options("absent").unread == ()


def test_module_options_reader_on_a_plain_mapping() -> None:
    options = ModuleOptions("upload", {"max_bytes": -1}, source="test")
    with pytest.raises(ConfigError, match=re.escape("test: modules.upload.max_bytes: expected a positive integer")):
        options.get_int("max_bytes", 1024, minimum=1)


def test_module_names_are_checked_against_the_known_ones() -> None:
    known = {"disco", "roster", "mam", "muc"}
    config = parse('[modules]\nenabled = ["disco", "roster", "mma"]')
    with pytest.raises(ConfigError) as info:
        config.check_module_names(known)
    assert str(info.value) == "config.toml: modules.enabled[2]: unknown module \"mma\" (did you mean 'mam'?)"
    config = parse('[modules]\nenabled = ["disco"]\n[modules.mcu]\nx = 1')
    with pytest.raises(ConfigError, match=re.escape('config.toml: modules.mcu: unknown module "mcu"')):
        config.check_module_names(known)
    config = parse('[[hosts]]\ndomain = "a.example"\n[hosts.modules]\ndisable = ["rooster"]\n[modules]\nenabled = []')
    with pytest.raises(ConfigError, match=re.escape('hosts[0].modules.disable[0]: unknown module "rooster"')):
        config.check_module_names(known)
    parse(MAM + '[modules]\nenabled = ["mam"]').check_module_names(known)


# --- the example and the docs -----------------------------------------------------------------------------


def test_example_config_loads_back_to_the_default() -> None:
    assert parse(example_config()) == load_config(None)


def test_example_config_shows_every_key() -> None:
    example = example_config()
    for row in config_reference().splitlines()[2:]:
        key = row.split("`")[1]
        if "<name>" in key:
            continue
        leaf = key.rsplit(".", 1)[-1]
        assert re.search(
            rf"^(# )?({re.escape(leaf)} = |\[\[?{re.escape(key.replace('[]', ''))}\]\]?$)", example, re.M
        ), key


def test_uncommenting_the_optional_keys_still_loads() -> None:
    text = "\n".join(
        line[2:] if re.match(r"# (\w+ = |\[\[listeners\.components\]\]|\[\[s2s\.peers\]\])", line) else line
        for line in example_config().splitlines()
    )
    config = parse(text)
    assert config.listeners.components[0].domain == "gateway.localhost"
    assert config.tls.cert_file == Path("/etc/jaybird/fullchain.pem")
    assert config.storage.url == load_config(None).storage.url


def test_docs_hold_the_current_example_and_reference() -> None:
    docs = DOCS.read_text(encoding="utf-8")
    assert f"```toml\n{example_config()}```" in docs
    assert config_reference() in docs
