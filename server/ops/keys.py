"""`triad keys rotate` and `triad keys status`: every sealed value re-sealed under the ring's
active key, so that an older key can leave `TRIAD_ENCRYPTION_KEYS`, and the proof of it.

A value's key id is its first bytes (`crypto.kid_header`), so the database selects the values
still under another key without opening any. Each batch is read, opened and sealed again
under the active key, then written in a transaction of its own with compare-and-set on the old
bytes: a value a server replaced meanwhile (sealed under the active key, as every running node
seals once restarted with the new ring) is left as that server wrote it. An interrupted run
has committed whole batches only; a rerun selects what is still under another key, so it
continues where the first stopped.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Column, LargeBinary, case, func, literal, select, tuple_, update
from sqlalchemy.sql.elements import ColumnElement

from .. import logs
from ..crypto import KeyRing, SealError, kid_header, sealed_kid
from ..db.engine import Database
from ..db.sealing import SealedColumn

log = logs.get(__name__)

NOT_SEALED = "(not a sealed value)"  # a census key: bytes no key ring wrote
MAX_BATCH = 10_000
_KID_PREFIX_BYTES = 2 + 255  # version, length, the longest id the format can name


@dataclass(frozen=True)
class RotationLimits:
    """How a run proceeds: rows per batch (each batch one transaction), at most this many
    batches (None: until done), and a pause between batches to spare a busy database."""

    batch_size: int = 500
    max_batches: int | None = None
    pause_seconds: float = 0.0

    def __post_init__(self) -> None:
        if not 1 <= self.batch_size <= MAX_BATCH:
            raise ValueError(f"a batch is 1 to {MAX_BATCH} rows")
        if self.max_batches is not None and self.max_batches < 1:
            raise ValueError("at least one batch")
        if not 0 <= self.pause_seconds <= 60:
            raise ValueError("a pause is 0 to 60 seconds")


@dataclass
class RotationReport:
    resealed: int = 0
    # Compare-and-set lost: a server wrote the value (or deleted the row) between read and write.
    changed_meanwhile: int = 0
    # Under a key the ring lacks, or not opening with its row's associated data: left as is.
    unopenable: int = 0
    batches: int = 0
    stopped_early: bool = False


@dataclass(frozen=True)
class ColumnCensus:
    """How many values of one column are under each key id (NULLs are not values)."""

    name: str
    counts: dict[str, int] = field(default_factory=dict)

    def not_under(self, kid: str) -> int:
        return sum(n for k, n in self.counts.items() if k != kid)


def _sealed(column: SealedColumn) -> Column[Any]:
    sql_column: Column[Any] = column.sql_table.c[column.column]
    return sql_column


def _has_header(sql_column: Column[Any], kid: str) -> ColumnElement[bool]:
    header = kid_header(kid)
    prefix = func.substr(sql_column, 1, len(header), type_=LargeBinary())
    return prefix == literal(header, LargeBinary())


async def census(
    db: Database, ring: KeyRing, columns: Iterable[SealedColumn]
) -> list[ColumnCensus]:
    """Values per key id in every column: the ring's keys counted by the database; anything
    else (a key since dropped from the ring) read by prefix and named."""
    found = []
    async with db.engine.connect() as conn:
        for column in columns:
            sql_column = _sealed(column)
            per_kid = [
                func.coalesce(func.sum(case((_has_header(sql_column, kid), 1), else_=0)), 0)
                for kid in ring.kids
            ]
            row = (await conn.execute(select(func.count(sql_column), *per_kid))).one()
            counts = {kid: int(n) for kid, n in zip(ring.kids, row[1:], strict=True)}
            if int(row[0]) > sum(counts.values()):
                prefix = func.substr(sql_column, 1, _KID_PREFIX_BYTES, type_=LargeBinary())
                others = select(prefix).where(
                    sql_column.is_not(None), *(~_has_header(sql_column, kid) for kid in ring.kids)
                )
                tally = Counter(
                    sealed_kid(bytes(value)) or NOT_SEALED
                    for value in (await conn.execute(others)).scalars()
                )
                counts.update(tally)
            found.append(ColumnCensus(column.name, counts))
    return found


async def rotate(
    db: Database,
    ring: KeyRing,
    columns: Sequence[SealedColumn],
    limits: RotationLimits,
    progress: Callable[[str], None] = lambda _line: None,
) -> RotationReport:
    """Re-seal every value not under `ring.active_kid`, column by column, batch by batch."""
    report = RotationReport()
    for column in columns:
        if not await _rotate_column(db, ring, column, limits, report, progress):
            report.stopped_early = True
            break
    log.info(
        "keys.rotated",
        active_kid=ring.active_kid,
        resealed=report.resealed,
        changed_meanwhile=report.changed_meanwhile,
        unopenable=report.unopenable,
        batches=report.batches,
        stopped_early=report.stopped_early,
    )
    return report


async def _rotate_column(
    db: Database,
    ring: KeyRing,
    column: SealedColumn,
    limits: RotationLimits,
    report: RotationReport,
    progress: Callable[[str], None],
) -> bool:
    """False when the batch limit stopped the run."""
    table, sql_column = column.sql_table, _sealed(column)
    keys = list(table.primary_key.columns)
    wanted = [*keys, *(table.c[n] for n in column.aad_from if n not in table.primary_key.c)]
    pending = select(*wanted, sql_column).where(
        sql_column.is_not(None), ~_has_header(sql_column, ring.active_kid)
    )
    # Keyset order: a value that cannot be re-sealed is passed over, not selected forever.
    after: tuple[Any, ...] | None = None
    while True:
        query = pending
        if after is not None:
            query = query.where(
                keys[0] > after[0] if len(keys) == 1 else tuple_(*keys) > tuple_(*after)
            )
        async with db.engine.connect() as conn:
            rows = (await conn.execute(query.order_by(*keys).limit(limits.batch_size))).all()
        if not rows:
            return True
        writes, unopenable = [], 0
        for row in rows:
            old = bytes(row._mapping[sql_column])
            aad = column.aad_for(row)
            try:
                plaintext = ring.open(old, aad)
            except SealError:
                unopenable += 1
                continue
            match = [key == row._mapping[key] for key in keys]
            writes.append((match, old, ring.seal(plaintext, aad)))
        # Reading outside the write transaction keeps SQLite's lock (and PostgreSQL's row
        # locks) to the writes; compare-and-set on the old bytes makes that safe.
        async with db.engine.begin() as conn:
            for match, old, new in writes:
                done = await conn.execute(
                    update(table).where(*match, sql_column == old).values({column.column: new})
                )
                if done.rowcount == 1:
                    report.resealed += 1
                else:
                    report.changed_meanwhile += 1
        if unopenable:
            report.unopenable += unopenable
            log.warning("keys.unopenable", table=column.table, column=column.column, n=unopenable)
        after = tuple(rows[-1]._mapping[key] for key in keys)
        report.batches += 1
        progress(f"{column.name}: batch {report.batches}, {report.resealed} re-sealed so far")
        if limits.max_batches is not None and report.batches >= limits.max_batches:
            return False
        if limits.pause_seconds:
            await asyncio.sleep(limits.pause_seconds)


def census_lines(found: Sequence[ColumnCensus], active_kid: str) -> list[str]:
    """One line per column (values per key id, the active key first), then the verdict."""
    width = max((len(c.name) for c in found), default=0)
    lines = []
    for column in found:
        order = sorted(column.counts, key=lambda kid: (kid != active_kid, kid))
        counts = "  ".join(f"{kid}={column.counts[kid]}" for kid in order) or "empty"
        lines.append(f"{column.name:<{width}}  {counts}")
    left = sum(column.not_under(active_kid) for column in found)
    if left:
        lines.append(f"{left} values are not under {active_kid}: keep the other keys")
    else:
        lines.append(f"every sealed value is under {active_kid}: the other keys may be dropped")
    return lines
