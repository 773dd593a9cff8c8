"""Every setting, read from `TRIAD_*` environment variables.

Defaults are safe for one developer on one machine: SQLite in `./var`, loopback only, and a
development encryption key generated on first start. Production mode refuses to start without
the secrets it must not guess (see `Settings.production_problems`).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from .errors import ConfigError
from .eventloop import EventLoopName

StrList = Annotated[list[str], NoDecode]


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
    # Remote ICE candidates: at most this many per peer connection; private (RFC 1918, ULA,
    # CGNAT) addresses only with this flag or when the host addresses above are private.
    # Loopback, link-local, multicast and unspecified only when a host address is one.
    ice_max_remote_candidates: int = Field(default=32, ge=1, le=1000)
    ice_allow_private_candidates: bool = False

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

    max_request_bytes: int = Field(default=64 * 1024, ge=1024, le=16 * 1024 * 1024)
    # REST rate limits (token buckets in this process): per API key, and per participant for
    # join-token calls. Past them: 429 `rate_limited` with Retry-After.
    api_key_requests_per_second: float = Field(default=50, gt=0, le=100_000)
    api_key_request_burst: int = Field(default=200, ge=1, le=1_000_000)
    join_token_requests_per_second: float = Field(default=5, gt=0, le=100_000)
    join_token_request_burst: int = Field(default=60, ge=1, le=1_000_000)
    log_level: Literal["debug", "info", "warning", "error"] = "info"
    log_format: Literal["json", "console"] = "json"
    # `triad serve`'s event loop: uvloop (faster per packet) or asyncio's own, the fallback.
    event_loop: EventLoopName = "uvloop"

    _split = field_validator(
        "ice_host_addresses", "stun_urls", "turn_urls", "allowed_origins", mode="before"
    )(_split_list)

    @field_validator("public_base_url")
    @classmethod
    def _strip_slash(cls, value: str | None) -> str | None:
        return value.rstrip("/") if value else None

    @property
    def base_url(self) -> str:
        if self.public_base_url:
            return self.public_base_url
        host = "127.0.0.1" if self.host in ("0.0.0.0", "") else self.host  # noqa: S104
        return f"http://{host}:{self.port}"

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
        if self.turn_urls and self.turn_secret is None:
            problems.append("TRIAD_TURN_URLS is set but TRIAD_TURN_SECRET is not")
        return problems

    def check(self) -> None:
        if (
            self.ice_udp_port_min is not None
            and self.ice_udp_port_max is not None
            and self.ice_udp_port_min > self.ice_udp_port_max
        ):
            raise ConfigError("TRIAD_ICE_UDP_PORT_MIN is above TRIAD_ICE_UDP_PORT_MAX")
        if (self.ice_udp_port_min is None) != (self.ice_udp_port_max is None):
            raise ConfigError("set TRIAD_ICE_UDP_PORT_MIN and TRIAD_ICE_UDP_PORT_MAX together")
        problems = self.production_problems()
        if problems:
            raise ConfigError(
                "refusing to start in production mode:\n" + "\n".join(f"  - {p}" for p in problems)
            )
