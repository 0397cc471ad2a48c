"""The server's command-line commands: ``serve``, ``user add|passwd|del|list``, ``cert``, ``check``.

:mod:`jaybird.cli` owns the top-level parser; this module adds the server's subcommands to it and runs them.
Each prints one clear line per error on stderr and returns the exit code (0 ok, 1 failure, 2 usage).
"""

from __future__ import annotations

import argparse
import asyncio
import getpass
import logging
import os
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, Final, TypeVar

from jaybird.errors import ConfigError
from jaybird.jid import JID, JIDError
from jaybird.server.config import CLI_SOURCE, ConfigOverrides, ServerConfig, load_config

__all__ = ["add_server_commands", "run_server_command"]

EXIT_OK: Final = 0
EXIT_FAILURE: Final = 1
EXIT_USAGE: Final = 2
CONFIG_ENV: Final = "JAYBIRD_CONFIG"

T = TypeVar("T")


class CommandError(Exception):
    """A failure to report in one line, with its exit code."""

    def __init__(self, message: str, code: int = EXIT_FAILURE) -> None:
        super().__init__(message)
        self.code = code


def _common() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--config", type=Path, metavar="FILE", help=f"configuration file (default: ${CONFIG_ENV}, else built-in)"
    )
    common.add_argument("--data-dir", type=Path, metavar="DIR", help="where the server keeps its state")
    return common


def add_server_commands(commands: Any) -> None:
    common = _common()
    serve = commands.add_parser(
        "serve",
        parents=[common],
        help="run the XMPP server",
        description="Run the server until SIGTERM or SIGINT. With no configuration at all it serves 'localhost' "
        "on ports 5222 (STARTTLS) and 5223 (direct TLS), with a self-signed certificate and SQLite in the data "
        "directory.",
    )
    serve.add_argument("--domain", action="append", metavar="D", help="serve this domain (repeatable)")
    serve.add_argument("--c2s-port", type=int, metavar="N", help="client port, STARTTLS")
    serve.add_argument("--c2s-tls-port", type=int, metavar="N", help="client port, direct TLS")
    serve.add_argument("--http-port", type=int, metavar="N", help="HTTP port (enables the HTTP listener)")
    serve.add_argument("--workers", type=int, metavar="N", help="worker processes sharing the ports (default 1)")
    # How a supervisor starts its workers (jaybird.server.workers.process); not for people.
    serve.add_argument("--worker-index", type=int, help=argparse.SUPPRESS)
    serve.add_argument("--worker-dir", type=Path, help=argparse.SUPPRESS)
    serve.add_argument("--worker-fds", help=argparse.SUPPRESS)

    user = commands.add_parser("user", help="manage accounts", description="Add, change, delete or list accounts.")
    actions = user.add_subparsers(dest="action", metavar="ACTION", required=True)
    for name, text in (("add", "create an account"), ("passwd", "set an account's password")):
        action = actions.add_parser(
            name,
            parents=[common],
            help=text,
            description=f"{text[0].upper()}{text[1:]}. Without --password: asked twice on a terminal, else one "
            "line is read from standard input.",
        )
        action.add_argument("jid", metavar="JID", help="the account, user@domain")
        action.add_argument("--password", help="the password (visible to other local users: prefer the prompt)")
    delete = actions.add_parser("del", parents=[common], help="delete an account", description="Delete an account.")
    delete.add_argument("jid", metavar="JID", help="the account, user@domain")
    listing = actions.add_parser(
        "list", parents=[common], help="list accounts", description="List the accounts of DOMAIN (default: all hosts)."
    )
    listing.add_argument("domain", metavar="DOMAIN", nargs="?", help="one of the server's domains")

    cert = commands.add_parser(
        "cert",
        parents=[common],
        help="generate a self-signed certificate",
        description="Generate (or replace) the self-signed certificate of DOMAIN in <data_dir>/certs/.",
    )
    cert.add_argument("domain", metavar="DOMAIN")

    commands.add_parser(
        "check",
        parents=[common],
        help="check the configuration, certificates, ports and DNS",
        description="Check the configuration, each host's certificate, that the ports can be bound and the DNS "
        "SRV records. One line per check (ok / warn / fail); exit 1 when any check fails.",
    )


def _config(args: argparse.Namespace) -> ServerConfig:
    path = args.config
    if path is None and os.environ.get(CONFIG_ENV):
        path = Path(os.environ[CONFIG_ENV])
    overrides = ConfigOverrides(
        data_dir=args.data_dir,
        domains=tuple(getattr(args, "domain_list", None) or ()),
        c2s_port=getattr(args, "c2s_port", None),
        c2s_tls_port=getattr(args, "c2s_tls_port", None),
        http_port=getattr(args, "http_port", None),
        workers=getattr(args, "workers", None),
    )
    try:
        return load_config(path, overrides=overrides)
    except ConfigError as exc:
        raise CommandError(str(exc), EXIT_USAGE if exc.source == CLI_SOURCE else EXIT_FAILURE) from None


