"""Every place the server's CRDT library (pycrdt over yrs, Rust) meets bytes a participant sent:
the checks an update passes before and under the document's lock, the size cap, and the calls
themselves, guarded.

A yrs panic reaches Python as pycrdt's `PanicException`, which derives from `BaseException`, so an
`except Exception` lets it through with the document half-applied. Here every such call catches
`BaseException` as the library failure it is, except what must never be swallowed (cancellation,
interpreter exit, Ctrl-C), and answers with a code; the caller drops the live copy, which is
rebuilt from the log.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace
from typing import Any, NoReturn, TypeVar

import pycrdt

from .. import logs
from ..errors import ErrorCode, TriadError
from .documents import DocumentName
from .yparents import ParentIndex, Placement
from .yupdate import UpdateLimits, UpdateShape, check_causality, scan_update
from .ywire import Refusal, Refused, read_state_vector

log = logs.get(__name__)
T = TypeVar("T")
DEFAULT_MAX_DOCUMENT_BYTES = 2 * 1024 * 1024
# Never a library failure: these stop the task or the process and must go on doing so.
_NOT_LIBRARY_FAILURES = (KeyboardInterrupt, SystemExit, asyncio.CancelledError, GeneratorExit)


class CrdtFailure(Exception):
    """The CRDT library failed (an error or a panic) on bytes it was given."""


def guarded(call: Callable[[], T]) -> T:
    """`call()`, with any failure of the library, panics included, raised as `CrdtFailure`."""
    try:
        return call()
    except _NOT_LIBRARY_FAILURES:
        raise
    except BaseException as exc:  # pycrdt's PanicException is a BaseException
        raise CrdtFailure(type(exc).__name__) from None


class NotYet(TriadError):
    """The update builds on something the document does not hold yet (a gap in a client's
    clocks, a missing origin or parent, a deletion past the state): it may still arrive."""

    def __init__(self, reason: object) -> None:
        super().__init__(ErrorCode.NOTES_UPDATE_INVALID, f"the notes update is refused: {reason}")


_NOT_YET = frozenset({Refusal.GAP, Refusal.MISSING_DEPENDENCY, Refusal.DELETE_PAST_STATE})


@dataclass(frozen=True)
class CheckedUpdate:
    data: bytes
    shape: UpdateShape


def invalid(reason: object) -> NoReturn:
    raise TriadError(ErrorCode.NOTES_UPDATE_INVALID, f"the notes update is refused: {reason}")


def check_update(
    update: object, max_bytes: int, roots: frozenset[str] | None, limits: UpdateLimits
) -> CheckedUpdate:
    """The update's bytes if they are bytes within the size limit and pass the pre-scan; then
    yrs decodes them too (without touching a document), now that they are known to be safe."""
    if not isinstance(update, bytes | bytearray | memoryview):
        raise TriadError(ErrorCode.NOTES_UPDATE_INVALID, "a notes update is binary")
    data = bytes(update)
    if len(data) > max_bytes:
        raise TriadError(
            ErrorCode.NOTES_UPDATE_TOO_LARGE, f"a notes update may be at most {max_bytes} bytes"
        )
    try:
        shape = scan_update(data, roots, limits)
    except Refused as refused:
        invalid(refused.reason)
    try:
        guarded(lambda: pycrdt.get_state(data))
    except CrdtFailure:
        invalid("it does not decode")
    return CheckedUpdate(data, shape)


def apply_update(doc: pycrdt.Doc[Any], data: bytes) -> None:
    guarded(lambda: doc.apply_update(data))


def state_of(doc: pycrdt.Doc[Any]) -> dict[int, int]:
    """The document's state vector as client -> next clock."""
    return read_state_vector(guarded(doc.get_state), max_clients=2**31, max_clock=2**56)


def check_state_vector(state_vector: bytes, limits: UpdateLimits) -> bytes:
    """A peer's state vector, read by our own bounded reader before yrs sees it."""
    try:
        # Every client the document ever had (each page load is one), bounded by the message size.
        read_state_vector(state_vector, max_clients=2**20, max_clock=limits.max_clock)
    except Refused as refused:
        raise TriadError(
            ErrorCode.NOTES_UPDATE_INVALID, f"the state vector is refused: {refused.reason}"
        ) from None
    return state_vector


# For reading a whole document's encoded state: as many structs as it holds, the same depth and
# clocks as an update.
STATE_LIMITS = UpdateLimits(
    max_clients=2**20,
    max_structs=2**31,
    max_values=2**31,
    max_delete_ranges=2**31,
    max_string_bytes=2**31,
    max_type_depth=2**31,  # a document nested deeper before the rule: read, not refused
)


