"""Migration 0005 moves PHI that earlier revisions kept in clear into sealed columns: a database
written at 0004 (names, present_with, consent rows, check-in instrument and time, a
`measure.safety_flagged` event) reads back the same through the app after the upgrade, holds
none of those values in clear, refuses to migrate without the key ring, and downgrades back to
the clear form."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import Connection, text

from server.consults.audit import open_details
from server.consults.care import CareFacts
from server.consults.checkins import CheckIns
from server.consults.consent import ConsentBook
from server.consults.measures import score
from server.consults.model import PlatformCaller
from server.consults.service import ConsultService
from server.crypto import KeyRing
from server.db import migrate
from server.db.engine import Database
from server.ids import ConsultId, KeyId, ParticipantId, PlatformId
from tests.conftest import TEST_KEY
from tests.databases import stored_bytes, upgrade_to

KEYRING = KeyRing.parse(TEST_KEY)
AT = datetime(2026, 11, 20, 15, 0, tzinfo=UTC)
NAMES = {"p_client": "Alex Rivera", "p_therapist": "Sam Okafor", "p_psych": "Priya Nair"}
ROLES = {"p_client": "client", "p_therapist": "therapist", "p_psych": "psychiatrist"}
PHQ9 = score("phq9", [1, 1, 1, 1, 1, 1, 1, 1, 2])


def _old_rows(connection: Connection) -> None:
    """What 0004's code wrote for one consult (clear values, the old measure seal)."""
    sqlite = connection.dialect.name == "sqlite"
    at = AT.replace(tzinfo=None) if sqlite else AT
    run = connection.execute
    run(text("INSERT INTO platforms VALUES ('pf_1', 'Acme', :at)"), {"at": at})
    run(
        text(
            "INSERT INTO consults (id, platform_id, status, auto_admit, created_at, series_id)"
            " VALUES ('c_1', 'pf_1', 'live', false, :at, 'c_1')"
        ),
        {"at": at},
    )
    for pid, name in NAMES.items():
        present = ["p_client"] if pid == "p_therapist" else []
        run(
            text(
                "INSERT INTO participants (id, consult_id, role, display_name, created_at,"
                " present_with) VALUES (:id, 'c_1', :role, :name, :at, :present)"
            ),
            {"id": pid, "role": ROLES[pid], "name": name, "at": at, "present": json.dumps(present)},
        )
    for scope in ("session", "information_sharing"):
        run(
            text(
                "INSERT INTO consents (consult_id, participant_id, scope, wording_version,"
                " given_at, attested_by) VALUES ('c_1', 'p_client', :scope, '2026-11-01', :at,"
                " 'p_therapist')"
            ),
            {"scope": scope, "at": at},
        )
    sealed = KEYRING.seal(json.dumps(PHQ9.to_json()).encode(), b"measure:m_1:c_1")
    run(
        text("INSERT INTO measure_results VALUES ('m_1', 'c_1', 'p_client', 'phq9', :at, :sealed)"),
        {"at": at, "sealed": sealed},
    )
    events = [
        (
            "participant",
            "p_therapist",
            "participant.present_with",
            {"participant_id": "p_therapist", "present_with": ["p_client"]},
        ),
        (
            "participant",
            "p_therapist",
            "consent.given",
            {
                "scope": "session",
                "wording_version": "2026-11-01",
                "client": "p_client",
                "attested_by": "p_therapist",
            },
        ),
        (
            "participant",
            "p_client",
            "measure.recorded",
            {"measure_id": "m_1", "instrument": "phq9"},
        ),
        ("system", None, "measure.safety_flagged", {"measure_id": "m_1", "item": 9}),
    ]
    for actor_type, actor_id, action, details in events:
        run(
            text(
                "INSERT INTO audit_events (consult_id, platform_id, at, actor_type, actor_id,"
                " action, details) VALUES ('c_1', 'pf_1', :at, :type, :actor, :action, :details)"
            ),
            {
                "at": at,
                "type": actor_type,
                "actor": actor_id,
                "action": action,
                "details": json.dumps(details),
            },
        )


