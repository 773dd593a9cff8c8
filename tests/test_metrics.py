"""`/metrics`: Prometheus's text format (read by prometheus-client's parser), counting HTTP
requests by route pattern, the media plane's batches and peer states; who may read it is
`test_metrics_access.py`, a consult moving it `rooms/test_metrics_consult.py`, two workers
`cluster/test_metrics_workers.py`."""

from __future__ import annotations

import secrets

from server.metrics import PEER_STATES, REGISTRY
from server.rooms.media import metering
from server.rooms.media.metering import PeerStateMeter
from server.rooms.media.stats import TALLY
from tests.apiclient import Api
from tests.metricsread import Scrape, label_problems, parse

ROUTE = "/api/v1/consults/{consult_id}"


async def scrape(api: Api, **headers: str) -> Scrape:
    answer = await api.call("GET", "/metrics", headers=headers)
    assert answer.status == 200, answer.body
    assert answer.headers["Content-Type"].startswith("text/plain; version=0.0.4")
    return parse(answer.body.decode())


async def test_the_exposition_parses_and_names_only_triad_metrics(api: Api) -> None:
    scrape_ = await scrape(api)
    names = {name for name, _ in scrape_.samples}
    assert names, "nothing exported"
    assert all(name.startswith("triad_") for name in names), names
    for family in (
        "triad_rooms",
        "triad_participants",
        "triad_socket_joins_total",
        "triad_notes_updates_total",
        "triad_notes_apply_seconds_count",
        "triad_notes_fanout_seconds_count",
        "triad_media_forwarded_packets_total",
        "triad_media_forwarded_frames_total",
        "triad_media_dropped_frames_total",
        "triad_media_keyframe_requests_total",
        "triad_peer_connections",
        "triad_webhook_deliveries_total",
        "triad_webhook_outbox_oldest_age_seconds",
    ):
        assert family in names, family
    assert label_problems(scrape_) == []


async def test_http_requests_count_by_route_pattern_never_the_path(api: Api) -> None:
    before = await scrape(api)
    consult = "c_" + secrets.token_urlsafe(12)
    for _ in range(3):
        answer = await api.call("GET", f"/api/v1/consults/{consult}", validate=False)
        assert answer.status == 401  # no API key
    await api.call("GET", f"/nothing/here/{consult}", validate=False)
    await api.call("PROPFIND", "/healthz", validate=False)  # WebDAV: no route of ours
    after = await scrape(api)
    name = "triad_http_requests_total"
    assert after.value(name, method="GET", route=ROUTE, status="401") == (
        before.value(name, method="GET", route=ROUTE, status="401") + 3
    )
    assert after.value(name, method="GET", route="unmatched", status="404") == (
        before.value(name, method="GET", route="unmatched", status="404") + 1
    )
    # A made-up method is `other`: callers cannot mint series.
    assert after.total(name, method="other") == before.total(name, method="other") + 1
    assert consult not in after.text
    assert label_problems(after) == []


def test_a_peer_connection_counts_once_under_its_state_until_closed() -> None:
    def counted() -> dict[str, float]:
        return {
            state: REGISTRY.get_sample_value("triad_peer_connections", {"state": state}) or 0.0
            for state in PEER_STATES
        }

    before = counted()
    meter = PeerStateMeter()
    for state in ("connecting", "connecting", "connected"):  # aiortc may repeat a state
        meter.move(state)
    during = counted()
    assert {s: during[s] - before[s] for s in PEER_STATES} == {
        "new": 0,
        "connecting": 0,
        "connected": 1,
        "failed": 0,
    }
    meter.move("closed")  # ours, then aiortc's own
    meter.move("closed")
    assert counted() == before


def test_the_media_tally_reaches_the_counters_once() -> None:
    def forwarded() -> float:
        return (
            REGISTRY.get_sample_value("triad_media_forwarded_packets_total", {"kind": "audio"})
            or 0.0
        )

    metering.flush()
    before = forwarded()
    TALLY.audio.packets += 7
    metering.flush()
    metering.flush()  # nothing new: nothing added
    assert forwarded() == before + 7
