"""`gcpolicy.settle`: what `triad serve` does to the collector once it listens."""

from __future__ import annotations

import gc

from server import gcpolicy


def _walked(obj: object) -> bool:
    """Whether a collection of the oldest generation would walk `obj`."""
    return any(o is obj for o in gc.get_objects())


def test_settle_freezes_what_is_alive_and_raises_the_young_threshold() -> None:
    thresholds = gc.get_threshold()
    gc.unfreeze()
    try:
        alive_before = [1]
        assert _walked(alive_before)
        gcpolicy.settle(12_345)
        assert gc.get_threshold() == (12_345, *gcpolicy.OLDER_THRESHOLDS)
        assert not _walked(alive_before)  # frozen: out of every later collection
        made_after = [2]
        assert _walked(made_after)  # a room made later is still collected
    finally:
        gc.unfreeze()
        gc.set_threshold(*thresholds)
