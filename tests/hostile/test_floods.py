"""Floods, bounded in count and time: REST past the per-key and per-participant budgets (429
`rate_limited` with Retry-After, other callers unaffected), socket events past the per-socket
budget, reserved names and oversized messages in bulk. The limiter's memory stays bounded."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest
import pytest_asyncio
from sqlalchemy import func, select

from server.api.context import SERVICES
from server.db.models import AuditEvent
from tests.conftest import new_platform
from tests.hostile.conftest import Stage, ack_code, close_stage, open_stage, refused

pytestmark = pytest.mark.asyncio(loop_scope="module")
NARROW: dict[str, Any] = {
    "api_key_requests_per_second": 2,
    "api_key_request_burst": 5,
    "join_token_requests_per_second": 0.5,
    "join_token_request_burst": 5,
    "socket_events_per_second": 5,
    "socket_event_burst": 10,
    "socket_max_message_bytes": 8192,
}


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def narrow(
    stage_database: str, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[Stage]:
    built, _client = await open_stage(
        tmp_path_factory.mktemp("narrow"), stage_database, in_room=True, **NARROW
    )
    yield built
    await close_stage(built)


async def last_audit_id(stage: Stage) -> int:
    async with stage.services.db.sessions() as session:
        return int(await session.scalar(select(func.max(AuditEvent.id))) or 0)


async def audit_actions_after(stage: Stage, event_id: int) -> list[str]:
    async with stage.services.db.sessions() as session:
        rows = await session.scalars(
            select(AuditEvent.action).where(AuditEvent.id > event_id).order_by(AuditEvent.id)
        )
        return list(rows)


async def wait_until_served(stage: Stage, call: Any, within: float = 15.0) -> None:
    """Retry after the advertised Retry-After until the call succeeds (deadline-bound)."""
    async with asyncio.timeout(within):
        while True:
            answer = await call()
            if answer.status < 400:
                return
            refused(answer, 429, "rate_limited")
            await asyncio.sleep(int(answer.headers["Retry-After"]))


async def test_rest_flood_with_an_api_key(narrow: Stage) -> None:
    before = await narrow.snapshot()
    path = narrow.consult_path

    async def read() -> Any:
        return await narrow.api.call("GET", path, bearer=narrow.platform.secret)

    answers = await asyncio.gather(*(read() for _ in range(30)))
    limited = [a for a in answers if a.status == 429]
    assert limited
    assert len(answers) - len(limited) <= NARROW["api_key_request_burst"] + 2
    for answer in limited:
        refused(answer, 429, "rate_limited")
        assert int(answer.headers["Retry-After"]) >= 1
    # Another platform's key has its own budget ...
    other = await new_platform(narrow.client.app[SERVICES], "Other Health")
    mark = await narrow.snapshot()
    last_event = await last_audit_id(narrow)
    answer = await narrow.api.call("GET", "/api/v1/consults/c_none", bearer=other.secret)
    refused(answer, 404, "consult_not_found")
    # ... participants too, and the flooding key is served again once it waits.
    session = await narrow.api.call("GET", path + "/session", bearer=narrow.token("therapist"))
    assert session.status == 200
    await wait_until_served(narrow, read)
    # Nothing changed but the audit trail of the reads that were served (every PHI read is
    # audited; a refused one writes nothing).
    after = await narrow.snapshot()
    assert {k: v for k, v in after.items() if k != "audit_events"} == {
        k: v for k, v in mark.items() if k != "audit_events"
    }
    added = await audit_actions_after(narrow, last_event)
    assert added[0] == "session.read"
    assert set(added[1:]) == {"consult.read"}
    assert before != mark  # only the other platform was added


async def test_rest_flood_with_a_join_token_and_a_fresh_token(narrow: Stage) -> None:
    path = narrow.consult_path + "/session"

    async def read(token: str) -> Any:
        return await narrow.api.call("GET", path, bearer=token)

    # A second token of the same participant, minted before the flood ...
    minted = await narrow.api.call(
        "POST",
        f"{narrow.consult_path}/participants/{narrow.pid('client')}/tokens",
        bearer=narrow.platform.secret,
    )
    if minted.status == 429:  # the platform's own budget may still be spent from above
        await wait_until_served(
            narrow,
            lambda: narrow.api.call("GET", narrow.consult_path, bearer=narrow.platform.secret),
        )
        minted = await narrow.api.call(
            "POST",
            f"{narrow.consult_path}/participants/{narrow.pid('client')}/tokens",
            bearer=narrow.platform.secret,
        )
    assert minted.status == 201, minted.body
    token = narrow.token("client")
    answers = await asyncio.gather(*(read(token) for _ in range(30)))
    assert any(a.status == 429 for a in answers)
    assert {a.status for a in answers} <= {200, 429}
    # ... shares the budget: it is keyed by participant, not by token.
    refused(await read(minted.body["token"]), 429, "rate_limited")
    # The psychiatrist is unaffected.
    assert (await read(narrow.token("psychiatrist"))).status == 200
    await wait_until_served(narrow, lambda: read(token))


async def test_socket_event_flood(narrow: Stage) -> None:
    before = await narrow.snapshot()
    therapist = narrow.sockets["therapist"]
    acks = await asyncio.gather(
        *(therapist.call("media-state", {"audio": True, "video": True}) for _ in range(60))
    )
    outcomes = {"ok" if a["ok"] else a["error"]["code"] for a in acks}
    assert outcomes == {"ok", "rate_limited"}
    assert await narrow.snapshot() == before
    await recovered(narrow)


async def test_reserved_name_flood(narrow: Stage) -> None:
    therapist, psychiatrist = narrow.sockets["therapist"], narrow.sockets["psychiatrist"]
    mark = len(psychiatrist.events)
    acks = await asyncio.gather(
        *(
            therapist.sio.call("disconnect", None, namespace="/consult", timeout=10)
            for _ in range(40)
        )
    )
    assert {ack_code(a) for a in acks} <= {"unknown_event", "rate_limited"}
    assert not therapist.disconnected
    assert not [n for n, _ in psychiatrist.events[mark:] if n == "peer-left"]
    await recovered(narrow)


async def test_unknown_event_flood(narrow: Stage) -> None:
    therapist = narrow.sockets["therapist"]
    acks = await asyncio.gather(*(therapist.call(f"e{i}", {}) for i in range(40)))
    codes = [ack_code(a) for a in acks]
    assert set(codes) <= {"unknown_event", "rate_limited"}
    assert "rate_limited" in codes
    await recovered(narrow)


async def test_oversized_messages_close_only_their_socket(narrow: Stage) -> None:
    before = await narrow.snapshot()
    extra = narrow.room_client("psychiatrist")
    await extra.connect()
    try:
        for _ in range(5):
            await extra.sio.emit("media-state", {"pad": "x" * 20_000}, namespace="/consult")
        await extra.wait_disconnected()
    finally:
        await extra.close()
    assert await narrow.snapshot() == before
    await recovered(narrow)


async def test_connect_flood(narrow: Stage) -> None:
    """Forty sockets connect at once with a refused token and one with a good one: each gets
    its answer and the room goes on."""
    bad = [narrow.room_client("client", "not-a-jwt") for _ in range(40)]
    try:
        results = await asyncio.gather(*(s.connect() for s in bad), return_exceptions=True)
        assert all(isinstance(r, Exception) for r in results)
        assert {s.connect_error["data"]["code"] for s in bad} == {"token_invalid"}
    finally:
        for socket in bad:
            await socket.close()
    await recovered(narrow)


async def recovered(stage: Stage, within: float = 15.0) -> None:
    """Once the flooder slows down its socket is served again; the others all along."""
    async with asyncio.timeout(within):
        while True:
            try:
                await stage.socket_still_serves()
                return
            except AssertionError:
                await asyncio.sleep(0.5)
