"""Every Prometheus metric Triad exports (`/metrics`), defined here and nowhere else.

Names start `triad_`, counters end `_total` and durations `_seconds`. Label values come from
short fixed sets (states, kinds, outcomes, `ErrorCode` values, route patterns): never an id, a
name, a token or anything clinical, so no label can identify a consult or a person, and the
number of series stays bounded whatever callers send.

Several workers (`triad serve --workers N`): prometheus-client's multiprocess mode. It is chosen
when prometheus-client is first imported, from `PROMETHEUS_MULTIPROC_DIR`, so the supervisor
sets that variable (`use_directory`) before it starts the workers, which inherit it; each worker
writes its values to files there, and any worker's `/metrics` reads them all (`exposition`).
One process (the default) keeps its values in memory in `REGISTRY`.

This module sits at the bottom of the layers, beside `errors` and `ids`: every layer may import
it, and it imports nothing of Triad's but `errors`."""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from enum import StrEnum
from pathlib import Path
from typing import Final, Literal

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    disable_created_metrics,
    generate_latest,
    multiprocess,
)

from .errors import ErrorCode

MULTIPROCESS_ENV = "PROMETHEUS_MULTIPROC_DIR"
# The classic text format every Prometheus reads (`generate_latest` writes it); the charset is
# added by the response.
MEDIA_TYPE = "text/plain"
CONTENT_TYPE = MEDIA_TYPE + "; version=0.0.4"

# `_created` series double the output and mean nothing across worker restarts.
disable_created_metrics()  # type: ignore[no-untyped-call]

REGISTRY = CollectorRegistry(auto_describe=True)

# -- label values ------------------------------------------------------------------------------

# A room waits until a host is admitted, then is live until it ends or leaves memory.
ROOM_STATES = ("waiting", "live")
# A seat: in the lobby, in the room, or held for a participant whose connection dropped.
PARTICIPANT_STATES = ("lobby", "room", "away")
MEDIA_KINDS: tuple[Literal["audio"], Literal["video"]] = ("audio", "video")
# A subscriber's (or a new subscriber's) wish for a keyframe, and a PLI actually sent to the
# publisher once the rate limit allows.
KEYFRAME_STAGES = ("asked", "sent")
# aiortc's `RTCPeerConnection.connectionState`, less `closed` (a closed one is not counted).
PEER_STATES = ("new", "connecting", "connected", "failed")
NOTES_APPLIED = "applied"
JOINED = "joined"
HTTP_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
# An HTTP request no route matched (404, 405): its path may be anything a caller made up.
UNMATCHED_ROUTE = "unmatched"


class WebhookOutcome(StrEnum):
    """How one webhook delivery attempt ended."""

    DELIVERED = "delivered"  # the platform answered 2xx
    FAILED = "failed"  # another status, a timeout or no connection: retried later
    ABANDONED = "abandoned"  # failed after its retry window: the delivery failed for good


# Gauges: each worker sets its own share; the node's value is the sum over live workers.
_LIVESUM: Final = "livesum"

ROOMS = Gauge(
    "triad_rooms",
    "Consult rooms in memory, by state (waiting: no host admitted yet)",
    ["state"],
    registry=REGISTRY,
    multiprocess_mode=_LIVESUM,
)
PARTICIPANTS = Gauge(
    "triad_participants",
    "Seats taken in the rooms in memory, by state (away: connection dropped, seat held)",
    ["state"],
    registry=REGISTRY,
    multiprocess_mode=_LIVESUM,
)
SOCKET_JOINS = Counter(
    "triad_socket_joins_total",
    "Socket join events, by result: joined, or the error code that refused it",
    ["result"],
    registry=REGISTRY,
)
NOTES_UPDATES = Counter(
    "triad_notes_updates_total",
    "Notes updates received, by result: applied, or the error code that refused it",
    ["result"],
    registry=REGISTRY,
)
# A notes update is acknowledged once durable: group commit puts most of them in 1-20 ms.
_NOTES_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)
NOTES_APPLY_SECONDS = Histogram(
    "triad_notes_apply_seconds",
    "From a notes update's arrival to its being durable (checked, applied, committed)",
    registry=REGISTRY,
    buckets=_NOTES_BUCKETS,
)
NOTES_FANOUT_SECONDS = Histogram(
    "triad_notes_fanout_seconds",
    "Sending a durable notes update on to the document's other readers",
    registry=REGISTRY,
    buckets=_NOTES_BUCKETS,
)
MEDIA_FORWARDED_PACKETS = Counter(
    "triad_media_forwarded_packets_total",
    "RTP packets sent on to subscribers, by kind (one per subscriber)",
    ["kind"],
    registry=REGISTRY,
)
MEDIA_FORWARDED_FRAMES = Counter(
    "triad_media_forwarded_frames_total",
    "Frames sent on to subscribers, by kind (audio: packets, one 20 ms frame each)",
    ["kind"],
    registry=REGISTRY,
)
MEDIA_DROPPED_FRAMES = Counter(
    "triad_media_dropped_frames_total",
    "Frames a subscriber did not get (not connected yet, video paused to fit its link, resync)",
    ["kind"],
    registry=REGISTRY,
)
MEDIA_KEYFRAME_REQUESTS = Counter(
    "triad_media_keyframe_requests_total",
    "Keyframe requests: asked (by or for a subscriber), sent (PLIs to publishers, rate-limited)",
    ["stage"],
    registry=REGISTRY,
)
PEER_CONNECTIONS = Gauge(
    "triad_peer_connections",
    "The server's peer connections, by connection state",
    ["state"],
    registry=REGISTRY,
    multiprocess_mode=_LIVESUM,
)
WEBHOOK_DELIVERIES = Counter(
    "triad_webhook_deliveries_total",
    "Webhook delivery attempts, by outcome",
    ["outcome"],
    registry=REGISTRY,
)
WEBHOOK_OUTBOX_OLDEST_AGE = Gauge(
    "triad_webhook_outbox_oldest_age_seconds",
    "Age of the oldest webhook still waiting in the outbox (0 when it is empty)",
    registry=REGISTRY,
    # Every worker reads the same outbox: the node's value is the largest any live one saw.
    multiprocess_mode="livemax",
)
HTTP_REQUESTS = Counter(
    "triad_http_requests_total",
    "HTTP requests answered, by method, route pattern and status",
    ["method", "route", "status"],
    registry=REGISTRY,
)


