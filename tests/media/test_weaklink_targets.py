"""Issue 12's weak links, through the real server: a patient on a weak link is still heard,
and the clinicians on good links never pay for it. At 320x240 one clinician's video (about
560 kbit/s from aiortc's encoder) nearly fits the 600 kbit/s downlink with the audio: the
server must keep it paused rather than resume it on a dip in its rate (`Ingress.peak_bitrate`).

Each profile is one consult through `triad serve` with the client behind the userspace link
emulator (`tests/media/linkemu.py`) and every participant a real aiortc peer in its own process
(`tests/media/weaklink.py`). The assertions are on what was delivered in the window (frames
decoded, bytes offered, events received), never on how long anything took. Frames are 320x240
so that the server and three encoding peers fit on the CI machine's two cores; the bench
(`bench/weaklink.py`) runs the same profiles at 640x480.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from tests.media.linkedpeer import PeerOptions
from tests.media.weaklink import PROFILES, HarnessOptions, WeakLinkResult, run_profiles

CLINICIANS = ("therapist", "psychiatrist")
OPTIONS = HarnessOptions(warmup_s=8, window_s=20, peers=PeerOptions(320, 240))


async def measure(
    profile: str, tmp_path: Path, options: HarnessOptions = OPTIONS
) -> WeakLinkResult:
    (result,) = await run_profiles([PROFILES[profile]], options, directory=tmp_path)
    assert result.contract_violations == ()
    return result


def clinicians_unharmed(result: WeakLinkResult) -> None:
    """The two clinicians on good links hear each other fully and are never paused."""
    for role in CLINICIANS:
        other = CLINICIANS[1 - CLINICIANS.index(role)]
        assert result.reception(role, other).audio.fps >= 45, result
        assert result.quality_events(role) == 0, result


@pytest.mark.timeout(180)
async def test_a_300k_uplink_still_carries_the_clients_voice(tmp_path: Path) -> None:
    result = await measure("uplink-300k", tmp_path)
    for clinician in CLINICIANS:
        assert result.reception(clinician, "client").audio.fps >= 45, result
    clinicians_unharmed(result)


@pytest.mark.timeout(240)
async def test_a_600k_downlink_still_hears_both_clinicians_and_sees_them_once_it_heals(
    tmp_path: Path,
) -> None:
    # After the window the link heals; both videos must come back (how soon is the bench's
    # figure, `bench/weaklink.py --recovery`; the deadline here only bounds the wait).
    healing = dataclasses.replace(OPTIONS, recovery_deadline_s=45)
    result = await measure("downlink-600k", tmp_path, healing)
    link_bps = PROFILES["downlink-600k"].downlink.rate_bps
    assert result.offered_to_client_bps <= 1.5 * link_bps, result
    for clinician in CLINICIANS:
        seen = result.reception("client", clinician)
        assert seen.audio.fps >= 45, result
        # Video at a lower rate or a paused tile, never a picture that stops unannounced.
        assert seen.video.freezes == 0 or result.was_paused("client", clinician), result
    clinicians_unharmed(result)
    assert {who for who, _ in result.returned_s} == set(CLINICIANS), result
    assert all(after is not None for _, after in result.returned_s), result


@pytest.mark.timeout(180)
async def test_on_a_lossy_link_the_client_is_heard_and_seen_whole(tmp_path: Path) -> None:
    result = await measure("lossy", tmp_path)
    for clinician in CLINICIANS:
        seen = result.reception(clinician, "client")
        assert seen.audio.fps >= 46, result
        assert seen.video.fps >= 0.9 * OPTIONS.peers.fps, result
        assert seen.video.freezes == 0, result
    clinicians_unharmed(result)
