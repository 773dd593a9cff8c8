"""Which publication an arriving packet belongs to, when a publisher sends its camera and its
shared screen with the same payload types on one transport: by the SSRCs its answer named, by
the MID it carries, by a payload type only one publication has; never a stray stream onto a
declared one."""

from __future__ import annotations

import struct

from server.ids import ParticipantId
from server.rooms.media import rtp
from server.rooms.media.codecs import NegotiatedTrack
from server.rooms.media.ingress import Ingress
from server.rooms.media.router import Route, Router
from server.rooms.media.stats import Counters, TrackName

P = ParticipantId("p_pub")
MID_ID = 1
CAMERA_SSRC, CAMERA_RTX, SCREEN_SSRC, SCREEN_RTX = 0x1000, 0x1001, 0x2000, 0x2001


def track(
    kind: str, mid: str, pt: int, rtx: int = 0, ssrc: int = 0, rtx_ssrc: int = 0
) -> NegotiatedTrack:
    clock = 48000 if kind == "audio" else 90000
    return NegotiatedTrack(
        kind,  # type: ignore[arg-type]
        mid,
        pt,
        clock,
        rtx_payload_type=rtx,
        mid_id=MID_ID,
        ssrc=ssrc,
        rtx_ssrc=rtx_ssrc,
    )


def publications(*, declared: bool) -> dict[TrackName, Ingress]:
    counters = Counters()
    found: dict[TrackName, Ingress] = {
        "audio": Ingress(P, "audio", counters, 1.0),
        "video": Ingress(P, "video", counters, 1.0),
        "screen": Ingress(P, "video", counters, 1.0, screen=True),
    }
    found["audio"].track = track("audio", "0", 111, ssrc=0x3000 if declared else 0)
    found["video"].track = track(
        "video", "1", 97, 98, *((CAMERA_SSRC, CAMERA_RTX) if declared else (0, 0))
    )
    found["screen"].track = track(
        "video", "6", 97, 98, *((SCREEN_SSRC, SCREEN_RTX) if declared else (0, 0))
    )
    return found


def packet(ssrc: int, pt: int, mid: str | None = None) -> tuple[bytes, rtp.RtpView]:
    first, ext = 0x80, b""
    if mid is not None:
        first |= 0x10
        ext = rtp.one_byte_extension_block([(MID_ID, mid.encode())])
    data = struct.pack("!BBHII", first, pt, 1, 1, ssrc) + ext + b"\x10\x00"
    view = rtp.read(data)
    assert view is not None
    return data, view


def routed(
    router: Router, pubs: dict[TrackName, Ingress], ssrc: int, pt: int, mid: str | None = None
) -> Route | None:
    data, view = packet(ssrc, pt, mid)
    return router.route(data, view, pubs)


def test_the_answers_ssrcs_tell_the_camera_from_the_screen() -> None:
    pubs = publications(declared=True)
    router = Router()
    for ingress in pubs.values():
        assert ingress.track is not None
        router.declare(ingress, ingress.track)
    assert routed(router, pubs, CAMERA_SSRC, 97) == Route(pubs["video"], False)
    assert routed(router, pubs, SCREEN_SSRC, 97) == Route(pubs["screen"], False)
    assert routed(router, pubs, SCREEN_RTX, 98) == Route(pubs["screen"], True)
    assert routed(router, pubs, CAMERA_RTX, 98) == Route(pubs["video"], True)
    assert routed(router, pubs, 0x3000, 111) == Route(pubs["audio"], False)
    # A known SSRC with another stream's payload type is refused, not re-routed.
    assert routed(router, pubs, SCREEN_SSRC, 111) is None
    assert routed(router, pubs, CAMERA_SSRC, 98) is None
    # An SSRC nobody declared, without a MID: VP8 is the camera's and the screen's, and both
    # are declared, so it is nobody's (a stray stream never becomes the camera).
    assert routed(router, pubs, 0x0BADF00D, 97) is None


def test_an_undeclared_stream_is_bound_by_its_mid_and_one_ssrc_per_stream_is_kept() -> None:
    pubs = publications(declared=False)
    router = Router()
    # Without a MID and with two VP8 publications, a packet is nobody's ...
    assert routed(router, pubs, 0x5000, 97) is None
    # ... with one, its SSRC is bound to that m-line from then on.
    assert routed(router, pubs, 0x5000, 97, mid="6") == Route(pubs["screen"], False)
    assert routed(router, pubs, 0x5000, 97) == Route(pubs["screen"], False)
    assert routed(router, pubs, 0x5001, 98, mid="6") == Route(pubs["screen"], True)
    assert routed(router, pubs, 0x6000, 97, mid="1") == Route(pubs["video"], False)
    # A MID naming no publication, or a payload type its line does not carry: refused.
    assert routed(router, pubs, 0x7000, 97, mid="9") is None
    assert routed(router, pubs, 0x7000, 111, mid="6") is None
    # A new SSRC for the screen replaces the old one: the table stays one per stream.
    assert routed(router, pubs, 0x5002, 97, mid="6") == Route(pubs["screen"], False)
    assert routed(router, pubs, 0x5000, 97) is None
    assert len(router._learnt) == 3
    # Audio's payload type is its alone: routed without an SSRC or MID, and not cached.
    assert routed(router, pubs, 0x8000, 111) == Route(pubs["audio"], False)
    assert 0x8000 not in router._learnt


def test_a_stopped_share_is_forgotten_and_its_packets_reach_nobody() -> None:
    pubs = publications(declared=True)
    router = Router()
    for ingress in pubs.values():
        assert ingress.track is not None
        router.declare(ingress, ingress.track)
    screen = pubs.pop("screen")
    router.forget(screen)
    assert routed(router, pubs, SCREEN_SSRC, 97) is None
    assert routed(router, pubs, SCREEN_SSRC, 97, mid="6") is None
    assert routed(router, pubs, CAMERA_SSRC, 97) == Route(pubs["video"], False)
