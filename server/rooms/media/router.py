"""Which of a participant's publications an arriving RTP packet belongs to.

A publisher sending its camera and its shared screen sends two VP8 streams with the same payload
types on one bundled transport, so the payload type alone no longer says which is which. As
libwebrtc's demuxer does (RFC 8843 9.2), a packet is routed by its SSRC when that is known (the
answer's `a=ssrc` lines and `ssrc-group:FID` name each m-line's media and RTX SSRCs), else by
the `sdes:mid` header extension it carries (the SSRC is then bound to that m-line: browsers stop
sending the MID once their SSRC is acknowledged), else by a payload type that only one
publication has, and only for a stream whose SSRC the answer did not name (not cached: a stray
packet must not take over a route; a stopped share's packets never reach the camera). Everything
here is the publisher's own and bounded: one learnt SSRC per stream of each publication.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, NamedTuple

from . import rtp

if TYPE_CHECKING:
    from .codecs import NegotiatedTrack
    from .ingress import Ingress
    from .stats import TrackName

Publications = Mapping["TrackName", "Ingress"]


class Route(NamedTuple):
    ingress: Ingress
    rtx: bool  # the publication's RTX stream (retransmissions, padding)


class Router:
    def __init__(self) -> None:
        self._declared: dict[int, Route] = {}  # from the answer
        self._learnt: dict[int, Route] = {}  # from a packet's MID

    def declare(self, ingress: Ingress, track: NegotiatedTrack) -> None:
        """The SSRCs the publisher's answer gave this publication's m-line (none: learn
        them)."""
        self.forget(ingress)
        if track.ssrc:
            self._declared[track.ssrc] = Route(ingress, False)
        if track.rtx_ssrc and track.rtx_payload_type:
            self._declared[track.rtx_ssrc] = Route(ingress, True)

    def forget(self, ingress: Ingress) -> None:
        for table in (self._declared, self._learnt):
            for ssrc in [s for s, route in table.items() if route.ingress is ingress]:
                del table[ssrc]

    def route(self, packet: bytes, view: rtp.RtpView, publications: Publications) -> Route | None:
        """The publication and stream of a packet, or None (refused)."""
        ssrc = view.ssrc
        found = self._declared.get(ssrc) or self._learnt.get(ssrc)
        if found is not None:
            return found if _carries(found, view.payload_type) else None
        mid = _mid(packet, view, publications)
        if mid is not None:  # the packet says which m-line it is: that decides
            found = next(
                (
                    route
                    for ingress in publications.values()
                    if ingress.track is not None and ingress.track.mid == mid
                    for route in (Route(ingress, False), Route(ingress, True))
                    if _carries(route, view.payload_type)
                ),
                None,
            )
            if found is not None:
                for learnt, route in list(self._learnt.items()):
                    if route == found:  # a new SSRC for this stream replaces the old one
                        del self._learnt[learnt]
                self._learnt[ssrc] = found
            return found
        declared = self._declared.values()
        candidates = [
            route
            for ingress in publications.values()
            for route in (Route(ingress, False), Route(ingress, True))
            if _carries(route, view.payload_type) and route not in declared
        ]
        return candidates[0] if len(candidates) == 1 else None


def _mid(packet: bytes, view: rtp.RtpView, publications: Publications) -> str | None:
    """The MID header extension's value (None: the packet carries none)."""
    ids = {i.track.mid_id for i in publications.values() if i.track is not None}
    for mid_id in ids - {0}:
        found = rtp.find_extension(packet, view, mid_id)
        if found is not None:
            start, length = found
            return packet[start : start + length].decode("ascii", "replace")
    return None


def _carries(route: Route, payload_type: int) -> bool:
    track = route.ingress.track
    if track is None:
        return False
    if route.rtx:
        return track.rtx_payload_type != 0 and payload_type == track.rtx_payload_type
    return payload_type == track.payload_type
