"""Where sealed values live: one `SealedColumn` per column that holds `KeyRing.seal` output.

The module that seals a column declares it beside its associated-data function, and
`server/ops/sealed.py` lists every declaration; `triad keys rotate` and `triad keys status`
walk that list. A sealed column nobody declared fails `tests/ops/test_sealed_registry.py`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import LargeBinary, Table

from .models import Base


@dataclass(frozen=True)
class SealedColumn:
    """`table.column` holds sealed values (NULL allowed); `aad(*row[c] for c in aad_from)` is
    the associated data each was sealed with."""

    table: str
    column: str
    aad_from: tuple[str, ...]
    aad: Callable[..., bytes]

    def __post_init__(self) -> None:
        table = Base.metadata.tables.get(self.table)
        if table is None:
            raise ValueError(f"no table {self.table!r}")
        if self.column not in table.c or not isinstance(table.c[self.column].type, LargeBinary):
            raise ValueError(f"{self.table}.{self.column} is not a binary column")
        missing = [name for name in self.aad_from if name not in table.c]
        if missing or not self.aad_from:
            raise ValueError(f"{self.table} has no column {missing} for the associated data")

    @property
    def name(self) -> str:
        return f"{self.table}.{self.column}"

    @property
    def sql_table(self) -> Table:
        return Base.metadata.tables[self.table]

    def aad_for(self, row: Any) -> bytes:
        """The associated data of a row that has the `aad_from` columns."""
        return self.aad(*(getattr(row, name) for name in self.aad_from))
