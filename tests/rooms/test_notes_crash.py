"""An acknowledged notes edit is never lost: the server process is killed with SIGKILL right
after the acknowledgements, restarted on the same database, and every acknowledged update is
there; a participant resyncing by state vector gets nothing twice."""

from __future__ import annotations

import asyncio
import os
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import aiohttp
import pycrdt

from server.app import utc_now
from server.auth.roles import REQUIRED_ROLES, Role
from server.consults.model import Actor, ConsultSpec, ParticipantSpec, PlatformCaller
from server.crypto import KeyRing
from server.ids import ParticipantId
from server.services import open_services
from tests.conftest import TEST_KEY, make_settings
from tests.ports import free_port
from tests.roomclient import RoomClient
from tests.rooms.notesclient import NotesClient, insert

DEADLINE = 30.0


async def new_consult(tmp_path: Path, database_url: str) -> dict[Role, str]:
    """A platform and a consult written straight to the database; returns a token per role."""
    settings = make_settings(tmp_path, database_url)
    async with open_services(settings, KeyRing.parse(TEST_KEY), utc_now) as services:
        key = await services.keys.create("Crash Clinic", Actor("operator", "test"))
        caller = PlatformCaller(key.platform_id, key.key_id, key.secret)
        spec = ConsultSpec(
            participants=tuple(ParticipantSpec(r, f"{r} person") for r in REQUIRED_ROLES)
        )
        created = await services.consults.create(caller, spec)
    by_role = {p.id: p.role for p in created.consult.participants}
    return {by_role[ParticipantId(pid)]: t.token for pid, t in created.tokens.items()}


@asynccontextmanager
async def server_process(
    tmp_path: Path, database_url: str
) -> AsyncIterator[tuple[str, asyncio.subprocess.Process]]:
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    env = {k: v for k, v in os.environ.items() if not k.startswith("TRIAD_")}
    env.update(
        TRIAD_DATABASE_URL=database_url,
        TRIAD_ENCRYPTION_KEYS=TEST_KEY,
        TRIAD_DATA_DIR=str(tmp_path / "var"),
        TRIAD_HOST="127.0.0.1",
        TRIAD_PORT=str(port),
        TRIAD_PUBLIC_BASE_URL=base,
        TRIAD_ICE_HOST_ADDRESSES="127.0.0.1",
    )
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "server",
        "serve",
        env=env,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.DEVNULL,
    )
    try:
        async with asyncio.timeout(DEADLINE), aiohttp.ClientSession() as http:
            while True:
                try:
                    async with http.get(f"{base}/healthz") as answer:
                        if answer.status == 200:
                            break
                except aiohttp.ClientConnectionError:
                    pass
                await asyncio.sleep(0.1)
        yield base, process
    finally:
        if process.returncode is None:
            process.kill()
        await process.wait()


async def joined(base: str, token: str) -> RoomClient:
    room = RoomClient(base, token)
    await room.connect()
    await room.join()
    return room


async def test_acknowledged_updates_survive_a_kill_9(tmp_path: Path, database_url: str) -> None:
    tokens = await new_consult(tmp_path, database_url)
    typed: list[str] = [f"[line {i}: sertraline 50 mg review]" for i in range(40)]
    local_plan: pycrdt.Doc[object] | None = None

    async with server_process(tmp_path, database_url) as (base, process):
        therapist = await joined(base, tokens[Role.THERAPIST])
        notes = NotesClient(therapist)
        assert (await notes.sync("plan"))["ok"]
        for line in typed:
            ack = await notes.edit(
                "plan", insert("summary", len(notes.text("plan", "summary")), line)
            )
            assert ack["ok"], ack
        assert (await notes.edit("clinicians", insert("notes", 0, "private")))["ok"]
        local_plan = notes.doc("plan")
        # SIGKILL the moment the last acknowledgement is in: no shutdown, no flush.
        process.kill()
        await process.wait()
        await therapist.close()

    assert local_plan is not None
    expected = "".join(typed)
    async with server_process(tmp_path, database_url) as (base, _process):
        psychiatrist = await joined(base, tokens[Role.PSYCHIATRIST])
        fresh = NotesClient(psychiatrist)
        assert (await fresh.sync("plan"))["ok"]
        assert fresh.text("plan", "summary") == expected
        assert (await fresh.sync("clinicians"))["ok"]
        assert fresh.text("clinicians", "notes") == "private"

        # The therapist comes back with their own copy: the resync duplicates nothing.
        therapist = await joined(base, tokens[Role.THERAPIST])
        returning = NotesClient(therapist)
        returning.docs["plan"] = local_plan
        ack = await returning.sync("plan")
        assert ack["ok"]
        assert returning.text("plan", "summary") == expected
        assert ack["state_vector"] == local_plan.get_state()
        await psychiatrist.close()
        await therapist.close()
