"""PHI sealed at rest: names, consent details, check-in instrument and time, same-room
declarations, and the clinical part of audit details; the safety flag folds into its check-in

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-28 09:30:00.000000

A data migration: clear values are read, sealed with the server's key ring and written to the
new columns before the clear ones are dropped (and the reverse on downgrade). The key ring is
handed in by `server.db.migrate` as `config.attributes["keyring"]` (anything with
`seal(plaintext, aad)` and `open(sealed, aad)`); a database with rows to convert refuses to
migrate without it. The associated data below must stay equal to the app's
(`server/consults/people.py`, `consent.py`, `checkins.py`, `audit.py`).
"""

import json
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any, Protocol

import sqlalchemy as sa
from alembic import context, op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

SAFETY_FLAGGED = "measure.safety_flagged"  # the action this migration retires
MEASURE_RECORDED = "measure.recorded"
PRESENT_WITH = "participant.present_with"
PRESENCE_CONFIRMED = "presence.confirmed"
CONSENT_ACTIONS = ("consent.given", "consent.withdrawn")


class Sealer(Protocol):
    def seal(self, plaintext: bytes, aad: bytes) -> bytes: ...

    def open(self, sealed: bytes, aad: bytes) -> bytes: ...


class _Keys:
    """The key ring, fetched only when a row needs it: an empty database migrates without."""

    def __init__(self) -> None:
        self._ring: Sealer | None = context.config.attributes.get("keyring")

    def ring(self) -> Sealer:
        if self._ring is None:
            raise RuntimeError(
                "migration 0005 seals existing PHI: run it with the encryption keys "
                "(`triad migrate` hands them in)"
            )
        return self._ring

    def seal(self, value: Any, aad: str) -> bytes:
        raw = value.encode() if isinstance(value, str) else json.dumps(value).encode()
        return self.ring().seal(raw, aad.encode())

    def open_text(self, sealed: bytes, aad: str) -> str:
        return self.ring().open(sealed, aad.encode()).decode()

    def open_json(self, sealed: bytes, aad: str) -> Any:
        return json.loads(self.ring().open(sealed, aad.encode()))


def _aware(value: datetime | str | None) -> datetime | None:
    if value is None:
        return None
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def _iso(value: datetime | str | None) -> str | None:
    aware = _aware(value)
    return aware.isoformat() if aware is not None else None


def _for_db(value: str | None) -> datetime | None:
    """An ISO time back into a column: naive UTC on SQLite, aware elsewhere."""
    aware = _aware(value)
    if aware is None:
        return None
    return aware.replace(tzinfo=None) if op.get_bind().dialect.name == "sqlite" else aware


def _details(value: Any) -> dict[str, Any]:
    if isinstance(value, str):
        value = json.loads(value)
    return dict(value) if isinstance(value, dict) else {}


participants = sa.table(
    "participants",
    sa.column("id", sa.String()),
    sa.column("consult_id", sa.String()),
    sa.column("display_name", sa.String()),
    sa.column("present_with", sa.JSON()),
    sa.column("name_sealed", sa.LargeBinary()),
    sa.column("presence_sealed", sa.LargeBinary()),
)
consents = sa.table(
    "consents",
    sa.column("id", sa.BigInteger()),
    sa.column("consult_id", sa.String()),
    sa.column("scope", sa.String()),
    sa.column("wording_version", sa.String()),
    sa.column("given_at", sa.DateTime(timezone=True)),
    sa.column("attested_by", sa.String()),
    sa.column("withdrawn_at", sa.DateTime(timezone=True)),
    sa.column("withdrawn_by", sa.String()),
    sa.column("sealed", sa.LargeBinary()),
)
measures = sa.table(
    "measure_results",
    sa.column("id", sa.String()),
    sa.column("consult_id", sa.String()),
    sa.column("instrument", sa.String()),
    sa.column("recorded_at", sa.DateTime(timezone=True)),
    sa.column("sealed", sa.LargeBinary()),
)
events = sa.table(
    "audit_events",
    sa.column("id", sa.BigInteger()),
    sa.column("consult_id", sa.String()),
    sa.column("platform_id", sa.String()),
    sa.column("at", sa.DateTime(timezone=True)),
    sa.column("actor_type", sa.String()),
    sa.column("actor_id", sa.String()),
    sa.column("action", sa.String()),
    sa.column("details", sa.JSON()),
    sa.column("sealed", sa.LargeBinary()),
)


