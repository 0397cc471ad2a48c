"""The in-process server fixture of the server tests, for this module's wire tests."""

from tests.server.conftest import start_server as start_server
