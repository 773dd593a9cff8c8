"""A phone that loses its network for 5 s mid-consult and gets it back carries on in the same
seat with media both ways, without rejoining.

The client is an aiortc participant in a network namespace (`tests/netns.py`) reaching the
server's signaling and its media port over the namespace's link (UDP allowed here); the
therapist and the psychiatrist are on this side of the link. The link's route is removed for
5 s and put back; the client then does what the web page does on `online` (`netchange.js`):
asks for a new peer connection (`media-restart`) on its live socket.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterator
from dataclasses import asdict
from pathlib import Path
from typing import Any

import pytest

from tests import netns
from tests.media.linkedpeer import LinkedParticipant, PeerOptions
from tests.media.participantprocess import ParticipantProcess
from tests.media.triadserver import TriadServer
from tests.netns import Namespace
from tests.waiting import wait_for

# Small video: three encoders and decoders share two cores with the server.
SMALL = PeerOptions(width=160, height=120, fps=15)
FRAMES = 20
OUTAGE_SECONDS = 5.0  # the scenario's outage, not a wait for a condition
DEADLINE = 60.0


@pytest.fixture
def namespace() -> Iterator[Namespace]:
    netns.require()
    with Namespace.created(refuse_udp=False) as created:
        yield created


def video_from(decoded: list[list[Any]]) -> dict[str, int]:
    """A worker's `status` decoded counts ([sender, kind, n]) of video, by sender."""
    return {str(sender): int(n) for sender, kind, n in decoded if kind == "video"}


@pytest.mark.timeout(150)
async def test_a_link_cut_for_5_s_and_restored_keeps_the_seat_and_media_both_ways(
    tmp_path: Path, namespace: Namespace
) -> None:
    async with contextlib.AsyncExitStack() as stack:
        server = await stack.enter_async_context(
            TriadServer.running(
                tmp_path,
                host=namespace.outside,
                TRIAD_ICE_HOST_ADDRESSES=namespace.outside,
            )
        )
        consult = await server.new_consult()
        client = ParticipantProcess("client", tmp_path / "client.log", prefix=namespace.exec_prefix)
        stack.push_async_callback(client.close)
        await client.spawn()
        here = PeerOptions(
            width=SMALL.width, height=SMALL.height, fps=SMALL.fps, host_address=namespace.outside
        )
        clinicians = [
            LinkedParticipant(consult.seat(role), server.base_url, here)
            for role in ("therapist", "psychiatrist")
        ]
        for clinician in clinicians:
            stack.push_async_callback(clinician.close)
            await clinician.join()
        there = PeerOptions(
            width=SMALL.width, height=SMALL.height, fps=SMALL.fps, host_address=namespace.inside
        )
        joined = await client.join(
            {
                "seat": asdict(consult.seat("client")),
                "base_url": server.base_url,
                "peers": asdict(there),
                "link": None,
            }
        )
        client_id = joined["pid"]
        senders = {c.participant_id for c in clinicians}

        async def flowing(since_client: dict[str, int], since_clinicians: list[int]) -> bool:
            seen = video_from((await client.request("status"))["decoded"])
            if any(seen.get(s, 0) < since_client.get(s, 0) + FRAMES for s in senders):
                return False
            return all(
                c.recorder.total[(client_id, "video")] >= before + FRAMES
                for c, before in zip(clinicians, since_clinicians, strict=True)
            )

        await wait_for(lambda: flowing({}, [0, 0]), DEADLINE, "video both ways before the cut")
        before = await client.request("status")
        assert before["generation"] == 0

        namespace.cut()
        await asyncio.sleep(OUTAGE_SECONDS)
        namespace.restore()
        ack = await client.request("restart")  # the page's `online`
        assert ack["ack"]["ok"] is True, ack

        at_restore = video_from((await client.request("status"))["decoded"])
        clinicians_at_restore = [c.recorder.total[(client_id, "video")] for c in clinicians]

        async def new_connection() -> bool:
            return (await client.request("status"))["generation"] == 1

        await wait_for(new_connection, DEADLINE, "the client's new peer connection")
        await wait_for(
            lambda: flowing(at_restore, clinicians_at_restore),
            DEADLINE,
            "video both ways after the link came back",
        )
        after = await client.request("status")
        assert after["socket_up"] is True  # the same socket: no rejoin
        assert after["failures"] == []
        # The clinicians kept their peer connections; only the client's was replaced.
        assert [c.generation for c in clinicians] == [0, 0]
