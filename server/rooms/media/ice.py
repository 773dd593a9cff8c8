"""ICE servers: the list the SFU itself uses, and time-limited TURN credentials for clients.

TURN REST credentials follow coturn's shared-secret mode (`use-auth-secret`,
`static-auth-secret`): the username is `<expiry unix time>:<participant id>` and the password
is base64(HMAC-SHA1(secret, username)). coturn recomputes the HMAC and refuses expired names,
so the server never stores per-user TURN passwords and a leaked credential dies on its own.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import time
from collections.abc import Sequence

from aiortc import RTCIceServer

from server.ids import ParticipantId

from .config import IceServer, MediaConfig


def turn_credential(
    secret: str, participant_id: ParticipantId, ttl_seconds: int, now: float | None = None
) -> tuple[str, str]:
    """(username, credential) valid for `ttl_seconds` from `now`."""
    if not secret:
        raise ValueError("the TURN secret is empty")
    if ttl_seconds <= 0:
        raise ValueError("ttl_seconds must be positive")
    expiry = int(time.time() if now is None else now) + ttl_seconds
    username = f"{expiry}:{participant_id}"
    digest = hmac.new(secret.encode(), username.encode(), hashlib.sha1).digest()
    return username, base64.b64encode(digest).decode("ascii")


def transport_rank(url: str) -> int:
    """Where a TURN URL goes in the list: UDP first (the cheapest relay, and what aiortc and
    most networks take), then TCP (networks that drop UDP), then TLS (proxies that pass only
    TLS, usually on 443). A `turn:` URL without a transport is UDP (RFC 7065)."""
    if url.startswith("turns:"):
        return 2
    if "transport=tcp" in url.partition("?")[2].lower():
        return 1
    return 0


def client_ice_servers(
    participant_id: ParticipantId,
    *,
    stun_urls: Sequence[str],
    turn_urls: Sequence[str],
    turn_secret: str | None,
    ttl_seconds: int,
    now: float | None = None,
) -> tuple[IceServer, ...]:
    """The ICE servers a participant's browser gets: STUN as is, then TURN over UDP, TCP and
    TLS (`transport_rank`; the configured order within a rank), with a credential minted now,
    so each join (a reconnect too) carries one that lives `ttl_seconds` from then.

    TURN URLs without a secret are left out: a TURN server without credentials refuses anyway.
    """
    servers: list[IceServer] = []
    if stun_urls:
        servers.append(IceServer(urls=tuple(stun_urls)))
    if turn_urls and turn_secret:
        username, credential = turn_credential(turn_secret, participant_id, ttl_seconds, now)
        ordered = tuple(sorted(turn_urls, key=transport_rank))
        servers.append(IceServer(urls=ordered, username=username, credential=credential))
    return tuple(servers)


def as_json(servers: Sequence[IceServer]) -> list[dict[str, object]]:
    """The `RTCIceServer` dictionaries a browser's RTCPeerConnection takes."""
    out: list[dict[str, object]] = []
    for server in servers:
        entry: dict[str, object] = {"urls": list(server.urls)}
        if server.username is not None:
            entry["username"] = server.username
            entry["credential"] = server.credential
        out.append(entry)
    return out


def rtc_ice_servers(servers: Sequence[IceServer]) -> list[RTCIceServer]:
    """aiortc's form; always a list, never None (None means a public Google STUN server)."""
    return [
        RTCIceServer(urls=list(s.urls), username=s.username, credential=s.credential)
        for s in servers
    ]


def offer_ice_servers(config: MediaConfig, participant_id: ParticipantId) -> tuple[IceServer, ...]:
    """The participant's ICE servers to send with an offer (none unless configured)."""
    supplier = config.client_ice_servers
    return () if supplier is None else supplier(participant_id)


def sfu_ice_servers(
    config: MediaConfig, participant_id: ParticipantId, now: float | None = None
) -> list[RTCIceServer]:
    """What one of the SFU's peer connections (the one serving `participant_id`) is given:
    the configured STUN servers and, with `config.turn`, TURN with a credential minted now
    (named `sfu.<participant id>` in coturn's log, apart from the participant's own)."""
    servers = list(config.ice_servers)
    if config.turn is not None:
        username, credential = turn_credential(
            config.turn.secret, ParticipantId(f"sfu.{participant_id}"), config.turn.ttl_seconds, now
        )
        urls = tuple(sorted(config.turn.urls, key=transport_rank))
        servers.append(IceServer(urls=urls, username=username, credential=credential))
    return rtc_ice_servers(servers)
