"""a minor's consent: each consent record says whether it is a consent or a minor's assent

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-03 10:00:00.000000

For a consult that seats a guardian, the guardian's consent is what admits the client; the
minor's own records are assent, kept beside it. Records written before this revision by the
client of such a consult (step 1 let the client consent as any client) become assent, so a
minor's own word never counts as the guardian's. Every other record is a consent.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("consents") as batch:
        batch.add_column(sa.Column("kind", sa.String(8), nullable=False, server_default="consent"))
    op.execute(
        sa.text(
            "UPDATE consents SET kind = 'assent' WHERE participant_id IN ("
            " SELECT client.id FROM participants AS client"
            " WHERE client.role = 'client' AND EXISTS ("
            "  SELECT 1 FROM participants AS guardian"
            "  WHERE guardian.consult_id = client.consult_id AND guardian.role = 'guardian'))"
        )
    )


def downgrade() -> None:
    # The code before this revision reads every record as a consent: a minor's assent would
    # admit them as if the guardian had consented. Refuse rather than misread or delete it.
    assents = op.get_bind().scalar(sa.text("SELECT COUNT(*) FROM consents WHERE kind = 'assent'"))
    if assents:
        raise RuntimeError("cannot downgrade below 0007: consents hold a minor's assent")
    with op.batch_alter_table("consents") as batch:
        batch.drop_column("kind")
