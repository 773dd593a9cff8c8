"""`triad keys rotate`: a consult's every sealed value (names, presence, consent, brief,
check-ins, audit details, notes log and snapshots, the plan) sealed under key A; the ring
becomes B,A; a rotation is killed halfway and run again; then every value opens with B alone
and none is under A. On SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import base64
import re
import secrets
import signal
import sys
from pathlib import Path

import pytest
from sqlalchemy import select

from server.crypto import KeyRing, sealed_kid
from server.db.engine import Database
from server.ids import ConsultId
from server.ops.sealed import SEALED_COLUMNS
from server.services import Services
from tests.apiclient import Api
from tests.conftest import TEST_KEY, PlatformKey, consult_body
from tests.rooms.conftest import People
from tests.rooms.notesclient import NotesClient, append_text, insert
from tests.test_cli import DEADLINE, triad, triad_env
from tests.waiting import wait_for

KEY_B = "k2:" + base64.b64encode(secrets.token_bytes(32)).decode()
KID_A, KID_B = TEST_KEY.split(":")[0], "k2"
PHQ9 = [1, 1, 1, 1, 0, 0, 0, 0, 1]
BRIEF = {"seen_in_therapy": "Early waking.", "question": "SSRI?", "medications": "", "risks": ""}

pytestmark = pytest.mark.room_settings(notes_snapshot_every=10)


async def a_whole_consult(people: People, api: Api, platform: PlatformKey) -> None:
    """Every kind of sealed value, written through the API and the sockets, then ended."""
    base = f"/api/v1/consults/{people.consult['id']}"
    therapist, psychiatrist, _client = await people.all_in_room()
    declared = await api.call(
        "PUT",
        base + "/session/present-with",
        bearer=people.token("therapist"),
        json_body={"participant_ids": [people.id("client")]},
    )
    assert declared.status == 200, declared.body
    brief = await api.call(
        "PUT", base + "/session/brief", bearer=people.token("therapist"), json_body=BRIEF
    )
    assert brief.status == 200, brief.body
    measure = await api.call(
        "POST",
        base + "/session/measures",
        bearer=people.token("client"),
        json_body={"instrument": "phq9", "answers": PHQ9},
    )
    assert measure.status == 201, measure.body
    t, p = NotesClient(therapist), NotesClient(psychiatrist)
    for doc in ("plan", "clinicians"):
        assert (await t.sync(doc))["ok"]
    for i in range(12):  # past TRIAD_NOTES_SNAPSHOT_EVERY: a snapshot and log rows after it
        assert (await t.edit("plan", append_text("summary", f"[{i}]")))["ok"]
    assert (await t.edit("clinicians", insert("notes", 0, "private")))["ok"]
    assert (await p.sync("plan"))["ok"]
    ended = await api.call("POST", base + "/end", bearer=platform.secret)
    assert ended.status == 200, ended.body


async def a_live_consult(people: People) -> None:
    """Notes typed into a consult that goes on: its log rows stay (an end compacts them)."""
    therapist, _psychiatrist, _client = await people.all_in_room()
    t = NotesClient(therapist)
    assert (await t.sync("plan"))["ok"]
    for i in range(3):
        assert (await t.edit("plan", append_text("summary", f"({i})")))["ok"]


async def under_each_key(database_url: str) -> dict[str, dict[str | None, int]]:
    """Per column: values per key id, read from the bytes (no ring needed)."""
    db = Database(database_url)
    found: dict[str, dict[str | None, int]] = {}
    try:
        async with db.engine.connect() as conn:
            for column in SEALED_COLUMNS:
                sql_column = column.sql_table.c[column.column]
                values = (await conn.execute(select(sql_column))).scalars()
                counts = found.setdefault(column.name, {})
                for value in values:
                    if value is not None:
                        kid = sealed_kid(bytes(value))
                        counts[kid] = counts.get(kid, 0) + 1
    finally:
        await db.close()
    return found


async def every_value_opens(database_url: str, ring: KeyRing) -> int:
    db = Database(database_url)
    opened = 0
    try:
        async with db.engine.connect() as conn:
            for column in SEALED_COLUMNS:
                table = column.sql_table
                rows = (await conn.execute(select(table))).all()
                for row in rows:
                    value = row._mapping[table.c[column.column]]
                    if value is not None:
                        ring.open(bytes(value), column.aad_for(row))
                        opened += 1
    finally:
        await db.close()
    return opened


async def kill_halfway(tmp_path: Path, database_url: str) -> None:
    """A rotation one value per batch, killed (SIGKILL) after its third batch committed."""
    proc = await asyncio.create_subprocess_exec(
        *[sys.executable, "-m", "server", "keys", "rotate", "--batch-size", "1"],
        "--pause",
        "0.2",
        env=triad_env(
            tmp_path,
            TRIAD_DATABASE_URL=database_url,
            TRIAD_ENCRYPTION_KEYS=f"{KEY_B},{TEST_KEY}",
        ),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.DEVNULL,
        start_new_session=True,
    )
    assert proc.stdout is not None
    try:
        for _ in range(3):
            line = await asyncio.wait_for(proc.stdout.readline(), DEADLINE)
            assert b"batch" in line, line
    finally:
        proc.send_signal(signal.SIGKILL)
        await proc.wait()
    assert proc.returncode == -signal.SIGKILL


async def test_a_rotation_killed_halfway_and_run_again_leaves_nothing_under_the_old_key(
    people: People,
    api: Api,
    platform: PlatformKey,
    services: Services,
    database_url: str,
    tmp_path: Path,
) -> None:
    # A webhook endpoint whose secret was rotated (its current and previous secrets sealed),
    # registered before the consult so its events are sealed in the outbox too.
    hook = await api.call(
        "POST",
        "/api/v1/webhook-endpoints",
        bearer=platform.secret,
        json_body={"url": "https://hooks.example.com/triad", "event_types": ["consult.ended"]},
    )
    assert hook.status == 201, hook.body
    rotated = await api.call(
        "POST",
        f"/api/v1/webhook-endpoints/{hook.body['endpoint']['id']}/secret",
        bearer=platform.secret,
        json_body={"overlap_seconds": 3600},
    )
    assert rotated.status == 200, rotated.body
    await a_whole_consult(people, api, platform)
    created = await api.call(
        "POST", "/api/v1/consults", bearer=platform.secret, json_body=consult_body()
    )
    assert created.status == 201, created.body
    live = People(people.base_url, created.body, api)
    try:
        await a_live_consult(live)
    finally:
        await live.close()

    async def plan_saved() -> bool:
        return await services.notes.plan(ConsultId(people.consult["id"])) is not None

    await wait_for(plan_saved, what="the plan saved")
    before = await under_each_key(database_url)
    assert all(set(counts) <= {KID_A} for counts in before.values()), before
    assert [c.name for c in SEALED_COLUMNS if not before[c.name]] == []  # every column has values
    total = sum(sum(c.values()) for c in before.values())

    await kill_halfway(tmp_path, database_url)
    halfway = await under_each_key(database_url)
    moved = sum(c.get(KID_B, 0) for c in halfway.values())
    assert 3 <= moved < total, halfway  # whole batches committed, the rest still under A
    status = triad(
        tmp_path,
        "keys",
        "status",
        TRIAD_DATABASE_URL=database_url,
        TRIAD_ENCRYPTION_KEYS=f"{KEY_B},{TEST_KEY}",
    )
    assert status.returncode == 1, status.stdout + status.stderr
    assert f"{total - moved} values are not under {KID_B}" in status.stdout

    rerun = triad(
        tmp_path,
        "keys",
        "rotate",
        TRIAD_DATABASE_URL=database_url,
        TRIAD_ENCRYPTION_KEYS=f"{KEY_B},{TEST_KEY}",
    )
    assert rerun.returncode == 0, rerun.stdout + rerun.stderr
    assert f"re-sealed {total - moved} values under {KID_B}" in rerun.stdout
    assert f"every sealed value is under {KID_B}" in rerun.stdout
    assert f"{KID_A}=0" in rerun.stdout

    after = await under_each_key(database_url)
    assert all(set(counts) == {KID_B} for counts in after.values()), after
    assert await every_value_opens(database_url, KeyRing.parse(KEY_B)) == total

    # A ring without the key the values are under: nothing opens, and the census names it.
    other = "k3:" + base64.b64encode(secrets.token_bytes(32)).decode()
    lost = triad(
        tmp_path, "keys", "rotate", TRIAD_DATABASE_URL=database_url, TRIAD_ENCRYPTION_KEYS=other
    )
    assert lost.returncode == 1
    assert re.search(
        rf"re-sealed 0 values under k3 in \d+ batches "
        rf"\(0 changed meanwhile, {total} did not open\)",
        lost.stdout,
    )
    assert f"k3=0  {KID_B}=" in lost.stdout


def test_rotate_refuses_bad_limits(tmp_path: Path) -> None:
    for args in (["--batch-size", "0"], ["--max-batches", "0"], ["--pause", "-1"]):
        result = triad(tmp_path, "keys", "rotate", *args)
        assert result.returncode == 2, args
