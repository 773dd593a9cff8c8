"""The event loops media tests may run on."""

from __future__ import annotations

from typing import get_args

import pytest

from server.eventloop import EventLoopName, LoopFactory, loop_factory

# The factories `triad serve` uses, by their TRIAD_EVENT_LOOP names.
EVENT_LOOPS: dict[str, LoopFactory] = {name: loop_factory(name) for name in get_args(EventLoopName)}


def pytest_asyncio_loop_factories(
    config: pytest.Config, item: pytest.Item
) -> dict[str, LoopFactory]:
    """A test that names loops (`pytest.mark.asyncio(loop_factories=["uvloop"])`) runs on each
    of them; the others on asyncio's own loop only. pytest-asyncio runs an unmarked test on
    every loop offered here, which would double the slowest test directory."""
    marker = item.get_closest_marker("asyncio")
    if marker is not None and "loop_factories" in marker.kwargs:
        return EVENT_LOOPS
    return {"asyncio": EVENT_LOOPS["asyncio"]}
