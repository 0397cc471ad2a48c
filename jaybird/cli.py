"""The ``jaybird`` command line.

Exit codes (scripts rely on them): 0 success; 1 a failure (network, peer, storage, configuration file, a failed
check); 2 a usage error (bad arguments or options).

Server commands (``serve``, ``user``, ``cert``, ``check``) read ``--config FILE`` (default: ``$JAYBIRD_CONFIG``,
else the built-in defaults) and ``--data-dir DIR``.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import sys
from collections.abc import Sequence

from jaybird import __version__
from jaybird.errors import JaybirdError
from jaybird.jid import JID, JIDError

EXIT_OK = 0
EXIT_FAILURE = 1
EXIT_USAGE = 2


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="jaybird", description="jaybird: XMPP server and tools.")
    parser.add_argument("--version", action="version", version=f"jaybird {__version__}")
    parser.add_argument("-v", "--verbose", action="count", default=0, help="more log output (-vv: XML console)")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")

    send = commands.add_parser(
        "send",
        help="send one chat message and exit",
        description="Log in, send a message to TO, and disconnect. Exit 0 once the server has taken it.",
    )
    send.add_argument("--jid", required=True, help="the account to log in as, e.g. juliet@example.com")
    send.add_argument("--password", help="the account's password (default: $JAYBIRD_PASSWORD)")
    send.add_argument("--server", metavar="HOST:PORT", help="connect here instead of looking up DNS SRV records")
    send.add_argument("--direct-tls", action="store_true", help="TLS from the first byte (XEP-0368), not STARTTLS")
    send.add_argument("--ca-file", help="trust the certificate authorities in this PEM file")
    send.add_argument("--insecure", action="store_true", help="do not verify the server's certificate")
    send.add_argument("--timeout", type=float, default=30.0, help="give up after this many seconds (default 30)")
    send.add_argument("to", metavar="TO", help="the recipient's JID")
    send.add_argument("text", metavar="TEXT", help="the message body")
    from jaybird.server.commands import add_server_commands

    add_server_commands(commands)
    return parser


def _split_server(value: str) -> tuple[str, int]:
    host, sep, port = value.rpartition(":")
    if not sep or not port.isdigit():
        raise ValueError(f"--server wants HOST:PORT, not {value!r}")
    return host.strip("[]"), int(port)


async def _send(args: argparse.Namespace, password: str) -> None:
    from jaybird.client import Client
    from jaybird.stanza import Message, MessageType

    host = port = None
    if args.server:
        host, port = _split_server(args.server)
    client = Client(
        JID(args.jid),
        password,
        host=host,
        port=port,
        direct_tls=args.direct_tls or None,
        ca_file=args.ca_file,
        verify=not args.insecure,
        reconnect=False,
    )
    async with asyncio.timeout(args.timeout), client:
        await client.send(Message.build(JID(args.to), args.text, type=MessageType.CHAT))
        # The stream close handshake flushes the message: the server has read it once it answers our close.


def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose > 1 else logging.INFO if args.verbose else logging.WARNING,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    if args.command is None:
        parser.print_help()
        return EXIT_USAGE
    if args.command == "send":
        password = args.password or os.environ.get("JAYBIRD_PASSWORD")
        if not password:
            print("jaybird send: no password: give --password or set JAYBIRD_PASSWORD", file=sys.stderr)
            return EXIT_USAGE
        try:
            JID(args.jid)
            JID(args.to)
            if args.server:
                _split_server(args.server)
        except (JIDError, ValueError) as exc:
            print(f"jaybird send: {exc}", file=sys.stderr)
            return EXIT_USAGE
        try:
            asyncio.run(_send(args, password))
        except TimeoutError:
            print(f"jaybird send: timed out after {args.timeout:g} s", file=sys.stderr)
            return EXIT_FAILURE
        except JaybirdError as exc:
            print(f"jaybird send: {type(exc).__name__}: {exc}", file=sys.stderr)
            return EXIT_FAILURE
        except OSError as exc:
            print(f"jaybird send: network error: {exc}", file=sys.stderr)
            return EXIT_FAILURE
        return EXIT_OK
    from jaybird.server.commands import run_server_command

    return run_server_command(args, parser)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
