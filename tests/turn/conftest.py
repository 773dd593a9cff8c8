"""A real coturn on loopback ports for the TURN tests (Debian's `coturn`; `.ci/run` installs it)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests import coturn as coturn_module
from tests.coturn import Coturn, CoturnConfig
from tests.databases import services_required


@pytest.fixture
async def coturn(tmp_path: Path) -> AsyncIterator[Coturn]:
    """coturn on loopback: UDP, TCP and TLS listeners, relaying only to 127.0.0.1."""
    if not coturn_module.available():
        if services_required():
            pytest.fail("turnserver is not installed (apt-get install coturn)")
        pytest.skip("turnserver is not installed")
    async with Coturn.running(tmp_path, CoturnConfig()) as server:
        yield server
