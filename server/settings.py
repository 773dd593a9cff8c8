"""Every setting, read from `TRIAD_*` environment variables.

Defaults are safe for one developer on one machine: SQLite in `./var`, loopback only, and a
development encryption key generated on first start. Production mode refuses to start without
the secrets it must not guess (see `Settings.production_problems`).
"""

from __future__ import annotations

import json
import re
import socket
from pathlib import Path
from string import Formatter
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit, urlunsplit

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from . import gcpolicy
from .errors import ConfigError
from .eventloop import EventLoopName

StrList = Annotated[list[str], NoDecode]

# A node's id names its workers (`<node>-<index>`) in the registry and may be part of their
# public URLs, so it is a DNS label: lower-case letters, digits and inner hyphens.
NODE_ID_PATTERN = r"^[a-z0-9](?:[a-z0-9-]{0,30}[a-z0-9])?$"
MAX_WORKERS = 64
# What `TRIAD_WORKER_PUBLIC_URL` may name: the worker's port, index, id, and its node's id.
WORKER_URL_FIELDS = frozenset({"port", "index", "worker", "node"})
# A guessable scrape token would let anyone watch the service's traffic.
MIN_METRICS_TOKEN = 24


def _split_list(value: Any) -> Any:
    """Accept a JSON list or a comma-separated string, as operators write both."""
    if isinstance(value, str):
        text = value.strip()
        if text.startswith("["):
            return json.loads(text)
        return [item.strip() for item in text.split(",") if item.strip()]
    return value


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="TRIAD_", extra="ignore", frozen=True)

    mode: Literal["development", "production"] = "development"
    host: str = "127.0.0.1"
    port: int = Field(default=8080, ge=0, le=65535)
    data_dir: Path = Path("var")
    database_url: str | None = None
    redis_url: str | None = None
    # Where browsers reach this server; defaults to http://HOST:PORT.
    public_base_url: str | None = None

    # Clinical text at rest: "kid:base64key[,kid:base64key...]", 32-byte AES-256-GCM keys.
    # The first key seals new data; the others still open what they sealed (rotation).
    encryption_keys: SecretStr | None = None

    join_token_ttl_seconds: int = Field(default=24 * 3600, ge=60, le=30 * 24 * 3600)
    # Clock skew tolerated on `nbf`/`exp` of tokens that platforms mint on their own clocks.
    token_leeway_seconds: int = Field(default=10, ge=0, le=300)

    # ICE: aioice leaves out loopback unless named, so tests set TRIAD_ICE_HOST_ADDRESSES=127.0.0.1.
    ice_host_addresses: StrList = []
    ice_udp_port_min: int | None = Field(default=None, ge=1024, le=65535)
    ice_udp_port_max: int | None = Field(default=None, ge=1024, le=65535)
    stun_urls: StrList = []
    turn_urls: StrList = []
    # coturn `static-auth-secret` for time-limited TURN REST credentials.
    turn_secret: SecretStr | None = None
    turn_credential_ttl_seconds: int = Field(default=3600, ge=60, le=24 * 3600)
    # The server's own peer connections gather a relayed candidate too (only when the SFU
    # itself sits behind a network that needs it; browsers' TURN needs no such thing).
    sfu_turn: bool = False
    # Remote ICE candidates: at most this many per peer connection; private (RFC 1918, ULA,
    # CGNAT) addresses only with this flag or when the host addresses above are private.
    # Loopback, link-local, multicast and unspecified only when a host address is one.
    ice_max_remote_candidates: int = Field(default=32, ge=1, le=1000)
    ice_allow_private_candidates: bool = False

    # Scale-out (docs/operations.md). One process on SQLite by default. More than one worker, or
    # a node id (a machine of a multi-node deployment), needs PostgreSQL and Redis: consults
    # are placed on workers through Redis. Worker i listens on `port + i` and takes the i-th
    # equal share of the ICE UDP port range.
    workers: int = Field(default=1, ge=1, le=MAX_WORKERS)
    node_id: str | None = Field(default=None, pattern=NODE_ID_PATTERN)
    # Where browsers reach each worker's signaling: a template naming {port}, {index}, {worker}
    # or {node}, e.g. `https://triad.example/w/{worker}` behind a proxy that strips the prefix.
    # Unset: the public base URL with the worker's port.
    worker_public_url: str | None = None
    # Which worker of its node this process is: set by `triad serve --workers N` for each
    # process it starts (0 for a single process).
    worker_index: int = Field(default=0, ge=0, lt=MAX_WORKERS)
    # Each worker writes its entry (URL and load) this often; it lapses after the TTL.
    cluster_heartbeat_seconds: float = Field(default=1.0, ge=0.1, le=30)
    cluster_heartbeat_ttl_seconds: float = Field(default=5.0, ge=1, le=300)
    # The deployment's name in Redis: deployments (or test runs) sharing one Redis keep apart.
    cluster_name: str = Field(default="main", pattern=NODE_ID_PATTERN)
    # Place new consults on this node's workers while any of them is live.
    placement_prefer_node: str | None = Field(default=None, pattern=NODE_ID_PATTERN)
    # A worker told to stop (SIGTERM) takes no new consult and serves its own until they end,
    # for at most this long; then they move to other workers as on a failure. 0: no drain.
    drain_seconds: float = Field(default=600, ge=0, le=24 * 3600)

    # Webhooks (docs/api.md, "Webhooks"). Whether this process delivers them: every worker
    # does by default; events are written to the outbox whatever this says.
    webhook_delivery: bool = True
    # Endpoint URLs may name loopback or private addresses only when this is set (a platform
    # on the same private network, or tests).
    webhook_allow_private_addresses: bool = False
    # Each attempt's deadline; retries back off from the base (doubling, with jitter) up to
    # the cap, until the retry window since the event has passed (at least 24 h in production).
    webhook_timeout_seconds: float = Field(default=10, gt=0, le=60)
    webhook_retry_base_seconds: float = Field(default=5, gt=0, le=3600)
    webhook_retry_cap_seconds: float = Field(default=3600, gt=0, le=24 * 3600)
    webhook_retry_window_seconds: float = Field(default=72 * 3600, gt=0, le=30 * 24 * 3600)
    # How often a worker looks for events and due retries; attempts under way at once.
    webhook_poll_seconds: float = Field(default=1.0, gt=0, le=60)
    webhook_concurrency: int = Field(default=16, ge=1, le=256)
    webhook_max_endpoints: int = Field(default=20, ge=1, le=1000)

    # Origins allowed to embed the consult room (CSP frame-ancestors).
    allowed_origins: StrList = []

    # Consult rooms. A dropped socket keeps its seat this long (LiveKit holds 20 s); a room with
    # nobody connected ends after the empty-room grace (LiveKit: 300 s).
    reconnect_grace_seconds: float = Field(default=20, ge=0, le=600)
    empty_room_grace_seconds: float = Field(default=300, ge=0, le=24 * 3600)
    # Once a host was in: a consult ends this long after its scheduled end, or (no scheduled
    # end, or a host first admitted after that) this long after the first host admission.
    consult_overrun_seconds: float = Field(default=3600, ge=0, le=7 * 24 * 3600)
    consult_max_seconds: float = Field(default=4 * 3600, gt=0, le=7 * 24 * 3600)
    # Socket.IO: the largest message accepted, and the per-socket event budget (token bucket).
    socket_max_message_bytes: int = Field(default=256 * 1024, ge=4096, le=16 * 1024 * 1024)
    # Heartbeats: a dropped socket is noticed within interval + timeout (~20 s by default).
    socket_ping_interval_seconds: float = Field(default=10, ge=1, le=300)
    socket_ping_timeout_seconds: float = Field(default=10, ge=1, le=300)
    socket_events_per_second: float = Field(default=50, gt=0, le=10_000)
    socket_event_burst: int = Field(default=100, ge=1, le=100_000)
    # `join` and `media-restart` (each re-reads the care state, audits, renegotiates media) have
    # their own smaller budget; a socket must `join` this soon after connecting; a participant
    # may hold this many sockets that have not joined.
    socket_joins_per_second: float = Field(default=1, gt=0, le=100)
    socket_join_burst: int = Field(default=5, ge=1, le=100)
    socket_join_timeout_seconds: float = Field(default=10, gt=0, le=600)
    socket_max_unjoined_per_participant: int = Field(default=3, ge=1, le=100)
    # Every live socket's token is re-checked against the database this often (the safety net
    # under revocation events, which pub/sub delivers at most once).
    socket_access_recheck_seconds: float = Field(default=30, gt=0, le=3600)
    max_sdp_bytes: int = Field(default=64 * 1024, ge=1024, le=1024 * 1024)

    # Shared notes: the largest single CRDT update, and how many logged updates to a document
    # trigger a compacting snapshot.
    notes_max_update_bytes: int = Field(default=64 * 1024, ge=1024, le=4 * 1024 * 1024)
    notes_snapshot_every: int = Field(default=500, ge=10, le=1_000_000)
    # The largest encoded state (Yjs v1, whole document) an update may grow a document to.
    notes_max_document_bytes: int = Field(default=2 * 1024 * 1024, ge=16 * 1024, le=256 * 1024**2)

    # Check-ins: the most a consult may hold (each is scored, sealed and audited).
    checkins_max_per_consult: int = Field(default=20, ge=1, le=1000)

    # Retention (docs/operations.md). Idempotency keys settle a platform's retries of consult
    # creation, which come within minutes: kept this long, then deleted.
    idempotency_retention_hours: float = Field(default=48, ge=1, le=24 * 366)
    # Audit events older than this many days are deleted. Unset: kept for ever (HIPAA asks six
    # years for records that document compliance; a platform's contract may ask longer).
    audit_retention_days: int | None = Field(default=None, ge=30, le=100 * 366)
    # Webhook events, their deliveries and attempts (readable over REST) are kept this many
    # days once none waits any more.
    webhook_history_days: int = Field(default=30, ge=1, le=10 * 366)
    # How often a server prunes (worker 0 of each node; deletes are idempotent, in batches).
    retention_prune_interval_seconds: float = Field(default=3600, ge=60, le=7 * 24 * 3600)

    max_request_bytes: int = Field(default=64 * 1024, ge=1024, le=16 * 1024 * 1024)
    # REST rate limits (token buckets in this process): per API key, and per participant for
    # join-token calls. Past them: 429 `rate_limited` with Retry-After.
    api_key_requests_per_second: float = Field(default=50, gt=0, le=100_000)
    api_key_request_burst: int = Field(default=200, ge=1, le=1_000_000)
    join_token_requests_per_second: float = Field(default=5, gt=0, le=100_000)
    join_token_request_burst: int = Field(default=60, ge=1, le=1_000_000)
    # `/metrics` (Prometheus): with a token, served to callers sending it as a Bearer
    # credential; without one, only to loopback callers in development and to nobody in
    # production. Several workers share their values through files in the metrics directory
    # (default: DATA_DIR/metrics), emptied when `triad serve` starts.
    metrics_token: SecretStr | None = None
    metrics_dir: Path | None = None
    log_level: Literal["debug", "info", "warning", "error"] = "info"
    log_format: Literal["json", "console"] = "json"
    # `triad serve`'s event loop: uvloop (faster per packet) or asyncio's own, the fallback.
    event_loop: EventLoopName = "uvloop"
    # Allocations per young collection once `triad serve` listens (`gcpolicy.py`); CPython's
    # own default is 700.
    gc_young_threshold: int = Field(default=gcpolicy.YOUNG_THRESHOLD, ge=100, le=10_000_000)

    _split = field_validator(
        "ice_host_addresses", "stun_urls", "turn_urls", "allowed_origins", mode="before"
    )(_split_list)

    @field_validator("public_base_url")
    @classmethod
    def _strip_slash(cls, value: str | None) -> str | None:
        return value.rstrip("/") if value else None

    @field_validator("worker_public_url")
    @classmethod
    def _strip_template_slash(cls, value: str | None) -> str | None:
        return value.rstrip("/") if value else None

    @property
    def clustered(self) -> bool:
        """More than one worker, or a node of a multi-node deployment."""
        return self.workers > 1 or self.node_id is not None

    @property
    def node(self) -> str:
        """This machine's node id: the setting, else one made from the host name."""
        if self.node_id is not None:
            return self.node_id
        label = re.sub(r"[^a-z0-9-]+", "-", socket.gethostname().lower()).strip("-")[:32]
        return label.strip("-") or "node"

    @property
    def worker_id(self) -> str:
        return f"{self.node}-{self.worker_index}"

    @property
    def worker_port(self) -> int:
        """The port this worker listens on: consecutive from `port`."""
        return self.port + self.worker_index if self.port else 0

    @property
    def worker_url(self) -> str:
        """Where browsers reach this worker's signaling."""
        if self.worker_public_url is not None:
            return self.worker_public_url.format(
                port=self.worker_port,
                index=self.worker_index,
                worker=self.worker_id,
                node=self.node,
            )
        if not self.clustered:
            return self.base_url
        parts = urlsplit(self.base_url)
        host = parts.hostname or "127.0.0.1"
        host = f"[{host}]" if ":" in host else host
        return urlunsplit(parts._replace(netloc=f"{host}:{self.worker_port}")).rstrip("/")

    @property
    def worker_udp_ports(self) -> tuple[int, int] | None:
        """This worker's share of the ICE UDP port range (all of it for one worker)."""
        if self.ice_udp_port_min is None or self.ice_udp_port_max is None:
            return None
        share = (self.ice_udp_port_max - self.ice_udp_port_min + 1) // self.workers
        first = self.ice_udp_port_min + share * self.worker_index
        return first, first + share - 1

    @property
    def base_url(self) -> str:
        if self.public_base_url:
            return self.public_base_url
        host = "127.0.0.1" if self.host in ("0.0.0.0", "") else self.host  # noqa: S104
        return f"http://{host}:{self.port}"

    @property
    def effective_metrics_dir(self) -> Path:
        return self.metrics_dir if self.metrics_dir is not None else self.data_dir / "metrics"

    @property
    def effective_database_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite+aiosqlite:///{self.data_dir / 'triad.db'}"

    def production_problems(self) -> list[str]:
        """What production mode refuses to default. Empty in development mode."""
        if self.mode != "production":
            return []
        problems = []
        if self.encryption_keys is None:
            problems.append(
                "TRIAD_ENCRYPTION_KEYS is not set: clinical text at rest needs a key "
                "(generate one with `triad keygen`)"
            )
        if not (self.public_base_url or "").startswith("https://"):
            problems.append("TRIAD_PUBLIC_BASE_URL must be an https:// URL in production")
        if self.webhook_retry_window_seconds < 24 * 3600:
            problems.append(
                "TRIAD_WEBHOOK_RETRY_WINDOW_SECONDS must be at least 86400 in production "
                "(webhooks are retried for at least 24 hours)"
            )
        if self.turn_urls and self.turn_secret is None:
            problems.append("TRIAD_TURN_URLS is set but TRIAD_TURN_SECRET is not")
        if self.workers > 1 and not (self.worker_public_url or "").startswith("https://"):
            problems.append(
                "TRIAD_WORKER_PUBLIC_URL must be an https:// URL template with more than one "
                "worker in production (each worker's public address, see docs/operations.md)"
            )
        return problems

    def _check_scale_out(self) -> None:
        if self.worker_public_url is not None:
            _check_worker_template(self.worker_public_url, self.workers)
        if self.worker_index >= self.workers:
            raise ConfigError("TRIAD_WORKER_INDEX must be below TRIAD_WORKERS")
        if self.cluster_heartbeat_ttl_seconds < 2 * self.cluster_heartbeat_seconds:
            raise ConfigError(
                "TRIAD_CLUSTER_HEARTBEAT_TTL_SECONDS must be at least twice "
                "TRIAD_CLUSTER_HEARTBEAT_SECONDS"
            )
        if not self.clustered:
            return
        missing = []
        if not self.effective_database_url.startswith("postgresql"):
            missing.append("TRIAD_DATABASE_URL must name a PostgreSQL database")
        if not self.redis_url:
            missing.append("TRIAD_REDIS_URL must name a Redis server")
        if missing:
            why = (
                f"TRIAD_WORKERS={self.workers}"
                if self.workers > 1
                else f"TRIAD_NODE_ID={self.node_id}"
            )
            raise ConfigError(
                f"{why} runs consults on several workers, which share PostgreSQL and Redis:\n"
                + "\n".join(f"  - {m}" for m in missing)
            )
        if self.workers > 1 and self.port == 0:
            raise ConfigError("TRIAD_PORT must name a port with more than one worker (not 0)")
        if self.port + self.workers - 1 > 65535:
            raise ConfigError("TRIAD_PORT + TRIAD_WORKERS - 1 is past port 65535")
        udp = self.worker_udp_ports
        if udp is not None and udp[1] < udp[0]:
            raise ConfigError(
                "the ICE UDP port range is split between the workers: it needs at least "
                "one port per worker"
            )

    def check(self) -> None:
        if (
            self.ice_udp_port_min is not None
            and self.ice_udp_port_max is not None
            and self.ice_udp_port_min > self.ice_udp_port_max
        ):
            raise ConfigError("TRIAD_ICE_UDP_PORT_MIN is above TRIAD_ICE_UDP_PORT_MAX")
        if (self.ice_udp_port_min is None) != (self.ice_udp_port_max is None):
            raise ConfigError("set TRIAD_ICE_UDP_PORT_MIN and TRIAD_ICE_UDP_PORT_MAX together")
        if self.sfu_turn and not (self.turn_urls and self.turn_secret):
            raise ConfigError("TRIAD_SFU_TURN needs TRIAD_TURN_URLS and TRIAD_TURN_SECRET")
        token = self.metrics_token.get_secret_value() if self.metrics_token else None
        if token is not None and (
            len(token) < MIN_METRICS_TOKEN
            or not (token.isascii() and token.isprintable())
            or " " in token
        ):
            raise ConfigError(
                f"TRIAD_METRICS_TOKEN must be at least {MIN_METRICS_TOKEN} printable ASCII "
                "characters without spaces (generate one with `openssl rand -base64 32`)"
            )
        self._check_scale_out()
        problems = self.production_problems()
        if problems:
            raise ConfigError(
                "refusing to start in production mode:\n" + "\n".join(f"  - {p}" for p in problems)
            )


def _check_worker_template(template: str, workers: int) -> None:
    if not template.startswith(("http://", "https://")):
        raise ConfigError("TRIAD_WORKER_PUBLIC_URL must be an http:// or https:// URL")
    try:
        fields = {name for _, name, _, _ in Formatter().parse(template) if name is not None}
    except ValueError:
        raise ConfigError("TRIAD_WORKER_PUBLIC_URL has an unbalanced brace") from None
    unknown = fields - WORKER_URL_FIELDS
    if unknown:
        raise ConfigError(
            "TRIAD_WORKER_PUBLIC_URL may name only {port}, {index}, {worker} and {node}"
        )
    if workers > 1 and not fields & {"port", "index", "worker"}:
        raise ConfigError(
            "TRIAD_WORKER_PUBLIC_URL must tell the workers apart: name {port}, {index} or "
            "{worker} in it"
        )
