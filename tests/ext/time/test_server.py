"""XEP-0202 on the server, and the XEP-0082 formats it uses."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest

from jaybird.ext.time.server import TimeModule
from jaybird.ext.time.wire import TIME, EntityTime, format_datetime, format_offset, parse_datetime, parse_offset
from jaybird.server.api import IqScope
from tests.ext.disco.harness import make_harness, unload


async def test_the_server_tells_utc_with_a_zero_offset_by_default() -> None:
    harness, modules = await make_harness([TimeModule])
    assert TIME in harness.host.features()
    before = datetime.now(UTC).replace(microsecond=0)
    result = await harness.ask(harness.get(EntityTime().to_element(), sender="a@example.com/r"), IqScope.HOST)
    after = datetime.now(UTC)
    assert result is not None
    answer = EntityTime.from_element(result)
    assert answer.tzo == timedelta(0)
    assert answer.utc is not None and before <= answer.utc <= after
    assert (result.find_text(f"{{{TIME}}}utc") or "").endswith("Z")
    await unload(modules)


async def test_local_offset_option_reports_the_machine_offset() -> None:
    harness, modules = await make_harness([TimeModule], options={"time": {"local_offset": True}})
    result = await harness.ask(harness.get(EntityTime().to_element(), sender="a@example.com/r"), IqScope.HOST)
    assert result is not None
    assert EntityTime.from_element(result).tzo == datetime.now(UTC).astimezone().utcoffset()
    await unload(modules)


def test_xep_0082_formats() -> None:
    """XEP-0082 §3.2 DateTime and TZD; XEP-0202 §3 example values."""
    moment = datetime(2006, 12, 19, 17, 58, 35, tzinfo=UTC)
    assert format_datetime(moment) == "2006-12-19T17:58:35Z"
    assert format_datetime(moment.replace(microsecond=123456)) == "2006-12-19T17:58:35.123Z"
    assert format_datetime(moment.astimezone(timezone(timedelta(hours=-6)))) == "2006-12-19T17:58:35Z"
    assert parse_datetime("2006-12-19T17:58:35Z") == moment
    assert parse_datetime("2006-12-19T11:58:35-06:00") == moment
    assert format_offset(timedelta(hours=-6)) == "-06:00"
    assert format_offset(timedelta(hours=5, minutes=30)) == "+05:30"
    assert parse_offset("-06:00") == timedelta(hours=-6)
    assert parse_offset("Z") == timedelta(0)
    with pytest.raises(ValueError):
        parse_datetime("2006-12-19T17:58:35")  # no time zone


def test_entity_time_local_clock() -> None:
    answer = EntityTime(datetime(2006, 12, 19, 17, 58, 35, tzinfo=UTC), timedelta(hours=-6))
    assert EntityTime.from_element(answer.to_element()) == answer
    assert answer.local == datetime(2006, 12, 19, 11, 58, 35, tzinfo=UTC)
