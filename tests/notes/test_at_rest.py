"""Clinical text at rest is sealed: a copy of the database, taken while the consult runs and again
after its plan is saved, holds none of the words typed (SQLite: the file and its WAL, byte for
byte; PostgreSQL: every column of every row). Nor does it hold the names, consent records,
check-in instruments or same-room declarations."""

from __future__ import annotations

import json

from server.auth.roles import Role
from server.consults.care import CareFacts
from server.consults.checkins import CheckIns
from server.consults.consent import CONSENT_WORDING, ConsentBook
from tests.databases import stored_bytes
from tests.notes.conftest import World, utc_now
from tests.notes.plans import SECRET_WORDS, type_a_consult
from tests.notes.series import identity


def leaked(data: bytes) -> list[str]:
    found = []
    for word in SECRET_WORDS:
        for encoded in (word.encode(), word.encode("utf-16-le"), word.lower().encode()):
            if encoded in data:
                found.append(word)
    return found


async def test_no_typed_word_is_stored_in_clear(world: World) -> None:
    await world.restart(snapshot_every=3)  # snapshots as well as log rows
    await type_a_consult(world)
    assert leaked(await stored_bytes(world.db)) == []
    await world.end()
    plan = await world.notes.finalize(world.consult_id)
    # The words did reach the plan (and the clinicians' notes), only sealed.
    assert "nightmareflux" in plan.content.summary
    assert "Brightwaterhope" in plan.content.client_goals[0]
    assert "Quietmorrowplan" in await world.notes.clinicians_notes(world.consult_id)
    assert leaked(await stored_bytes(world.db)) == []


async def test_names_consent_check_ins_and_same_room_are_sealed(world: World) -> None:
    """The PHI beside the notes: participants' names, the consent records (scope, wording
    version), the check-ins' instruments and whether one raised the safety flag, and who sat
    with whom. None of it is in the stored bytes, in any column or audit detail."""
    checkins = CheckIns(world.db, world.keyring, utc_now)
    care = CareFacts(world.db, world.keyring, checkins, utc_now)
    consents = ConsentBook(world.db, world.keyring, utc_now)
    client = identity(world.consult, Role.CLIENT)
    therapist = identity(world.consult, Role.THERAPIST)
    await consents.give(
        client,
        wording_version=CONSENT_WORDING.version,
        scopes=["session", "information_sharing"],
        attested=False,
    )
    await care.declare_present_with(therapist, [client.participant_id])
    await care.confirm_presence(client, therapist.participant_id, client.participant_id)
    await checkins.record(client, "phq9", [1, 1, 1, 1, 1, 1, 1, 1, 2])  # item 9 flags
    await checkins.record(therapist, "gad7", [1] * 7)  # entered for the client beside them
    await consents.withdraw(client, scopes=["information_sharing"])

    stored = await stored_bytes(world.db)
    clear = [
        "Alex Rivera",
        "Sam Okafor",
        "Priya Nair",
        CONSENT_WORDING.version,
        "information_sharing",
        "phq9",
        "gad7",
        "safety",
        'present_with": [',
        json.dumps([client.participant_id]),
        '"via"',
    ]
    found = [v for v in clear if v.encode() in stored or v.encode("utf-16-le") in stored]
    assert found == []
    # ...and yet it is all there, sealed: the services read it back.
    state = await consents.state(world.consult_id)
    assert {(r.scope, r.active) for r in state.records} == {
        ("session", True),
        ("information_sharing", False),
    }
    care_state = await care.care_state(world.consult_id)
    assert care_state.present_with[therapist.participant_id] == (client.participant_id,)
    assert [f["instrument"] for f in care_state.safety_flags] == ["phq9"]
    measures = await checkins.of_consult(world.consult_id)
    assert [str(m.score.instrument) for m in measures] == ["phq9", "gad7"]
    view = await world.consults.get(world.caller, world.consult_id)
    assert {p.name for p in view.participants} == {"Alex Rivera", "Sam Okafor", "Priya Nair"}