def run_server_command(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    name = args.command if args.command != "user" else f"user {args.action}"
    if args.command == "serve":
        args.domain_list = args.domain
    handlers: dict[str, Callable[[argparse.Namespace], int]] = {
        "serve": _serve,
        "user add": _user_add,
        "user passwd": _user_passwd,
        "user del": _user_del,
        "user list": _user_list,
        "cert": _cert,
        "check": _check,
    }
    handler = handlers.get(name)
    if handler is None:  # pragma: no cover - argparse rejects unknown commands first
        parser.error(f"unknown command {name}")
    try:
        return handler(args)
    except CommandError as exc:
        print(f"jaybird {name}: {exc}", file=sys.stderr)
        return exc.code
    except KeyboardInterrupt:
        print(f"jaybird {name}: interrupted", file=sys.stderr)
        return EXIT_FAILURE


# -- serve ------------------------------------------------------------------------------------------------------


def _serve(args: argparse.Namespace) -> int:
    from jaybird.server.app import Server, run_server
    from jaybird.server.logging import configure_logging

    config = _config(args)
    configure_logging(config.logging, verbose=args.verbose)
    if args.worker_index is not None:
        return _serve_as_worker(args, config)

    def banner(server: Server | None = None) -> None:
        domain = config.hosts[0].domain
        c2s = config.listeners.c2s
        where = f"--config {args.config} " if args.config else ""
        where += f"--data-dir {config.data_dir} " if args.data_dir else ""
        processes = f" with {config.workers} worker processes" if config.workers > 1 else ""
        print(
            f"jaybird is serving {', '.join(h.domain for h in config.hosts)} on port {c2s.port} (STARTTLS) and "
            f"{c2s.tls_port} (direct TLS){processes}.\n"
            f"  add a user:  jaybird user add {where}alice@{domain}\n"
            f"  connect:     any XMPP client as alice@{domain}, server 127.0.0.1 port {c2s.port}"
            + (
                " (self-signed certificate: accept it once)"
                if config.certificate_for(config.hosts[0]).self_signed
                else ""
            )
            + "\n  stop:        Ctrl-C or SIGTERM",
            flush=True,
        )

    if config.workers > 1:
        return _supervise(args, config, banner)
    try:
        asyncio.run(run_server(config, on_started=banner))
    except ConfigError as exc:
        raise CommandError(str(exc)) from None
    except OSError as exc:
        raise CommandError(str(exc)) from None
    return EXIT_OK


def _supervise(args: argparse.Namespace, config: ServerConfig, banner: Callable[[], None]) -> int:
    from jaybird.server.storage import StorageError
    from jaybird.server.workers.process import WorkerPipes, run_supervisor

    def command(index: int, directory: Path, pipes: WorkerPipes) -> list[str]:
        # The workers read the same configuration the same way: the options given here, the same environment.
        argv = [sys.executable, "-m", "jaybird.cli", *["-v"] * args.verbose, "serve"]
        for option, value in (("--config", args.config), ("--data-dir", args.data_dir)):
            if value is not None:
                argv += [option, str(value)]
        for domain in args.domain or ():
            argv += ["--domain", domain]
        for option, number in (
            ("--c2s-port", args.c2s_port),
            ("--c2s-tls-port", args.c2s_tls_port),
            ("--http-port", args.http_port),
            ("--workers", config.workers),
        ):
            if number is not None:
                argv += [option, str(number)]
        return [*argv, "--worker-index", str(index), "--worker-dir", str(directory), "--worker-fds", str(pipes)]

    logging.getLogger("alembic").setLevel(logging.WARNING)
    try:
        code = asyncio.run(run_supervisor(config, command, on_ready=banner))
    except (ConfigError, StorageError) as exc:
        raise CommandError(str(exc)) from None
    except OSError as exc:
        raise CommandError(str(exc)) from None
    return EXIT_OK if code == 0 else EXIT_FAILURE


def _serve_as_worker(args: argparse.Namespace, config: ServerConfig) -> int:
    from jaybird.server.workers.process import WorkerPipes, prefix_worker_logs, run_worker

    if args.worker_dir is None or args.worker_fds is None or config.workers < 2:
        raise CommandError("--worker-index is for worker processes a supervisor starts", EXIT_USAGE)
    prefix_worker_logs(args.worker_index)
    try:
        code = asyncio.run(run_worker(config, args.worker_index, args.worker_dir, WorkerPipes.parse(args.worker_fds)))
    except ConfigError as exc:
        raise CommandError(str(exc)) from None
    except OSError as exc:
        raise CommandError(str(exc)) from None
    return EXIT_OK if code == 0 else EXIT_FAILURE


# -- user -------------------------------------------------------------------------------------------------------


def _account(args: argparse.Namespace, config: ServerConfig) -> JID:
    try:
        jid = JID(args.jid)
    except JIDError as exc:
        raise CommandError(f"not a valid address: {exc}", EXIT_USAGE) from None
    if jid.local is None or jid.resource is not None:
        raise CommandError(f"expected an account address user@domain, not {args.jid!r}", EXIT_USAGE)
    domains = [host.domain for host in config.hosts]
    if jid.domain not in domains:
        raise CommandError(f"{jid.domain} is not a host of this server (hosts: {', '.join(domains)})")
    return jid


def _password(args: argparse.Namespace) -> str:
    if args.password is not None:
        password: str = args.password
    elif sys.stdin.isatty():
        password = getpass.getpass("Password: ")
        if getpass.getpass("Password again: ") != password:
            raise CommandError("the passwords do not match")
    else:
        password = sys.stdin.readline().rstrip("\r\n")
    if not password:
        raise CommandError("the password is empty", EXIT_USAGE)
    return password


def _with_storage(config: ServerConfig, job: Callable[[Any], Awaitable[T]]) -> T:
    from jaybird.server.storage import StorageError, open_storage

    async def run() -> T:
        config.data_dir.mkdir(parents=True, exist_ok=True)
        storage = await open_storage(config.storage.url)
        try:
            return await job(storage)
        finally:
            await storage.close()

    # Storage errors are one line; logging from the libraries below would only repeat them.
    logging.getLogger("alembic").setLevel(logging.WARNING)
    try:
        return asyncio.run(run())
    except StorageError as exc:
        raise CommandError(str(exc)) from None
    except ValueError as exc:  # a password PRECIS refuses
        raise CommandError(str(exc)) from None
    except OSError as exc:
        raise CommandError(f"storage: {exc}") from None


def _user_add(args: argparse.Namespace) -> int:
    from jaybird.server.auth import add_user

    config = _config(args)
    jid = _account(args, config)
    password = _password(args)
    _with_storage(config, lambda storage: add_user(storage, jid, password, iterations=config.auth.scram_iterations))
    print(f"created {jid}")
    return EXIT_OK


def _user_passwd(args: argparse.Namespace) -> int:
    from jaybird.server.auth import change_password

    config = _config(args)
    jid = _account(args, config)
    password = _password(args)
    iterations = config.auth.scram_iterations
    _with_storage(config, lambda storage: change_password(storage, jid, password, iterations=iterations))
    print(f"changed the password of {jid}")
    return EXIT_OK


def _user_del(args: argparse.Namespace) -> int:
    from jaybird.server.auth import delete_user

    config = _config(args)
    jid = _account(args, config)
    _with_storage(config, lambda storage: delete_user(storage, jid))
    print(f"deleted {jid}")
    return EXIT_OK


def _user_list(args: argparse.Namespace) -> int:
    from jaybird.server.auth import list_users

    config = _config(args)
    domains = [host.domain for host in config.hosts]
    if args.domain is not None:
        try:
            wanted = JID(args.domain).domain
        except JIDError as exc:
            raise CommandError(f"not a valid domain: {exc}", EXIT_USAGE) from None
        if wanted not in domains:
            raise CommandError(f"{wanted} is not a host of this server (hosts: {', '.join(domains)})")
        domains = [wanted]

    async def job(storage: Any) -> list[str]:
        found: list[str] = []
        for domain in domains:
            found += await list_users(storage, domain)
        return found

    for jid in _with_storage(config, job):
        print(jid)
    return EXIT_OK


# -- cert, check ------------------------------------------------------------------------------------------------


def _cert(args: argparse.Namespace) -> int:
    from jaybird.server.certs import generate_self_signed

    config = _config(args)
    try:
        domain = JID(args.domain).domain
    except JIDError as exc:
        raise CommandError(f"not a valid domain: {exc}", EXIT_USAGE) from None
    host = next((h for h in config.hosts if h.domain == domain), None)
    if host is None:
        hosts = ", ".join(h.domain for h in config.hosts)
        raise CommandError(f"{domain} is not a host of this server (hosts: {hosts})")
    paths = config.certificate_for(host)
    if not paths.self_signed:
        raise CommandError(f"{domain} uses the configured certificate {paths.cert_file}; not replacing it")
    try:
        generate_self_signed(domain, paths.cert_file, paths.key_file)
    except OSError as exc:
        raise CommandError(f"cannot write the certificate: {exc}") from None
    print(f"wrote {paths.cert_file} and {paths.key_file}")
    return EXIT_OK


def _check(args: argparse.Namespace) -> int:
    from jaybird.server.check import State, run_checks

    try:
        config = _config(args)
    except CommandError as exc:
        print(f"fail config: {exc}")
        return EXIT_FAILURE
    failed = False
    for check in run_checks(config):
        print(check, flush=True)
        failed = failed or check.state is State.FAIL
    return EXIT_FAILURE if failed else EXIT_OK
