"""Media-plane configuration: one immutable value per server, validated on construction."""

from __future__ import annotations

import ipaddress
from collections.abc import Callable
from dataclasses import dataclass, field

from server.ids import ParticipantId

_ICE_SCHEMES = ("stun:", "stuns:", "turn:", "turns:")


@dataclass(frozen=True)
class IceServer:
    """One STUN or TURN server, as in the WebRTC `RTCIceServer` dictionary."""

    urls: tuple[str, ...]
    username: str | None = None
    credential: str | None = None

    def __post_init__(self) -> None:
        if isinstance(self.urls, str) or not self.urls:
            raise ValueError("IceServer.urls must be a non-empty tuple of URLs")
        for url in self.urls:
            if not isinstance(url, str) or not url.startswith(_ICE_SCHEMES):
                raise ValueError(f"IceServer url {url!r} is not a stun:/stuns:/turn:/turns: URL")
        if (self.username is None) != (self.credential is None):
            raise ValueError("IceServer username and credential go together")


@dataclass(frozen=True)
class TurnAccess:
    """The SFU's own TURN server: its URLs and coturn's shared secret, from which each of the
    SFU's peer connections mints a credential when it is made (so none outlives its TTL)."""

    urls: tuple[str, ...]
    secret: str = field(repr=False)
    ttl_seconds: int = 3600

    def __post_init__(self) -> None:
        IceServer(urls=self.urls)  # the same URL checks
        if not all(url.startswith(("turn:", "turns:")) for url in self.urls):
            raise ValueError("TurnAccess.urls must be turn: or turns: URLs")
        if not self.secret:
            raise ValueError("TurnAccess needs coturn's shared secret")
        if not 60 <= self.ttl_seconds <= 24 * 3600:
            raise ValueError("TurnAccess.ttl_seconds must be between 60 and 86400")


@dataclass(frozen=True)
class MediaConfig:
    """What the SFU needs to know; built by the app from `Settings`.

    `ice_servers` is always handed to aiortc, even when empty: aiortc falls back to a public
    Google STUN server when it is given None, which would leak traffic off the host.
    """

    # Advertised (and bound) host candidates. Empty means every non-loopback interface, aioice's
    # default; naming 127.0.0.1 is how tests and benches stay on loopback.
    host_addresses: tuple[str, ...] = ()
    udp_port_min: int | None = None
    udp_port_max: int | None = None
    ice_servers: tuple[IceServer, ...] = ()
    # TURN for the SFU's own peer connections (None: they gather host and STUN candidates only).
    turn: TurnAccess | None = None
    # A participant's own ICE servers (their browser's), sent with each offer: a new peer
    # connection then has a TURN credential minted for it. None: offers carry none.
    client_ice_servers: Callable[[ParticipantId], tuple[IceServer, ...]] | None = None
    # Minimum seconds between keyframe requests (PLI) sent to one publisher: encoders answer
    # about once a second anyway, and each keyframe is ~10x a delta frame on the wire.
    keyframe_request_interval: float = 1.0
    max_sdp_bytes: int = 64 * 1024
    # REMB toward publishers (aiortc's receive-side estimate of the publisher's uplink). Off
    # saves ~9% CPU per packet; browsers then adapt from the loss in receiver reports only.
    publisher_remb: bool = True
    # Frames a subscriber may fall behind before it is resynced at the next keyframe (video)
    # or loses its oldest frames (audio). ~1 s at 30 fps / 50 packets per second.
    max_queued_video_frames: int = 30
    max_queued_audio_frames: int = 50
    # Remote ICE candidates (see candidates.py): how many per peer connection, and whether
    # private addresses may be named when the host addresses are not themselves private.
    max_remote_candidates: int = 32
    allow_private_candidates: bool = False

    def __post_init__(self) -> None:
        if isinstance(self.host_addresses, str):
            raise ValueError("host_addresses must be a tuple of IP addresses, not a string")
        for address in self.host_addresses:
            try:
                ipaddress.ip_address(address)
            except ValueError:
                raise ValueError(f"host address {address!r} is not an IP address") from None
        if (self.udp_port_min is None) != (self.udp_port_max is None):
            raise ValueError("udp_port_min and udp_port_max must be set together")
        if (
            self.udp_port_min is not None
            and self.udp_port_max is not None
            and not 1024 <= self.udp_port_min <= self.udp_port_max <= 65535
        ):
            raise ValueError("UDP port range must satisfy 1024 <= min <= max <= 65535")
        for server in self.ice_servers:
            if not isinstance(server, IceServer):
                raise ValueError("ice_servers must hold IceServer values")
        if self.turn is not None and not isinstance(self.turn, TurnAccess):
            raise ValueError("turn must be a TurnAccess")
        if not 0 < self.keyframe_request_interval <= 60:
            raise ValueError("keyframe_request_interval must be in (0, 60] seconds")
        if not 1024 <= self.max_sdp_bytes <= 1024 * 1024:
            raise ValueError("max_sdp_bytes must be between 1 KiB and 1 MiB")
        if self.max_queued_video_frames < 2 or self.max_queued_audio_frames < 2:
            raise ValueError("subscriber queues must hold at least 2 frames")
        if not 1 <= self.max_remote_candidates <= 1000:
            raise ValueError("max_remote_candidates must be between 1 and 1000")

    @property
    def port_range(self) -> tuple[int, int] | None:
        if self.udp_port_min is None or self.udp_port_max is None:
            return None
        return (self.udp_port_min, self.udp_port_max)
