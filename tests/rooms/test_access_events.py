"""The access-events bus: events validate themselves, decode only what was encoded, and a
failing subscriber does not starve the others."""

from __future__ import annotations

import io
import json
import math

import pytest

from server.consults.access_events import (
    AccessChange,
    AccessEvent,
    LocalAccessEvents,
)
from server.ids import KeyId, ParticipantId

P = ParticipantId("p_abc")


def test_an_event_round_trips() -> None:
    for event in (
        AccessEvent(AccessChange.TOKENS_REVOKED, 1700000000.25, participant_id=P),
        AccessEvent(AccessChange.PARTICIPANT_REMOVED, 1.0, participant_id=P),
        AccessEvent(AccessChange.API_KEY_REVOKED, 2.0, key_id=KeyId("k_1")),
    ):
        assert AccessEvent.decode(event.encode()) == event


@pytest.mark.parametrize(
    "raw",
    [
        pytest.param(b"", id="empty"),
        pytest.param(b"{", id="truncated"),
        pytest.param(b"[1]", id="not-an-object"),
        pytest.param(b'{"change":"tokens_revoked","at":1}', id="no-participant"),
        pytest.param(b'{"change":"api_key_revoked","at":1,"participant_id":"p"}', id="no-key"),
        pytest.param(b'{"change":"grant_all","at":1,"participant_id":"p"}', id="unknown-change"),
        pytest.param(b'{"change":"tokens_revoked","at":"1","participant_id":"p"}', id="at-text"),
        pytest.param(b'{"change":"tokens_revoked","at":true,"participant_id":"p"}', id="at-bool"),
        pytest.param(b'{"change":"tokens_revoked","at":1e999,"participant_id":"p"}', id="at-inf"),
        pytest.param(b'{"change":"tokens_revoked","at":1,"participant_id":5}', id="id-number"),
        pytest.param(
            b'{"change":"tokens_revoked","at":1,"participant_id":"' + b"p" * 200 + b'"}',
            id="id-long",
        ),
        pytest.param(b'{"change":"tokens_revoked","at":1,"participant_id":"p","x":1}', id="extra"),
        pytest.param(b" " * 2000, id="oversized"),
    ],
)
def test_anything_else_does_not_decode(raw: bytes) -> None:
    with pytest.raises((ValueError, TypeError)):
        AccessEvent.decode(raw)


def test_events_refuse_nonsense_on_construction() -> None:
    with pytest.raises(ValueError, match="finite"):
        AccessEvent(AccessChange.TOKENS_REVOKED, math.nan, participant_id=P)
    with pytest.raises(ValueError, match="key_id"):
        AccessEvent(AccessChange.API_KEY_REVOKED, 1.0, participant_id=P)


async def test_a_failing_subscriber_does_not_starve_the_others(log_stream: io.StringIO) -> None:
    bus = LocalAccessEvents()
    seen: list[AccessEvent] = []

    async def broken(_event: AccessEvent) -> None:
        raise RuntimeError("a subscriber's own fault")

    async def record(event: AccessEvent) -> None:
        seen.append(event)

    bus.subscribe(broken)
    unsubscribe = bus.subscribe(record)
    event = AccessEvent(AccessChange.TOKENS_REVOKED, 1.0, participant_id=P)
    await bus.publish(event)
    assert seen == [event]
    failed = [json.loads(x) for x in log_stream.getvalue().splitlines() if "listener_failed" in x]
    assert [f["error"] for f in failed] == ["RuntimeError"]
    assert "own fault" not in log_stream.getvalue()  # the type, never the message
    unsubscribe()
    unsubscribe()  # twice is harmless
    await bus.publish(event)
    assert seen == [event]
    await bus.close()