@dataclass
class DocumentFacts:
    """What the checks keep about a live document. Its encoded state size as last measured
    (None: not yet) and at most how much the updates applied since can have added: measuring is
    O(document), so it happens only when the bound comes near the cap. And the clocks that fall
    inside a character of its strings (None: not read yet), where no update may split it. And
    the parent of every item and the depth of every shared type (`yparents.py`; None: unknown, a
    document whose state the checks cannot read), read with `inside`; `placement` holds the
    update admitted last until `applied`."""

    measured: int | None = None
    growth: int = 0
    inside: set[tuple[int, int]] | None = None
    parents: ParentIndex | None = None
    placement: Placement | None = None
    non_text_roots: frozenset[str] = frozenset()


def read_state(doc: pycrdt.Doc[Any]) -> DocumentFacts:
    """The clocks inside a character of the document's strings and the parent index, read
    from its encoded state in one pass (O(document), once per live copy)."""
    try:
        roots = guarded(lambda: list(doc.items()))
        # Declared roots that are not a Y.Text (a root not declared on this copy reads as None).
        non_text_roots = frozenset(
            root for root, shared in roots if isinstance(shared, pycrdt.Array | pycrdt.Map)
        )
        shape = scan_update(guarded(doc.get_update), None, STATE_LIMITS)
        placement = Placement(ParentIndex(), STATE_LIMITS.max_type_depth, non_text_roots)
        # Integrated already: placed in Yjs' order, its splits not checked again.
        check_causality(replace(shape, splits=()), {}, (), placement)
    except Refused as refused:  # a document written before the rules: nothing to go by
        log.warning("notes_state_unreadable", reason=str(refused.reason))
        return DocumentFacts(inside=set())
    placement.commit()
    return DocumentFacts(
        inside=set(shape.inside), parents=placement.index, non_text_roots=non_text_roots
    )


def _placement(facts: DocumentFacts, limits: UpdateLimits) -> Placement | None:
    if facts.parents is None:
        return None
    return Placement(facts.parents, limits.max_type_depth, facts.non_text_roots)


def admit(
    doc: pycrdt.Doc[Any],
    checked: CheckedUpdate,
    facts: DocumentFacts,
    max_document_bytes: int,
    limits: UpdateLimits,
) -> None:
    """Refuse, before the document is touched, an update that would leave anything pending
    against this document's state, split one of its characters, put an item between two
    parents, nest shared types too deep, or take its encoded state past the cap. Call under the
    document's lock; `applied` afterwards."""
    facts.placement = None
    try:
        if facts.inside is None:
            read = read_state(doc)
            facts.inside, facts.parents = read.inside, read.parents
            facts.non_text_roots = read.non_text_roots
        placement = _placement(facts, limits)
        check_causality(checked.shape, state_of(doc), facts.inside or (), placement)
    except Refused as refused:
        if refused.reason in _NOT_YET:
            raise NotYet(refused.reason) from None
        invalid(refused.reason)
    except CrdtFailure:
        invalid("the document's state does not encode")
    facts.placement = placement
    bound = checked.shape.growth_bound
    if facts.measured is not None and facts.measured + facts.growth + bound <= max_document_bytes:
        return
    try:
        facts.measured, facts.growth = len(guarded(doc.get_update)), 0
        if facts.measured + bound <= max_document_bytes:
            return
        # Near the cap: apply to a scratch copy and measure what it would be.
        scratch: pycrdt.Doc[Any] = pycrdt.Doc()
        apply_update(scratch, guarded(doc.get_update))
        apply_update(scratch, checked.data)
        after = len(guarded(scratch.get_update))
    except CrdtFailure:
        invalid("it does not apply")
    if after > max_document_bytes and after > facts.measured:
        raise TriadError(
            ErrorCode.NOTES_DOCUMENT_TOO_LARGE,
            f"a notes document may be at most {max_document_bytes} bytes encoded",
        )


def applied(facts: DocumentFacts, checked: CheckedUpdate) -> None:
    facts.growth += checked.shape.growth_bound
    if facts.inside is not None:
        facts.inside |= checked.shape.inside
    if facts.placement is not None:
        facts.placement.commit()
        facts.placement = None


def replay(
    doc: pycrdt.Doc[Any],
    name: DocumentName,
    snapshot: bytes | None,
    entries: Iterable[tuple[int, bytes]],
    limits: UpdateLimits,
) -> DocumentFacts:
    """Rebuild a document from its snapshot and log; returns what the checks keep about it (the
    snapshot's state read once, then each entry's scan added: linear). An entry that the checks
    refuse (written before they existed: one would leave the document pending and unsyncable for
    good, or nest types too deep) is skipped and logged by its sequence number, so the rest of
    the document survives."""
    if snapshot is not None:
        apply_update(doc, snapshot)
    facts = read_state(doc)
    assert facts.inside is not None
    for seq, update in entries:
        try:
            shape = scan_update(update, None, limits)
            placement = _placement(facts, limits)
            check_causality(shape, state_of(doc), facts.inside, placement)
            apply_update(doc, update)
        except (Refused, CrdtFailure) as problem:
            log.warning("notes_entry_skipped", doc=str(name), seq=seq, reason=str(problem))
            continue
        facts.inside |= shape.inside
        if placement is not None:
            placement.commit()
    return facts
