"""A worker's registry entry (what its heartbeat writes) and where everything lives in Redis.

Under `triad:cluster:<deployment>:`:
  worker:<id>        the worker's entry, JSON, expiring after the heartbeat TTL
  workers            the ids that may have an entry (pruned as entries lapse)
  recent:<id>        consults placed on the worker in the last few seconds (scored by time)
  placement:<c_id>   the worker a consult is placed on

Anything read back from Redis may have been written by someone else: an entry is parsed
strictly, and an entry that is malformed, too long or names another worker is not used."""

from __future__ import annotations

import json
import math
import re
from dataclasses import asdict, dataclass
from typing import Any
from urllib.parse import urlsplit

from ..ids import ConsultId, WorkerId

# An entry is a few ids, two URLs and numbers; a script reads at most this much of one.
MAX_ENTRY_BYTES = 2048
MAX_URL_CHARS = 512
# A worker id is `<node id>-<index>`: at most 32 + 1 + 2 characters; a script skips longer.
MAX_ID_BYTES = 64
WORKER_ID = re.compile(r"^[a-z0-9](?:[a-z0-9-]{0,30}[a-z0-9])?-[0-9]{1,2}$")
NODE_ID = re.compile(r"^[a-z0-9](?:[a-z0-9-]{0,30}[a-z0-9])?$")
_MAX_COUNT = 1_000_000
MAX_CPU = 1024.0  # cores
_FIELDS = frozenset(
    {"worker_id", "node_id", "url", "base_url", "rooms", "participants", "cpu", "version"}
)
# `draining` is written only while true: an entry of a serving worker stays what a reader of
# the first version parses (it refuses a draining one, which is also never placed on).
_DRAINING = "draining"
ENTRY_VERSION = 1


@dataclass(frozen=True)
class WorkerLoad:
    """What a worker holds: its live rooms and the participants connected to them."""

    rooms: int
    participants: int


@dataclass(frozen=True)
class WorkerEntry:
    """One worker as its heartbeat describes it."""

    worker_id: WorkerId
    node_id: str
    # Where browsers reach the worker's signaling, and its node's public base URL (pages).
    url: str
    base_url: str
    rooms: int
    participants: int
    # The worker process's CPU over its last beat, in cores (1.0: one core busy).
    cpu: float
    # Stopping (SIGTERM): it serves the consults it has and is placed no new one.
    draining: bool = False

    def __post_init__(self) -> None:
        if not isinstance(self.worker_id, str) or not WORKER_ID.match(self.worker_id):
            raise ValueError("not a worker id")
        if not isinstance(self.node_id, str) or not NODE_ID.match(self.node_id):
            raise ValueError("not a node id")
        if not self.worker_id.startswith(self.node_id + "-"):
            raise ValueError("a worker id starts with its node's")
        for url in (self.url, self.base_url):
            _check_url(url)
        for count in (self.rooms, self.participants):
            if isinstance(count, bool) or not isinstance(count, int):
                raise ValueError("a count is a whole number")
            if not 0 <= count <= _MAX_COUNT:
                raise ValueError("a count out of range")
        if isinstance(self.cpu, bool) or not isinstance(self.cpu, int | float):
            raise ValueError("cpu is a number")
        if not (math.isfinite(self.cpu) and 0 <= self.cpu <= MAX_CPU):
            raise ValueError("cpu out of range")
        if not isinstance(self.draining, bool):
            raise ValueError("draining is true or false")

    def encode(self) -> bytes:
        body: dict[str, Any] = {"version": ENTRY_VERSION, **asdict(self)}
        if not self.draining:
            del body[_DRAINING]
        return json.dumps(body, separators=(",", ":")).encode()

    @classmethod
    def decode(cls, raw: bytes) -> WorkerEntry:
        """Raises ValueError for anything that is not an entry this module encoded."""
        if len(raw) > MAX_ENTRY_BYTES:
            raise ValueError("an entry is at most 2 KiB")
        body = json.loads(raw)
        if not isinstance(body, dict) or set(body) - {_DRAINING} != _FIELDS:
            raise ValueError("not a worker entry")
        if body.get(_DRAINING, True) is not True:
            raise ValueError("draining is written only while true")
        if body.pop("version") != ENTRY_VERSION:
            raise ValueError("an entry of another version")
        return cls(**body)

    @property
    def origins(self) -> frozenset[str]:
        """The browser origins of this worker and of its node's pages."""
        return frozenset(origin_of(url) for url in (self.url, self.base_url))


def origin_of(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"


def _check_url(url: object) -> None:
    if not isinstance(url, str) or not 0 < len(url) <= MAX_URL_CHARS:
        raise ValueError("a URL of at most 512 characters")
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError("an http(s) URL")
    if parts.query or parts.fragment or parts.username or parts.password:
        raise ValueError("a URL without credentials, query or fragment")
    if any(ch.isspace() or ord(ch) < 0x20 for ch in url):
        raise ValueError("a URL without spaces or control characters")


@dataclass(frozen=True)
class ClusterKeys:
    """The Redis keys of one deployment."""

    deployment: str

    @property
    def prefix(self) -> str:
        return f"triad:cluster:{self.deployment}:"

    @property
    def workers(self) -> str:
        return self.prefix + "workers"

    @property
    def worker_prefix(self) -> str:
        return self.prefix + "worker:"

    @property
    def recent_prefix(self) -> str:
        return self.prefix + "recent:"

    def worker(self, worker_id: WorkerId) -> str:
        return self.worker_prefix + worker_id

    def placement(self, consult_id: ConsultId) -> str:
        return self.prefix + "placement:" + consult_id
