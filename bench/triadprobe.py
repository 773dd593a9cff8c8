"""`triad serve` with two debug-only signals, for `bench/sfu.py --churn` and `--profile`:

    python bench/triadprobe.py serve        # as `python -m server serve`, same settings

* SIGUSR1: write `counts-<n>.json` (n = 1, 2, ...) into `$BENCH_PROBE_DIR`: the event loop's
  tasks by coroutine, the threads, and the garbage collector's objects by type (after a
  collection);
* SIGUSR2: start cProfile on the event loop's thread; the next SIGUSR2 stops it and writes
  `profile.prof` into `$BENCH_PROBE_DIR`.

Nothing else differs from `triad serve`: the same `server.__main__.main`, the same event loop
(uvloop by default), the handlers idle until signalled. The server has no such hook itself on
purpose (a debug door in a clinical server); this wrapper stays in the bench.
"""

from __future__ import annotations

import asyncio
import cProfile
import gc
import itertools
import json
import os
import signal
import sys
import threading
from collections import Counter
from pathlib import Path
from types import FrameType
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from server.__main__ import main  # noqa: E402

PROBE_DIR = Path(os.environ.get("BENCH_PROBE_DIR", "."))
_counts = itertools.count(1)
_profiler: cProfile.Profile | None = None


def _type_name(obj: object) -> str:
    kind = type(obj)
    return f"{kind.__module__}.{kind.__qualname__}"


def _task_name(task: asyncio.Task[Any]) -> str:
    coro = task.get_coro()
    return getattr(coro, "__qualname__", type(coro).__qualname__)


def counts() -> dict[str, Any]:
    gc.collect()
    try:
        tasks = asyncio.all_tasks(asyncio.get_running_loop())
    except RuntimeError:  # signalled before the loop started or after it stopped
        tasks = set()
    objects = Counter(_type_name(o) for o in gc.get_objects())
    return {
        "tasks": len(tasks),
        "tasks_by_coroutine": dict(Counter(_task_name(t) for t in tasks)),
        "threads": sorted(t.name for t in threading.enumerate()),
        "objects": sum(objects.values()),
        "objects_by_type": dict(objects),
    }


def _write_counts(_signum: int, _frame: FrameType | None) -> None:
    path = PROBE_DIR / f"counts-{next(_counts)}.json"
    partial = path.with_suffix(".part")
    partial.write_text(json.dumps(counts()))
    partial.rename(path)  # whole or absent: the bench polls for it


def _toggle_profile(_signum: int, _frame: FrameType | None) -> None:
    global _profiler
    if _profiler is None:
        _profiler = cProfile.Profile()
        _profiler.enable()
    else:
        _profiler.disable()
        partial = PROBE_DIR / "profile.part"
        _profiler.dump_stats(partial)
        partial.rename(PROBE_DIR / "profile.prof")  # whole or absent
        _profiler = None


if __name__ == "__main__":
    signal.signal(signal.SIGUSR1, _write_counts)
    signal.signal(signal.SIGUSR2, _toggle_profile)
    sys.exit(main(sys.argv[1:]))
