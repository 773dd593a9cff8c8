"""Migration 0007 marks each consent record a consent or a minor's assent: what a minor's
client wrote at 0006 in a consult that seats a guardian becomes assent (their word never
counts as the guardian's), every other record stays a consent; the downgrade refuses while an
assent is on record, since the code before it would read the assent as consent."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from sqlalchemy import Connection, text

from server.db import migrate
from server.db.engine import Database
from tests.databases import upgrade_to

AT = datetime(2026, 12, 2, 15, 0, tzinfo=UTC)
# consult -> its seats (participant id, role); c_minor seats a guardian, c_adult does not.
SEATS = {
    "c_minor": [("p_minor", "client"), ("p_guardian", "guardian"), ("p_t1", "therapist")],
    "c_adult": [("p_adult", "client"), ("p_t2", "therapist")],
}
# Who consented at 0006: the minor themself (step 1 allowed it), the guardian, an adult client.
CONSENTED = ("p_minor", "p_guardian", "p_adult")


def _rows_at_0006(connection: Connection) -> None:
    at = AT.replace(tzinfo=None) if connection.dialect.name == "sqlite" else AT
    run = connection.execute
    run(
        text("INSERT INTO platforms (id, name, created_at) VALUES ('pf_1', 'Acme', :at)"),
        {"at": at},
    )
    for consult, seats in SEATS.items():
        run(
            text(
                "INSERT INTO consults (id, platform_id, status, auto_admit, created_at,"
                " series_id, client_is_minor) VALUES (:id, 'pf_1', 'scheduled', false, :at, :id,"
                " :minor)"
            ),
            {"id": consult, "at": at, "minor": consult == "c_minor"},
        )
        for pid, role in seats:
            run(
                text(
                    "INSERT INTO participants (id, consult_id, role, name_sealed, created_at)"
                    " VALUES (:id, :consult, :role, :sealed, :at)"
                ),
                {"id": pid, "consult": consult, "role": role, "sealed": b"x", "at": at},
            )
    for pid in CONSENTED:
        consult = next(c for c, seats in SEATS.items() if pid in dict(seats))
        run(
            text(
                "INSERT INTO consents (consult_id, participant_id, sealed)"
                " VALUES (:consult, :pid, :sealed)"
            ),
            {"consult": consult, "pid": pid, "sealed": b"x"},
        )


def _kinds(connection: Connection) -> dict[str, str]:
    rows = connection.execute(text("SELECT participant_id, kind FROM consents"))
    return {pid: kind for pid, kind in rows}


async def test_0007_makes_a_minors_own_records_assent_and_refuses_to_lose_them(
    unmigrated_database: Database,
) -> None:
    async with unmigrated_database.engine.begin() as conn:
        await conn.run_sync(upgrade_to("0006"))
        await conn.run_sync(_rows_at_0006)
    await migrate.upgrade(unmigrated_database.engine)
    async with unmigrated_database.engine.connect() as conn:
        kinds = await conn.run_sync(_kinds)
    assert kinds == {"p_minor": "assent", "p_guardian": "consent", "p_adult": "consent"}

    with pytest.raises(RuntimeError, match="below 0007"):
        await migrate.downgrade(unmigrated_database.engine, "0006")
    async with unmigrated_database.engine.connect() as conn:
        assert await conn.run_sync(_kinds) == kinds  # refused: nothing changed

    async with unmigrated_database.engine.begin() as conn:
        await conn.execute(text("DELETE FROM consents WHERE kind = 'assent'"))
    await migrate.downgrade(unmigrated_database.engine, "0006")
    async with unmigrated_database.engine.connect() as conn:
        columns = await conn.run_sync(
            lambda c: set(c.execute(text("SELECT * FROM consents")).keys())
        )
    assert "kind" not in columns