def _json(value: object) -> object:
    return json.loads(value) if isinstance(value, str) else value


def clock() -> datetime:
    return datetime.now(UTC)


async def test_0005_seals_what_0004_kept_in_clear_and_gives_it_back_down(
    unmigrated_database: Database,
) -> None:
    async with unmigrated_database.engine.begin() as conn:
        await conn.run_sync(upgrade_to("0004"))
        await conn.run_sync(_old_rows)
    with pytest.raises(RuntimeError, match="encryption keys"):
        async with unmigrated_database.engine.begin() as conn:
            await conn.run_sync(upgrade_to("head"))
    await migrate.upgrade(unmigrated_database.engine, KEYRING)

    before = await stored_bytes(unmigrated_database)
    for value in (*NAMES.values(), "2026-11-01", "phq9", "safety_flagged", "information_sharing"):
        assert value.encode() not in before, value
    assert b'"present_with": [' not in before

    # The app reads it all back.
    caller = PlatformCaller(PlatformId("pf_1"), KeyId("key_1"), "unused")
    consults = ConsultService(
        unmigrated_database,
        KEYRING,
        public_base_url="http://127.0.0.1",
        token_ttl=timedelta(hours=1),
        clock=clock,
    )
    view = await consults.get(caller, ConsultId("c_1"))
    assert {p.id: p.name for p in view.participants} == NAMES
    consents = await ConsentBook(unmigrated_database, KEYRING, clock).state(ConsultId("c_1"))
    assert {(r.scope, r.wording_version, r.attested_by) for r in consents.records} == {
        ("session", "2026-11-01", "p_therapist"),
        ("information_sharing", "2026-11-01", "p_therapist"),
    }
    checkins = CheckIns(unmigrated_database, KEYRING, clock)
    (measure,) = await checkins.of_consult(ConsultId("c_1"))
    assert (measure.score, measure.recorded_at) == (PHQ9, AT)
    care = await CareFacts(unmigrated_database, KEYRING, checkins, clock).care_state(
        ConsultId("c_1")
    )
    # A declaration from before confirmation existed waits for one, like a new one.
    assert care.present_with[ParticipantId("p_therapist")] == ()
    async with unmigrated_database.engine.connect() as conn:
        rows = (
            await conn.execute(text("SELECT id, action, details, sealed FROM audit_events"))
        ).all()
    actions = {row.action: row for row in rows}
    assert "measure.safety_flagged" not in actions
    recorded = actions["measure.recorded"]
    assert _json(recorded.details) == {"measure_id": "m_1"}  # the instrument left the clear
    assert open_details(KEYRING, recorded.id, recorded.sealed) == {
        "instrument": "phq9",
        "safety_flagged": True,
    }
    assert open_details(
        KEYRING, actions["participant.present_with"].id, actions["participant.present_with"].sealed
    ) == {"present_with": ["p_client"]}

    await migrate.downgrade(unmigrated_database.engine, "0004", KEYRING)
    async with unmigrated_database.engine.connect() as conn:
        names = dict((await conn.execute(text("SELECT id, display_name FROM participants"))).all())
        assert names == NAMES
        scopes = (await conn.execute(text("SELECT scope, wording_version FROM consents"))).all()
        assert sorted(scopes) == [("information_sharing", "2026-11-01"), ("session", "2026-11-01")]
        instrument = await conn.scalar(text("SELECT instrument FROM measure_results"))
        assert instrument == "phq9"
        flagged = await conn.scalar(
            text("SELECT count(*) FROM audit_events WHERE action = 'measure.safety_flagged'")
        )
        assert flagged == 1
    # ...and up again.
    await migrate.upgrade(unmigrated_database.engine, KEYRING)
    assert NAMES["p_client"].encode() not in await stored_bytes(unmigrated_database)
