"""schemathesis (its CLI, every check, every phase) against the OpenAPI document of the real app
on a loopback port, bounded in examples and time, with zero failures.

Known exceptions, which the document cannot say (recorded here as the statuses the checks
accept, not hidden by a check turned off):
- `positive_data_acceptance`: a body valid by the schema can still break a rule the schema
  cannot state, and is then refused with a documented problem: exactly one participant of each
  role (`validation_failed`, 422: the schema says three participants of the three roles, not
  that they differ), answers in range for the instrument (`measure_invalid`, 422), a consult
  already ended (`consult_ended`, 409), a follow-up of an unknown consult
  (`previous_consult_invalid`, 409), the current consent wording (`consent_wording_outdated`,
  409), a role's permissions (`forbidden_role`, 403), something not there yet (`plan_not_found`,
  `brief_not_found`, 404).
- `negative_data_rejection`: a schema-violating body larger than the request limit is refused
  `payload_too_large` (413) before it is parsed, which schemathesis does not list by default.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from server.api.context import SERVICES
from tests.conftest import consult_body, make_settings, new_platform, participant
from tests.databases import sqlite_copy
from tests.hostile.conftest import CONSULTS, WIDE_LIMITS
from tests.hostile.liveserver import LiveServer

MAX_EXAMPLES = 25
MAX_TIME_SECONDS = 90


@pytest.fixture(scope="module")
def live(
    tmp_path_factory: pytest.TempPathFactory, sqlite_template_path: Path
) -> Iterator[LiveServer]:
    tmp = tmp_path_factory.mktemp("schemathesis")
    settings = make_settings(tmp, sqlite_copy(sqlite_template_path, tmp), **WIDE_LIMITS)
    server = LiveServer(settings)
    server.start()
    yield server
    server.stop()


async def _prepare(server: LiveServer) -> dict[str, Any]:
    import aiohttp

    platform = await new_platform(server.app[SERVICES], "Schemathesis Health")
    async with aiohttp.ClientSession() as session:
        consults = []
        for _ in range(2):
            async with session.post(
                server.base_url + CONSULTS,
                json=consult_body(),
                headers={"Authorization": f"Bearer {platform.secret}"},
            ) as response:
                assert response.status == 201
                consults.append(await response.json())
    return {"platform": platform, "consult": consults[0], "spare": consults[1]}


def config(server: LiveServer, made: dict[str, Any]) -> str:
    consult, spare = made["consult"], made["spare"]
    therapist = participant(consult, "therapist")
    spare_client = participant(spare, "client")["id"]
    return f"""
[auth.openapi.apiKey]
bearer = "{made["platform"].secret}"

[auth.openapi.joinToken]
bearer = "{therapist["join"]["token"]}"

# See the module docstring.
[checks.positive_data_acceptance]
expected-statuses = ["2xx", "403", "404", "409", "422"]

[checks.negative_data_rejection]
expected-statuses = ["400", "401", "403", "404", "405", "409", "413", "415", "422", "429"]

[parameters]
consult_id = "{consult["id"]}"
participant_id = "{participant(consult, "client")["id"]}"

# Ending a consult and revoking tokens would end the run's own consult and token for every other
# operation: they act on a spare consult.
[[operations]]
include-operation-id = "endConsult"
parameters = {{ consult_id = "{spare["id"]}" }}

[[operations]]
include-operation-id = "revokeJoinTokens"
parameters = {{ consult_id = "{spare["id"]}", participant_id = "{spare_client}" }}
"""


@pytest.mark.timeout(MAX_TIME_SECONDS * 4)
def test_schemathesis_finds_nothing(live: LiveServer, tmp_path: Path) -> None:
    made = live.run(_prepare(live))
    config_file = tmp_path / "schemathesis.toml"
    config_file.write_text(config(live, made))
    command = [
        str(Path(sys.executable).with_name("schemathesis")),
        "--config-file",
        str(config_file),
        "run",
        f"{live.base_url}/api/v1/openapi.json",
        "--checks",
        "all",
        "--phases",
        "examples,coverage,fuzzing,stateful",
        "--max-examples",
        str(MAX_EXAMPLES),
        "--max-time",
        str(MAX_TIME_SECONDS),
        "--seed",
        "11",
        "--workers",
        "1",
        "--request-timeout",
        "10",
        "--generation-allow-x00",
        "true",
        "--no-color",
        "--warnings",
        "off",
    ]
    env = {**os.environ, "SCHEMATHESIS_HOOKS": "", "NO_COLOR": "1"}
    result = subprocess.run(
        command,
        capture_output=True,
        text=True,
        timeout=MAX_TIME_SECONDS * 3,
        env=env,
        cwd=tmp_path,
        check=False,
    )
    output = result.stdout + result.stderr
    (tmp_path / "schemathesis.out").write_text(output)
    Path(os.environ.get("TRIAD_SCHEMATHESIS_OUT", os.devnull)).write_text(output)
    assert result.returncode == 0, output[-20_000:]
    assert "No issues found" in output, output[-5000:]
    for phase in ("Coverage", "Fuzzing", "Stateful"):
        assert f"✅  {phase}" in output, output[-5000:]
