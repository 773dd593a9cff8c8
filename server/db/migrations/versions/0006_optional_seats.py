"""optional seats: a consult's client may be marked as a minor (a guardian may then take part)

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-02 10:00:00.000000

The guardian and interpreter roles need no schema change: a participant's role is a plain
string column (unique per consult), checked by the app's `Role` enum.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("consults") as batch:
        # Every consult before this was created without the flag: not a minor.
        batch.add_column(
            sa.Column("client_is_minor", sa.Boolean(), nullable=False, server_default=sa.false())
        )


def downgrade() -> None:
    # The code before this revision cannot read a guardian's or interpreter's row, and their
    # rows are referred to (consent, notes, audit): refuse rather than delete care records.
    seated = op.get_bind().scalar(
        sa.text("SELECT COUNT(*) FROM participants WHERE role IN ('guardian', 'interpreter')")
    )
    if seated:
        raise RuntimeError(
            "cannot downgrade below 0006: consults seat a guardian or an interpreter"
        )
    # Not in a batch: on SQLite that copies `consults` and drops the original, which the
    # participants' foreign keys refuse once any consult exists. SQLite drops a column in place
    # (3.35 and later), as PostgreSQL does.
    op.drop_column("consults", "client_is_minor")
