"""The garbage collector's policy for a serving process: what is alive once it listens is
frozen, and young objects are collected in larger batches.

A full collection walks every tracked object in the process and stops it meanwhile. Measured
with `bench/notes_socketio.py` at 100 consults (a 440,000-object heap, most of it the rooms'
peer connections and sockets), CPython's default thresholds (700, 10, 10) ran one every 2-3 s,
each a pause of 100-500 ms on a loaded machine that every notes update and signal in flight
waited through: the notes channel's p99. Objects that live a few thousand allocations (an
update waiting for its commit, a packet in a socket's queue) were promoted and counted towards
the next full collection. With 50,000 allocations per young collection most of them die young,
the 25% rule of the oldest generation is seldom reached (one full collection in a 15 s run
instead of a dozen), and a young collection stays a few milliseconds.

Freezing moves what startup made (modules, classes, the app: about 170,000 objects) out of
every later full collection. Nothing made after startup is frozen: rooms come and go, and
their cycles (aiortc's peer connections) must still be collected."""

from __future__ import annotations

import gc
from typing import Final

YOUNG_THRESHOLD: Final = 50_000  # `TRIAD_GC_YOUNG_THRESHOLD`
# Young collections per middle one, middle ones per full one (subject to the 25% rule).
OLDER_THRESHOLDS: Final = (20, 10)


def settle(young_threshold: int = YOUNG_THRESHOLD) -> None:
    """Call once the process is set up and about to serve."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(young_threshold, *OLDER_THRESHOLDS)
