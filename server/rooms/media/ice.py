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

from .config import IceServer


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


def client_ice_servers(
    participant_id: ParticipantId,
    *,
    stun_urls: Sequence[str],
    turn_urls: Sequence[str],
    turn_secret: str | None,
    ttl_seconds: int,
    now: float | None = None,
) -> tuple[IceServer, ...]:
    """The ICE servers a participant's browser gets: STUN as is, TURN with a fresh credential.

    TURN URLs without a secret are left out: a TURN server without credentials refuses anyway.
    """
    servers: list[IceServer] = []
    if stun_urls:
        servers.append(IceServer(urls=tuple(stun_urls)))
    if turn_urls and turn_secret:
        username, credential = turn_credential(turn_secret, participant_id, ttl_seconds, now)
        servers.append(IceServer(urls=tuple(turn_urls), username=username, credential=credential))
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
