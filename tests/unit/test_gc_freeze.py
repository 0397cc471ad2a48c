"""A serving process moves what exists after start-up out of the cyclic collector's reach (``gc.freeze``),
so full collections no longer walk it; objects made later are still collected."""

from __future__ import annotations

import gc
from collections.abc import Iterator

import pytest

from jaybird.server.app import freeze_startup_objects


@pytest.fixture
def unfrozen() -> Iterator[None]:
    gc.unfreeze()
    try:
        yield
    finally:
        gc.unfreeze()  # the rest of the suite runs with the collector as usual


@pytest.mark.usefixtures("unfrozen")
def test_startup_objects_are_frozen_and_later_cycles_still_collected() -> None:
    before = gc.get_freeze_count()
    freeze_startup_objects()
    assert gc.get_freeze_count() > before

    class Node:
        other: object = None

    a, b = Node(), Node()
    a.other, b.other = b, a  # a cycle made after the freeze
    del a, b
    assert gc.collect() >= 2  # found and freed: the collector still runs for new objects
