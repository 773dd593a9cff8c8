"""`triad serve --workers N`: N worker processes, each `triad serve` on its own event loop,
port (`TRIAD_PORT + i`) and share of the ICE UDP range, under one supervising process.

The supervisor starts the workers, forwards SIGINT/SIGTERM to them (as SIGTERM: each drains,
`TRIAD_DRAIN_SECONDS` at most) and waits for them to stop; a second signal is forwarded too,
and cuts the drains short.
A worker that exits after it was serving (killed, crashed) is started again under the same id
and port: its heartbeat returns, usually before its entry lapsed, so its consults come back on
it as their participants reconnect (the rooms, notes and media are rebuilt from the database
and the new connections); when the restart is slower than the heartbeat TTL, the next join
places them on another worker, and the browsers find it by reading the session again
(docs/architecture.md, "Workers and placement"). One that exits before it ever served (an
unmigrated database, a port in use) stops them all, with its exit status: the cause would only
repeat; one restarted after it served is started again until it does. A worker whose
supervisor vanished stops itself (`parent_vanished`).

The workers share their metrics through files in `TRIAD_METRICS_DIR` (server/metrics.py): the
supervisor empties it and names it in the workers' environment before the first starts, and
takes a dead worker's gauges out of the sums when it reaps it."""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import signal
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from multiprocessing.connection import wait
from multiprocessing.context import SpawnProcess
from multiprocessing.synchronize import Event
from types import FrameType

from . import logs, metrics
from .settings import Settings

log = logs.get(__name__)

# Seconds a stopping worker gets after its drain before it is killed (its rooms close, its
# plans are saved).
STOP_DEADLINE = 30.0
_POLL_SECONDS = 0.5
# A worker that keeps failing is restarted at most this often.
_RESTART_PAUSE = 1.0

# `serve` in a worker process: its settings (with its index) and the event it sets once
# it listens. A module-level function, so the spawned interpreter can import it.
WorkerMain = Callable[[Settings, Event, bool], None]


@dataclass
class _Worker:
    index: int
    process: SpawnProcess
    ready: Event
    # Started again after it had served: a start that fails is tried again, not the end of all.
    restarted: bool = False
    started: float = field(default_factory=time.monotonic)


class Supervisor:
    def __init__(self, settings: Settings, main: WorkerMain, *, with_demo: bool) -> None:
        self._settings = settings
        self._main = main
        self._with_demo = with_demo
        self._context = multiprocessing.get_context("spawn")
        self._workers: dict[int, _Worker] = {}
        self._stopping = False
        self._forwarded = False

    def run(self) -> int:
        """Serve until SIGINT or SIGTERM; the exit status."""
        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, self._stop)
        # Before any worker starts: they choose prometheus-client's multiprocess mode as they
        # import it, from the environment they inherit (server/metrics.py).
        metrics.use_directory(self._settings.effective_metrics_dir.resolve())
        try:
            for index in range(self._settings.workers):
                self._start(index)
            print(
                f"Triad is running {self._settings.workers} workers on ports "
                f"{self._settings.port}-{self._settings.port + self._settings.workers - 1} "
                "(Ctrl+C stops them)",
                flush=True,
            )
            status = self._watch()
        finally:
            self._stop_all()
        return status

    def _start(self, index: int, *, restarted: bool = False) -> None:
        settings = self._settings.model_copy(update={"worker_index": index})
        ready = self._context.Event()
        process = self._context.Process(
            target=self._main,
            args=(settings, ready, self._with_demo and index == 0),
            name=f"triad-worker-{index}",
        )
        process.start()
        self._workers[index] = _Worker(index, process, ready, restarted)

    def _watch(self) -> int:
        while not self._stopping:
            sentinels = [w.process.sentinel for w in self._workers.values()]
            if not wait(sentinels, timeout=_POLL_SECONDS):
                continue
            for worker in list(self._workers.values()):
                if worker.process.is_alive() or self._stopping:
                    continue
                status = worker.process.exitcode or 0
                if worker.process.pid is not None:  # its gauges leave the node's sums
                    metrics.process_dead(worker.process.pid)
                if worker.ready.is_set():
                    log.error("worker.exited", worker=worker.index, status=status)
                elif worker.restarted:
                    # It served before, so the cause may pass (its port still held a moment,
                    # the database restarting): the other workers go on serving meanwhile.
                    log.error("worker.restart_failed", worker=worker.index, status=status)
                else:
                    log.error("worker.failed_to_start", worker=worker.index, status=status)
                    return status or 1
                # A crash loop must not spin: at most one restart a second per worker.
                time.sleep(max(0.0, _RESTART_PAUSE - (time.monotonic() - worker.started)))
                if not self._stopping:
                    self._start(worker.index, restarted=True)
        return 0

    def _stop(self, _signum: int, _frame: FrameType | None) -> None:
        if self._stopping and self._forwarded:  # again: the workers stop draining
            self._forward()
        self._stopping = True

    def _forward(self) -> None:
        for worker in self._workers.values():
            if worker.process.is_alive() and worker.process.pid is not None:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(worker.process.pid, signal.SIGTERM)

    def _stop_all(self) -> None:
        workers = [w for w in self._workers.values() if w.process.is_alive()]
        self._forward()
        self._forwarded = True
        clustered = self._settings.clustered
        deadline = (
            time.monotonic() + STOP_DEADLINE + (self._settings.drain_seconds if clustered else 0)
        )
        for worker in workers:
            worker.process.join(max(0.0, deadline - time.monotonic()))
            if worker.process.is_alive():
                log.error("worker.killed", worker=worker.index)
                worker.process.kill()
                worker.process.join()