def _name_aad(pid: str, consult_id: str) -> str:
    return f"participant-name:{pid}:{consult_id}"


def _presence_aad(pid: str, consult_id: str) -> str:
    return f"participant-presence:{pid}:{consult_id}"


def _consent_aad(consent_id: int, consult_id: str) -> str:
    return f"consent:{consent_id}:{consult_id}"


def _measure_aad(measure_id: str, consult_id: str) -> str:
    return f"measure:{measure_id}:{consult_id}"


def _audit_aad(event_id: int) -> str:
    return f"audit:{event_id}"


def _foreign_keys_off() -> None:
    """SQLite's batch mode copies a table, drops the original and renames the copy; with rows
    referring to the table, the drop fails the foreign-key check (alembic's documented case).
    The checks are off for this migration (the pragma only takes outside a transaction, and
    nothing has written yet), and `_foreign_keys_checked` verifies every key at the end.
    `server.db.migrate` drops the connection afterwards, so the app's connections have the
    checks on again."""
    if op.get_bind().dialect.name == "sqlite":
        op.execute("PRAGMA foreign_keys = OFF")


def _foreign_keys_checked() -> None:
    if op.get_bind().dialect.name == "sqlite":
        broken = op.get_bind().execute(sa.text("PRAGMA foreign_key_check")).all()
        if broken:
            raise RuntimeError(f"migration 0005 broke {len(broken)} foreign keys")


def _require_keys_for_rows(keys: _Keys, *tables: str) -> None:
    """Refuse before the first change: SQLite commits DDL as it goes, so a refusal halfway
    would leave a half-migrated database."""
    bind = op.get_bind()
    for table in tables:
        if bind.execute(sa.text(f"SELECT 1 FROM {table} LIMIT 1")).first() is not None:  # noqa: S608
            keys.ring()
            return


