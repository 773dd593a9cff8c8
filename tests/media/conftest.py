"""The event loops media tests may run on, and the two-peer room many of them start from."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import get_args

import pytest

from server.eventloop import EventLoopName, LoopFactory, loop_factory
from server.rooms.media import MediaConfig, Sfu
from tests.media.pair import A, B, still_flowing
from tests.media.peers import LoopbackRoom

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


@pytest.fixture
async def room() -> AsyncIterator[LoopbackRoom]:
    """A and B joined to a loopback SFU, each decoding the other's video and audio; on the way
    out, the room closed and no offer or answer failed on the way."""
    harness = LoopbackRoom()
    harness.sfu = Sfu(MediaConfig(host_addresses=("127.0.0.1",)), harness.active_speaker_changed)
    for pid in (A, B):
        await harness.join(pid)
    await still_flowing(harness)
    yield harness
    await harness.sfu.close()
    for client in harness.clients.values():
        await client.close()
    assert not harness.failures
