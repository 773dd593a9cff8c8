"""close(): every peer connection closed, nothing left running, and safe to repeat."""

from __future__ import annotations

import asyncio
import threading
from concurrent.futures import ThreadPoolExecutor

import pytest

from server.ids import ParticipantId
from server.rooms.media import MediaConfig, Sfu
from tests.media.peers import LoopbackRoom
from tests.waiting import wait_for

PEERS = [ParticipantId(f"p_{n}") for n in "abc"]


async def test_close_leaves_no_task_or_thread_behind() -> None:
    loop = asyncio.get_running_loop()
    # The client peers encode in the loop's default executor; give them one we can shut down,
    # so its worker threads do not count as leftovers of the SFU.
    executor = ThreadPoolExecutor(thread_name_prefix="client-encoders")
    loop.set_default_executor(executor)
    tasks_before = asyncio.all_tasks()
    threads_before = set(threading.enumerate())

    room = LoopbackRoom()
    room.sfu = sfu = Sfu(MediaConfig(host_addresses=("127.0.0.1",)), room.active_speaker_changed)
    for pid in PEERS:
        await room.join(pid)
    clients = list(room.clients.values())
    await wait_for(
        lambda: all(c.decoded(o) >= 5 for c in clients for o in PEERS if o != c.participant_id),
        40,
        "frames everywhere",
    )
    server_pcs = [session.peer.pc for session in sfu._sessions.values()]

    await asyncio.gather(sfu.close(), sfu.close())
    await sfu.close()
    assert all(pc.connectionState == "closed" for pc in server_pcs)
    assert sfu.participants == ()
    assert sfu.stats().peers == 0
    await sfu.remove(PEERS[0])  # unknown now: a no-op
    with pytest.raises(RuntimeError):
        await sfu.add(PEERS[0], room.connection(PEERS[0]))

    for client in clients:
        await client.close()
    executor.shutdown(wait=True)
    current = asyncio.current_task()

    def nothing_left() -> bool:
        tasks = {t for t in asyncio.all_tasks() if t is not current and not t.done()}
        return tasks <= tasks_before and set(threading.enumerate()) <= threads_before

    try:
        await wait_for(nothing_left, 20, "tasks and threads to finish")
    except AssertionError:
        left = asyncio.all_tasks() - tasks_before - {current}
        threads = set(threading.enumerate()) - threads_before
        raise AssertionError(f"left behind: {left} {threads}") from None
    assert not room.failures
