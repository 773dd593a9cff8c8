"""The sealed-column registry that `triad keys rotate` walks covers every sealed column."""

from __future__ import annotations

import pytest
from sqlalchemy import LargeBinary

from server.db.models import Base
from server.db.sealing import SealedColumn
from server.ops.sealed import SEALED_COLUMNS


def test_every_sealed_column_is_registered_once() -> None:
    """A column named `sealed` or `*_sealed` that nobody registered would keep its values
    under the old key through a rotation: declare it (see `server/ops/sealed.py`)."""
    sealed = {
        f"{table.name}.{column.name}"
        for table in Base.metadata.sorted_tables
        for column in table.columns
        if isinstance(column.type, LargeBinary)
        and (column.name == "sealed" or column.name.endswith("_sealed"))
    }
    registered = [column.name for column in SEALED_COLUMNS]
    assert len(registered) == len(set(registered))
    assert set(registered) == sealed


@pytest.mark.parametrize(
    ("table", "column", "aad_from"),
    [
        ("nowhere", "sealed", ("id",)),
        ("consents", "kind", ("id",)),  # not a binary column
        ("consents", "sealed", ("nope",)),
        ("consents", "sealed", ()),
    ],
)
def test_a_declaration_naming_what_is_not_there_is_refused(
    table: str, column: str, aad_from: tuple[str, ...]
) -> None:
    with pytest.raises(ValueError, match=r"."):
        SealedColumn(table, column, aad_from, lambda *_: b"")