def _zeroed() -> None:
    """Every series of a fixed label set exists from the start (at 0), so a rate over a
    counter's first increase is right and a dashboard shows 0 rather than nothing."""
    for state in ROOM_STATES:
        ROOMS.labels(state)
    for state in PARTICIPANT_STATES:
        PARTICIPANTS.labels(state)
    for state in PEER_STATES:
        PEER_CONNECTIONS.labels(state)
    for kind in MEDIA_KINDS:
        MEDIA_FORWARDED_PACKETS.labels(kind)
        MEDIA_FORWARDED_FRAMES.labels(kind)
        MEDIA_DROPPED_FRAMES.labels(kind)
    for stage in KEYFRAME_STAGES:
        MEDIA_KEYFRAME_REQUESTS.labels(stage)
    for outcome in WebhookOutcome:
        WEBHOOK_DELIVERIES.labels(outcome.value)
    SOCKET_JOINS.labels(JOINED)
    NOTES_UPDATES.labels(NOTES_APPLIED)


_zeroed()


# -- what the layers call ----------------------------------------------------------------------


def result_label(code: ErrorCode | str | None, success: str) -> str:
    """`success`, or the error code: only codes Triad has (anything else is `internal`)."""
    if code is None:
        return success
    try:
        return ErrorCode(code).value
    except ValueError:
        return ErrorCode.INTERNAL.value


def count_webhook_delivery(outcome: WebhookOutcome) -> None:
    """One delivery attempt ended (`server/webhooks/` calls this after each attempt)."""
    WEBHOOK_DELIVERIES.labels(outcome.value).inc()


def set_webhook_outbox_age(oldest_age_seconds: float | None) -> None:
    """The age of the oldest undelivered webhook, or None when the outbox is empty (the
    webhooks' delivery loop calls this each time it looks at the outbox)."""
    WEBHOOK_OUTBOX_OLDEST_AGE.set(max(0.0, oldest_age_seconds or 0.0))


def set_counts(gauge: Gauge, states: Iterable[str], counts: Mapping[str, int]) -> None:
    """Set a by-state gauge from `counts`: every state of `states`, absent ones at 0."""
    for state in states:
        gauge.labels(state).set(counts.get(state, 0))


# -- several processes -------------------------------------------------------------------------


# Read when this module is imported, as prometheus-client read it when it was (just above):
# a variable set later (by the supervisor, for its workers) changes neither for this process.
_OWN_DIRECTORY = os.environ.get(MULTIPROCESS_ENV) or None
# The directory this process (a supervisor) gave its workers.
_workers_directory: Path | None = None


def multiprocess_directory() -> Path | None:
    """The directory this process writes its values to, shared with the node's other workers;
    None for one process (values in memory)."""
    return Path(_OWN_DIRECTORY) if _OWN_DIRECTORY else None


def use_directory(directory: Path) -> None:
    """Before the workers start (in the supervisor): an empty directory for their files, named
    in the environment they inherit. Files of an earlier run are removed: their pids may be
    reused, and their gauges would count rooms that are gone."""
    global _workers_directory
    directory.mkdir(parents=True, exist_ok=True, mode=0o700)
    for stale in directory.glob("*.db"):
        stale.unlink(missing_ok=True)
    os.environ[MULTIPROCESS_ENV] = str(directory)
    _workers_directory = directory


def process_dead(pid: int) -> None:
    """A worker exited (in the supervisor): its live gauges leave the sums; its counters stay
    (what it counted happened)."""
    if _workers_directory is not None:
        multiprocess.mark_process_dead(pid, str(_workers_directory))  # type: ignore[no-untyped-call]


def exposition() -> bytes:
    """The text exposition: this process's values, or the node's (every worker's files)."""
    directory = multiprocess_directory()
    if directory is None:
        return generate_latest(REGISTRY)
    registry = CollectorRegistry()
    multiprocess.MultiProcessCollector(registry, str(directory))  # type: ignore[no-untyped-call]
    return generate_latest(registry)
