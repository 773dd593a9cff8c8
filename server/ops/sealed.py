"""Every column that holds sealed values, for `triad keys rotate` and `triad keys status`.

To add one: declare a `SealedColumn` beside the column's associated-data function (as
`consults/people.py` does) and add the declaring module's tuple below. A sealed column left out
fails `tests/ops/test_sealed_registry.py`, so rotation can never skip one silently.
"""

from __future__ import annotations

from ..consults import audit, brief, checkins, consent, outbox, people, platforms
from ..db.sealing import SealedColumn
from ..notes import store
from ..webhooks import endpoints

SEALED_COLUMNS: tuple[SealedColumn, ...] = (
    *platforms.SEALED_COLUMNS,
    *people.SEALED_COLUMNS,
    *consent.SEALED_COLUMNS,
    *brief.SEALED_COLUMNS,
    *checkins.SEALED_COLUMNS,
    *audit.SEALED_COLUMNS,
    *store.SEALED_COLUMNS,
    *outbox.SEALED_COLUMNS,
    *endpoints.SEALED_COLUMNS,
)
