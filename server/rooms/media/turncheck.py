"""`triad check turn`: does the configured TURN server grant an allocation to our credentials?

A real TURN Allocate (aioice's client, as the SFU's peer connections would use it) per URL, with
a credential minted from `TRIAD_TURN_SECRET` like a participant's, then the allocation released.
The answer is a code per URL, never the credential.
"""

from __future__ import annotations

import asyncio
import enum
import ssl
from collections.abc import Sequence
from dataclasses import dataclass

from aioice import stun, turn
from aiortc.rtcicetransport import parse_stun_turn_uri

from server.ids import ParticipantId

from .ice import transport_rank, turn_credential

# The participant id in the credential, so coturn's log tells a check from a consult.
CHECK_ID = ParticipantId("triad-check")
ALLOCATION_LIFETIME = 60


class TurnVerdict(enum.StrEnum):
    ALLOCATED = "allocated"
    UNAUTHORIZED = "unauthorized"  # 401: a wrong secret, or a clock far off coturn's
    REFUSED = "refused"  # another STUN error (403, 437, 486, 508 ...)
    UNREACHABLE = "unreachable"  # no connection (refused, no route, TLS failed)
    TIMEOUT = "timeout"
    UNSUPPORTED = "unsupported"  # not a TURN URL aioice speaks (e.g. turns: over UDP)


@dataclass(frozen=True)
class TurnCheck:
    url: str
    verdict: TurnVerdict
    detail: str = ""  # the STUN error code or the exception type; never a credential

    @property
    def ok(self) -> bool:
        return self.verdict is TurnVerdict.ALLOCATED


async def check_url(
    url: str,
    username: str,
    credential: str,
    *,
    within: float = 5.0,
    tls: ssl.SSLContext | None = None,
) -> TurnCheck:
    """Allocate a relay at `url` and release it."""
    try:
        parsed = parse_stun_turn_uri(url)
    except ValueError:
        return TurnCheck(url, TurnVerdict.UNSUPPORTED, "not a TURN URL")
    secure = parsed["scheme"] == "turns"
    if parsed["scheme"] not in ("turn", "turns") or (secure and parsed["transport"] != "tcp"):
        return TurnCheck(url, TurnVerdict.UNSUPPORTED, "not a TURN URL aioice speaks")
    host, port, transport = parsed["host"], parsed["port"], parsed["transport"]
    client: turn.TurnClientTcpProtocol | turn.TurnClientUdpProtocol | None = None
    try:
        async with asyncio.timeout(within):
            client = await _connect(
                (host, port),
                transport,
                username,
                credential,
                (tls or _default_tls()) if secure else None,
            )
            await client.connect()  # the Allocate
            await client.delete()  # a Refresh with lifetime 0 releases it, then closes
    except stun.TransactionFailed as exc:
        code = exc.response.attributes.get("ERROR-CODE", (0, ""))[0]
        verdict = TurnVerdict.UNAUTHORIZED if code == 401 else TurnVerdict.REFUSED
        return TurnCheck(url, verdict, str(code))
    except (TimeoutError, stun.TransactionTimeout):
        return TurnCheck(url, TurnVerdict.TIMEOUT)
    except (OSError, ConnectionError, ssl.SSLError) as exc:
        return TurnCheck(url, TurnVerdict.UNREACHABLE, type(exc).__name__)
    finally:
        lingering = getattr(client, "transport", None)  # set once connected
        if lingering is not None:
            lingering.close()  # after a refusal or a timeout; closing twice is harmless
    return TurnCheck(url, TurnVerdict.ALLOCATED)


def _default_tls() -> ssl.SSLContext:
    return ssl.create_default_context()  # the system's CAs (SSL_CERT_FILE honoured)


async def _connect(
    server: tuple[str, int],
    transport: str,
    username: str,
    credential: str,
    tls: ssl.SSLContext | None,
) -> turn.TurnClientTcpProtocol | turn.TurnClientUdpProtocol:
    """aioice's TURN client protocol on a fresh TCP (or TLS) connection or UDP socket."""
    loop = asyncio.get_running_loop()
    args = (server, username, credential, ALLOCATION_LIFETIME, ALLOCATION_LIFETIME)
    if transport == "tcp":
        _, stream = await loop.create_connection(
            lambda: turn.TurnClientTcpProtocol(*args),
            host=server[0],
            port=server[1],
            ssl=tls,
        )
        return stream
    _, datagram = await loop.create_datagram_endpoint(
        lambda: turn.TurnClientUdpProtocol(*args), remote_addr=server
    )
    return datagram


async def check_turn(
    urls: Sequence[str],
    secret: str,
    ttl_seconds: int,
    *,
    within: float = 5.0,
    tls: ssl.SSLContext | None = None,
) -> list[TurnCheck]:
    """Every URL in the order clients get them, one after another (each has its own timeout)."""
    username, credential = turn_credential(secret, CHECK_ID, ttl_seconds)
    return [
        await check_url(url, username, credential, within=within, tls=tls)
        for url in sorted(urls, key=transport_rank)
    ]
