"""Waiting in tests: poll a condition until it holds or a deadline passes, never a fixed sleep.
For state that raises no event (a server-side object, a database row, frames counted by a peer);
where an event exists, wait on it instead (`RoomClient.wait_event`)."""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import io
from collections.abc import AsyncIterator, Awaitable, Callable

POLL_SECONDS = 0.02


async def wait_for(
    predicate: Callable[[], bool | Awaitable[bool]],
    deadline: float = 30.0,
    what: str = "a condition",
    state: Callable[[], str] | None = None,
) -> None:
    """Return once `predicate()` (sync or async) is true; fail after `deadline` seconds, saying
    what `state()` reads then (which part of the condition was false)."""
    loop = asyncio.get_running_loop()
    end = loop.time() + deadline
    while True:
        held = predicate()
        if inspect.isawaitable(held):
            held = await held
        if held:
            return
        if loop.time() > end:
            found = f":\n{state()}" if state is not None else ""
            raise AssertionError(f"timed out after {deadline}s waiting for {what}{found}")
        await asyncio.sleep(POLL_SECONDS)


@contextlib.asynccontextmanager
async def within(seconds: float, what: str) -> AsyncIterator[None]:
    """Fail after `seconds` with every asyncio task's stack in the message: a hang inside the
    test's loop (a lock, a query, a close) says where, which pytest-timeout's main-thread
    stack (the loop's selector) cannot."""
    try:
        async with asyncio.timeout(seconds):
            yield
    except TimeoutError:
        stacks = io.StringIO()
        for task in asyncio.all_tasks():
            task.print_stack(limit=12, file=stacks)
        message = f"{what} took over {seconds}s; the tasks:\n{stacks.getvalue()}"
        raise AssertionError(message) from None
