"""The event loop `triad serve` runs on: uvloop unless `TRIAD_EVENT_LOOP=asyncio`.

uvloop runs the packet path (aioice's datagrams, SRTP, RTP forwarding) in fewer microseconds
per packet than asyncio's selector loop; `asyncio` stays as the fallback an operator can pick
without a new build.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Literal

import uvloop

EventLoopName = Literal["uvloop", "asyncio"]
LoopFactory = Callable[[], asyncio.AbstractEventLoop]

_FACTORIES: dict[EventLoopName, LoopFactory] = {
    "uvloop": uvloop.new_event_loop,
    "asyncio": asyncio.new_event_loop,
}


def loop_factory(name: EventLoopName) -> LoopFactory:
    """A new-loop callable for `asyncio.Runner(loop_factory=...)`."""
    return _FACTORIES[name]


def running_loop_name() -> EventLoopName:
    """The loop this code runs on, as it is (not as the setting asked): for the startup log."""
    return "uvloop" if isinstance(asyncio.get_running_loop(), uvloop.Loop) else "asyncio"
