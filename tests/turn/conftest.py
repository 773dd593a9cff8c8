"""A real coturn on loopback ports for the TURN tests (Debian's `coturn`; `.ci/run` installs it)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests import coturn as coturn_module
from tests.coturn import Coturn, CoturnConfig


@pytest.fixture
async def coturn(tmp_path: Path) -> AsyncIterator[Coturn]:
    """coturn on loopback: UDP, TCP and TLS listeners, relaying only to 127.0.0.1."""
    coturn_module.require()
    async with Coturn.running(tmp_path, CoturnConfig()) as server:
        yield server
