"""The web client tests start the jaybird server in-process with the same factory as tests/server."""

from tests.server.conftest import start_server

__all__ = ["start_server"]
