"""The server's estimate of a publisher's uplink (the REMB it sends): what it starts from, when
it grows, holds and cuts, and that the audio keeps its share."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from server.rooms.media import uplink
from server.rooms.media.uplink import Uplink


@dataclass
class Publication:
    """What `Uplink.update` reads of an `Ingress`: its kind, bitrate and last loss fraction."""

    kind: str
    bitrate: float
    fraction_lost: float = 0.0


def publisher(audio: float, video: float, loss: float = 0.0) -> list[Publication]:
    return [Publication("audio", audio, loss), Publication("video", video, loss)]


def test_nothing_arrived_yet_means_no_remb() -> None:
    assert Uplink().update(publisher(0, 0), 0.0) is None


def test_it_starts_above_what_arrives_and_leaves_the_audio_its_share() -> None:
    estimate = Uplink()
    remb = estimate.update(publisher(40_000, 260_000), 0.0)
    assert estimate.estimate == pytest.approx(300_000 * 1.5 + 50_000)
    assert remb == pytest.approx(300_000 * 1.5 + 50_000 - 40_000)  # REMB names the video


def test_low_loss_grows_it_heavy_loss_cuts_it_and_between_it_holds() -> None:
    estimate = Uplink()
    estimate.update(publisher(40_000, 260_000), 0.0)
    start = estimate.estimate
    assert start is not None
    estimate.update(publisher(40_000, 600_000), 0.5)  # under 2% loss: about 4% an update
    assert estimate.estimate == pytest.approx(start * uplink.GROWTH)
    grown = estimate.estimate
    estimate.update(publisher(40_000, 600_000, loss=0.05), 1.0)  # 2-10%: hold
    assert estimate.estimate == grown
    estimate.update(publisher(40_000, 200_000, loss=0.30), 1.5)  # a narrow link overflows
    assert estimate.estimate == pytest.approx(240_000 * (1 - 0.30 / 2))
    remb = estimate.update(publisher(40_000, 10_000, loss=0.9), 2.0)
    assert estimate.estimate == uplink.MIN_ESTIMATE  # never asked below a floor
    assert remb == uplink.MIN_ESTIMATE


def test_growth_never_runs_past_half_again_what_arrives_nor_the_ceiling() -> None:
    estimate = Uplink()
    estimate.update(publisher(40_000, 100_000), 0.0)
    for step in range(50):  # a publisher sending little for a long time, no loss
        estimate.update(publisher(40_000, 100_000), step / 2)
    assert estimate.estimate == pytest.approx(140_000 * 1.5 + 50_000)
    for step in range(200):
        estimate.update(publisher(40_000, 5_000_000), 30 + step / 2)
    assert estimate.estimate == uplink.MAX_ESTIMATE