def upgrade() -> None:
    keys = _Keys()
    _require_keys_for_rows(keys, "participants", "consents", "measure_results", "audit_events")
    _foreign_keys_off()
    bind = op.get_bind()
    now = datetime.now(UTC).isoformat()

    with op.batch_alter_table("participants") as batch:
        batch.add_column(sa.Column("name_sealed", sa.LargeBinary(), nullable=True))
        batch.add_column(sa.Column("presence_sealed", sa.LargeBinary(), nullable=True))
    for row in bind.execute(sa.select(participants)).all():
        declared = row.present_with
        declared = json.loads(declared) if isinstance(declared, str) else (declared or [])
        # A declaration made before confirmation existed is pending: it counts once confirmed.
        presence = (
            keys.seal(
                [{"participant_id": p, "via": "pending", "at": now, "by": None} for p in declared],
                _presence_aad(row.id, row.consult_id),
            )
            if declared
            else None
        )
        bind.execute(
            participants.update()
            .where(participants.c.id == row.id)
            .values(
                name_sealed=keys.seal(row.display_name, _name_aad(row.id, row.consult_id)),
                presence_sealed=presence,
            )
        )
    with op.batch_alter_table("participants") as batch:
        batch.alter_column("name_sealed", existing_type=sa.LargeBinary(), nullable=False)
        batch.drop_column("display_name")
        batch.drop_column("present_with")

    with op.batch_alter_table("consents") as batch:
        batch.add_column(sa.Column("sealed", sa.LargeBinary(), nullable=True))
    for row in bind.execute(sa.select(consents)).all():
        fact = {
            "scope": row.scope,
            "wording_version": row.wording_version,
            "given_at": _iso(row.given_at),
            "attested_by": row.attested_by,
            "withdrawn_at": _iso(row.withdrawn_at),
            "withdrawn_by": row.withdrawn_by,
        }
        bind.execute(
            consents.update()
            .where(consents.c.id == row.id)
            .values(sealed=keys.seal(fact, _consent_aad(row.id, row.consult_id)))
        )
    with op.batch_alter_table("consents") as batch:
        batch.alter_column("sealed", existing_type=sa.LargeBinary(), nullable=False)
        batch.drop_constraint(op.f("fk_consents_attested_by_participants"), type_="foreignkey")
        batch.drop_constraint(op.f("fk_consents_withdrawn_by_participants"), type_="foreignkey")
        for column in (
            "scope",
            "wording_version",
            "given_at",
            "attested_by",
            "withdrawn_at",
            "withdrawn_by",
        ):
            batch.drop_column(column)

    for row in bind.execute(sa.select(measures)).all():
        aad = _measure_aad(row.id, row.consult_id)
        score = keys.open_json(row.sealed, aad)
        score["recorded_at"] = _iso(row.recorded_at)
        bind.execute(
            measures.update().where(measures.c.id == row.id).values(sealed=keys.seal(score, aad))
        )
    with op.batch_alter_table("measure_results") as batch:
        batch.drop_column("instrument")
        batch.drop_column("recorded_at")

    with op.batch_alter_table("audit_events") as batch:
        batch.add_column(sa.Column("sealed", sa.LargeBinary(), nullable=True))
    flagged = set()
    for row in bind.execute(sa.select(events).where(events.c.action == SAFETY_FLAGGED)).all():
        flagged.add(_details(row.details).get("measure_id"))
    bind.execute(events.delete().where(events.c.action == SAFETY_FLAGGED))
    moved = (MEASURE_RECORDED, PRESENT_WITH, *CONSENT_ACTIONS)
    for row in bind.execute(sa.select(events).where(events.c.action.in_(moved))).all():
        details = _details(row.details)
        if row.action == MEASURE_RECORDED:
            clear = {k: v for k, v in details.items() if k in ("measure_id", "entered_by")}
            sealed = {
                "instrument": details.get("instrument"),
                "safety_flagged": details.get("measure_id") in flagged,
            }
        elif row.action == PRESENT_WITH:
            clear = {"participant_id": details.get("participant_id")}
            sealed = {"present_with": details.get("present_with", [])}
        else:
            clear, sealed = {}, details
        bind.execute(
            events.update()
            .where(events.c.id == row.id)
            .values(details=clear, sealed=keys.seal(sealed, _audit_aad(row.id)))
        )
    _foreign_keys_checked()


