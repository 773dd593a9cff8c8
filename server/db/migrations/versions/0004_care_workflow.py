"""care workflow: follow-ups, same room, hand-off briefs, measures, consent withdrawal

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-22 19:05:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # batch mode: SQLite cannot add a foreign key to an existing table in place.
    with op.batch_alter_table("consults") as batch:
        batch.add_column(sa.Column("follows_id", sa.String(length=32), nullable=True))
        batch.add_column(sa.Column("series_id", sa.String(length=32), nullable=True))
        batch.create_foreign_key(
            op.f("fk_consults_follows_id_consults"), "consults", ["follows_id"], ["id"]
        )
        batch.create_index(op.f("ix_consults_follows_id"), ["follows_id"], unique=False)
        batch.create_index(op.f("ix_consults_series_id"), ["series_id"], unique=False)
    # Every consult before follow-ups existed is the first of its own series.
    op.execute("UPDATE consults SET series_id = id")
    with op.batch_alter_table("consults") as batch:
        batch.alter_column("series_id", existing_type=sa.String(length=32), nullable=False)

    with op.batch_alter_table("participants") as batch:
        batch.add_column(
            sa.Column("present_with", sa.JSON(), nullable=False, server_default=sa.text("'[]'"))
        )

    with op.batch_alter_table("consents") as batch:
        batch.add_column(sa.Column("withdrawn_by", sa.String(length=32), nullable=True))
        batch.create_foreign_key(
            op.f("fk_consents_withdrawn_by_participants"),
            "participants",
            ["withdrawn_by"],
            ["id"],
        )

    op.create_table(
        "handoff_briefs",
        sa.Column("consult_id", sa.String(length=32), nullable=False),
        sa.Column("author_role", sa.String(length=16), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("sealed", sa.LargeBinary(), nullable=False),
        sa.ForeignKeyConstraint(
            ["consult_id"], ["consults.id"], name=op.f("fk_handoff_briefs_consult_id_consults")
        ),
        sa.PrimaryKeyConstraint("consult_id", name=op.f("pk_handoff_briefs")),
    )
    op.create_table(
        "measure_results",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("consult_id", sa.String(length=32), nullable=False),
        sa.Column("participant_id", sa.String(length=32), nullable=False),
        sa.Column("instrument", sa.String(length=8), nullable=False),
        sa.Column("recorded_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("sealed", sa.LargeBinary(), nullable=False),
        sa.ForeignKeyConstraint(
            ["consult_id"], ["consults.id"], name=op.f("fk_measure_results_consult_id_consults")
        ),
        sa.ForeignKeyConstraint(
            ["participant_id"],
            ["participants.id"],
            name=op.f("fk_measure_results_participant_id_participants"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_measure_results")),
    )
    op.create_index(
        op.f("ix_measure_results_consult_id"), "measure_results", ["consult_id"], unique=False
    )


def downgrade() -> None:
    op.drop_index(op.f("ix_measure_results_consult_id"), table_name="measure_results")
    op.drop_table("measure_results")
    op.drop_table("handoff_briefs")
    with op.batch_alter_table("consents") as batch:
        batch.drop_constraint(op.f("fk_consents_withdrawn_by_participants"), type_="foreignkey")
        batch.drop_column("withdrawn_by")
    with op.batch_alter_table("participants") as batch:
        batch.drop_column("present_with")
    with op.batch_alter_table("consults") as batch:
        batch.drop_index(op.f("ix_consults_series_id"))
        batch.drop_index(op.f("ix_consults_follows_id"))
        batch.drop_constraint(op.f("fk_consults_follows_id_consults"), type_="foreignkey")
        batch.drop_column("series_id")
        batch.drop_column("follows_id")
