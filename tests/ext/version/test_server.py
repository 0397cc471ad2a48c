"""XEP-0092 on the server: name and version always, the OS only when configured (§5)."""

from __future__ import annotations

import platform

from jaybird import __version__, ns
from jaybird.ext.version.server import VersionModule
from jaybird.ext.version.wire import SoftwareVersion
from jaybird.server.api import IqScope
from tests.ext.disco.harness import make_harness, unload


async def test_name_and_version_without_os_by_default() -> None:
    harness, modules = await make_harness([VersionModule])
    assert ns.VERSION in harness.host.features()
    result = await harness.ask(harness.get(SoftwareVersion().to_element(), sender="a@example.com/r"), IqScope.HOST)
    assert result is not None
    assert SoftwareVersion.from_element(result) == SoftwareVersion("jaybird", __version__, None)
    await unload(modules)


async def test_os_when_show_os_is_set() -> None:
    harness, modules = await make_harness([VersionModule], options={"version": {"show_os": True}})
    result = await harness.ask(harness.get(SoftwareVersion().to_element(), sender="a@example.com/r"), IqScope.HOST)
    assert result is not None
    answer = SoftwareVersion.from_element(result)
    assert answer.os is not None and answer.os.startswith(platform.system())
    await unload(modules)


def test_wire_round_trip_and_empty_request() -> None:
    value = SoftwareVersion("jaybird", "1.0", "Linux")
    assert SoftwareVersion.from_element(value.to_element()) == value
    assert SoftwareVersion().to_element().children == []
