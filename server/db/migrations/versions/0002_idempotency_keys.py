"""idempotency keys

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-22 16:01:26.759724
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:

    op.create_table(
        "idempotency_keys",
        sa.Column("platform_id", sa.String(length=32), nullable=False),
        sa.Column("key", sa.String(length=255), nullable=False),
        sa.Column("request_digest", sa.LargeBinary(length=32), nullable=False),
        sa.Column("consult_id", sa.String(length=32), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["consult_id"], ["consults.id"], name=op.f("fk_idempotency_keys_consult_id_consults")
        ),
        sa.ForeignKeyConstraint(
            ["platform_id"],
            ["platforms.id"],
            name=op.f("fk_idempotency_keys_platform_id_platforms"),
        ),
        sa.PrimaryKeyConstraint("platform_id", "key", name=op.f("pk_idempotency_keys")),
    )


def downgrade() -> None:

    op.drop_table("idempotency_keys")
