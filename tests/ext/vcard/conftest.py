"""The in-process server fixture of the server tests, for the wire tests here."""

from tests.server.conftest import start_server as start_server

__all__ = ["start_server"]
