"""`rotate` writes with compare-and-set: a value a server rewrote between the rotation's read
and its write is kept as the server wrote it, not overwritten with the older plaintext."""

from __future__ import annotations

import base64
import secrets
import sqlite3
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import insert, select

from server.consults import platforms
from server.crypto import KeyRing, sealed_kid
from server.db.engine import Database
from server.db.models import ApiKey, Platform
from server.db.sealing import SealedColumn
from server.ops.keys import RotationLimits, rotate
from tests.conftest import TEST_KEY
from tests.databases import sqlite_copy

KEY_B = "k2:" + base64.b64encode(secrets.token_bytes(32)).decode()


async def test_a_value_rewritten_meanwhile_is_left_as_written(
    tmp_path: Path, sqlite_template_path: Path
) -> None:
    url = sqlite_copy(sqlite_template_path, tmp_path)
    path = url.removeprefix("sqlite+aiosqlite:///")
    old_ring, new_ring = KeyRing.parse(TEST_KEY), KeyRing.parse(f"{KEY_B},{TEST_KEY}")
    aad = platforms.SEALED_COLUMNS[0].aad
    now = datetime.now(UTC)
    db = Database(url)
    try:
        async with db.engine.begin() as conn:
            await conn.execute(insert(Platform).values(id="pf_1", name="Acme", created_at=now))
            for key_id in ("key_a", "key_b"):
                await conn.execute(
                    insert(ApiKey).values(
                        id=key_id,
                        platform_id="pf_1",
                        secret_digest=secrets.token_bytes(32),
                        secret_sealed=old_ring.seal(b"first", aad(key_id)),
                        created_at=now,
                    )
                )

        def server_writes_meanwhile(key_id: str) -> bytes:
            """Called as the rotation reads each row: a server rewrites key_b on its own
            connection (as a node with the new ring would) before the rotation writes."""
            if key_id == "key_b":
                with sqlite3.connect(path) as server:
                    server.execute(
                        "UPDATE api_keys SET secret_sealed = ? WHERE id = ?",
                        (new_ring.seal(b"second", aad(key_id)), key_id),
                    )
            return aad(key_id)

        racing = SealedColumn("api_keys", "secret_sealed", ("id",), server_writes_meanwhile)
        report = await rotate(db, new_ring, [racing], RotationLimits())
        assert (report.resealed, report.changed_meanwhile, report.unopenable) == (1, 1, 0)

        async with db.engine.connect() as conn:
            rows = dict((await conn.execute(select(ApiKey.id, ApiKey.secret_sealed))).all())
        assert {sealed_kid(v) for v in rows.values()} == {"k2"}
        only_b = KeyRing.parse(KEY_B)
        assert only_b.open(rows["key_a"], aad("key_a")) == b"first"
        assert only_b.open(rows["key_b"], aad("key_b")) == b"second"  # the server's value
    finally:
        await db.close()
