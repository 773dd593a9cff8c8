"""notes: update log, snapshots, plans

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-22 16:29:06.737579
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:

    op.create_table(
        "note_snapshots",
        sa.Column("consult_id", sa.String(length=32), nullable=False),
        sa.Column("doc", sa.String(length=16), nullable=False),
        sa.Column("seq", sa.BigInteger(), nullable=False),
        sa.Column("authors", sa.JSON(), nullable=False),
        sa.Column("sealed", sa.LargeBinary(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["consult_id"], ["consults.id"], name=op.f("fk_note_snapshots_consult_id_consults")
        ),
        sa.PrimaryKeyConstraint("consult_id", "doc", name=op.f("pk_note_snapshots")),
    )
    op.create_table(
        "plans",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("consult_id", sa.String(length=32), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("record_sealed", sa.LargeBinary(), nullable=False),
        sa.Column("markdown_sealed", sa.LargeBinary(), nullable=False),
        sa.Column("clinicians_sealed", sa.LargeBinary(), nullable=False),
        sa.ForeignKeyConstraint(
            ["consult_id"], ["consults.id"], name=op.f("fk_plans_consult_id_consults")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_plans")),
        sa.UniqueConstraint("consult_id", name=op.f("uq_plans_consult_id")),
    )
    op.create_table(
        "note_updates",
        sa.Column("consult_id", sa.String(length=32), nullable=False),
        sa.Column("doc", sa.String(length=16), nullable=False),
        sa.Column("seq", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("participant_id", sa.String(length=32), nullable=False),
        sa.Column("role", sa.String(length=16), nullable=False),
        sa.Column("sections", sa.JSON(), nullable=False),
        sa.Column("sealed", sa.LargeBinary(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["consult_id"], ["consults.id"], name=op.f("fk_note_updates_consult_id_consults")
        ),
        sa.ForeignKeyConstraint(
            ["participant_id"],
            ["participants.id"],
            name=op.f("fk_note_updates_participant_id_participants"),
        ),
        sa.PrimaryKeyConstraint("consult_id", "doc", "seq", name=op.f("pk_note_updates")),
    )


def downgrade() -> None:

    op.drop_table("note_updates")
    op.drop_table("plans")
    op.drop_table("note_snapshots")