def downgrade() -> None:
    keys = _Keys()
    _require_keys_for_rows(keys, "participants", "consents", "measure_results", "audit_events")
    _foreign_keys_off()
    bind = op.get_bind()

    # Audit: clinical details back in clear, the safety flag back as its own event.
    bind.execute(events.delete().where(events.c.action == PRESENCE_CONFIRMED))
    rows = bind.execute(sa.select(events).where(events.c.sealed.is_not(None))).all()
    for row in rows:
        sealed = keys.open_json(row.sealed, _audit_aad(row.id))
        details = {**_details(row.details), **sealed}
        if row.action == MEASURE_RECORDED:
            flagged = bool(details.pop("safety_flagged", False))
            if flagged:
                bind.execute(
                    events.insert().values(
                        consult_id=row.consult_id,
                        platform_id=row.platform_id,
                        at=row.at,
                        actor_type="system",
                        actor_id=None,
                        action=SAFETY_FLAGGED,
                        details={"measure_id": details.get("measure_id"), "item": 9},
                    )
                )
        bind.execute(events.update().where(events.c.id == row.id).values(details=details))
    with op.batch_alter_table("audit_events") as batch:
        batch.drop_column("sealed")

    with op.batch_alter_table("measure_results") as batch:
        batch.add_column(sa.Column("instrument", sa.String(length=8), nullable=True))
        batch.add_column(sa.Column("recorded_at", sa.DateTime(timezone=True), nullable=True))
    for row in bind.execute(sa.select(measures)).all():
        aad = _measure_aad(row.id, row.consult_id)
        score = keys.open_json(row.sealed, aad)
        recorded_at = score.pop("recorded_at")
        bind.execute(
            measures.update()
            .where(measures.c.id == row.id)
            .values(
                instrument=score["instrument"],
                recorded_at=_for_db(recorded_at),
                sealed=keys.seal(score, aad),
            )
        )
    with op.batch_alter_table("measure_results") as batch:
        batch.alter_column("instrument", existing_type=sa.String(length=8), nullable=False)
        batch.alter_column("recorded_at", existing_type=sa.DateTime(timezone=True), nullable=False)

    with op.batch_alter_table("consents") as batch:
        batch.add_column(sa.Column("scope", sa.String(length=32), nullable=True))
        batch.add_column(sa.Column("wording_version", sa.String(length=32), nullable=True))
        batch.add_column(sa.Column("given_at", sa.DateTime(timezone=True), nullable=True))
        batch.add_column(sa.Column("attested_by", sa.String(length=32), nullable=True))
        batch.add_column(sa.Column("withdrawn_at", sa.DateTime(timezone=True), nullable=True))
        batch.add_column(sa.Column("withdrawn_by", sa.String(length=32), nullable=True))
    for row in bind.execute(sa.select(consents)).all():
        fact = keys.open_json(row.sealed, _consent_aad(row.id, row.consult_id))
        bind.execute(
            consents.update()
            .where(consents.c.id == row.id)
            .values(
                scope=fact["scope"],
                wording_version=fact["wording_version"],
                given_at=_for_db(fact["given_at"]),
                attested_by=fact.get("attested_by"),
                withdrawn_at=_for_db(fact.get("withdrawn_at")),
                withdrawn_by=fact.get("withdrawn_by"),
            )
        )
    with op.batch_alter_table("consents") as batch:
        batch.alter_column("scope", existing_type=sa.String(length=32), nullable=False)
        batch.alter_column("wording_version", existing_type=sa.String(length=32), nullable=False)
        batch.alter_column("given_at", existing_type=sa.DateTime(timezone=True), nullable=False)
        batch.create_foreign_key(
            op.f("fk_consents_attested_by_participants"), "participants", ["attested_by"], ["id"]
        )
        batch.create_foreign_key(
            op.f("fk_consents_withdrawn_by_participants"),
            "participants",
            ["withdrawn_by"],
            ["id"],
        )
        batch.drop_column("sealed")

    with op.batch_alter_table("participants") as batch:
        batch.add_column(sa.Column("display_name", sa.String(length=100), nullable=True))
        batch.add_column(
            sa.Column("present_with", sa.JSON(), nullable=False, server_default=sa.text("'[]'"))
        )
    for row in bind.execute(sa.select(participants)).all():
        declared = (
            keys.open_json(row.presence_sealed, _presence_aad(row.id, row.consult_id))
            if row.presence_sealed is not None
            else []
        )
        bind.execute(
            participants.update()
            .where(participants.c.id == row.id)
            .values(
                display_name=keys.open_text(row.name_sealed, _name_aad(row.id, row.consult_id)),
                present_with=[d["participant_id"] for d in declared],
            )
        )
    with op.batch_alter_table("participants") as batch:
        batch.alter_column("display_name", existing_type=sa.String(length=100), nullable=False)
        batch.drop_column("name_sealed")
        batch.drop_column("presence_sealed")
    _foreign_keys_checked()
