"""`triad serve --workers N` as real processes: a supervisor and N workers, each on its own
port, restarted when it dies after serving, all stopped together."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import aiohttp
import psutil
import pytest

from server.cluster.entry import ClusterKeys
from tests.cluster.processes import two_worker_node
from tests.ports import free_ports
from tests.waiting import wait_for

DEADLINE = 30.0


def worker_processes(supervisor: psutil.Process) -> dict[int, psutil.Process]:
    """The workers by the port each listens on (the supervisor's other child is
    multiprocessing's resource tracker, which listens on nothing)."""
    found = {}
    for child in supervisor.children():
        try:
            for conn in child.net_connections(kind="tcp"):
                if conn.status == psutil.CONN_LISTEN:
                    found[conn.laddr.port] = child
        except psutil.NoSuchProcess:
            continue
    return found


async def healthy(url: str) -> bool:
    try:
        async with aiohttp.ClientSession() as http, http.get(f"{url}/healthz") as answer:
            return answer.status == 200
    except aiohttp.ClientConnectionError:
        return False


# Three worker starts (a second of CPU each, more on two busy cores) and a stop.
@pytest.mark.timeout(120)
async def test_workers_serve_on_consecutive_ports_restart_and_stop_together(
    tmp_path: Path, cluster_database: str, redis_url: str, keys: ClusterKeys
) -> None:
    async with two_worker_node(tmp_path, cluster_database, redis_url, keys) as server:
        supervisor = server.process
        workers = worker_processes(supervisor)
        assert sorted(workers) == [server.port, server.port + 1]
        assert [await healthy(url) for url in server.worker_urls] == [True, True]

        # kill -9 the second worker: the supervisor starts it again on its port.
        victim = workers[server.port + 1]
        victim.kill()

        async def replaced() -> bool:
            now = worker_processes(supervisor).get(server.port + 1)
            return (
                now is not None and now.pid != victim.pid and await healthy(server.worker_urls[1])
            )

        await wait_for(replaced, DEADLINE, "the second worker started again")
        survivors = list(worker_processes(supervisor).values())
    assert server.returncode == 0
    _, alive = psutil.wait_procs(survivors, timeout=DEADLINE)
    assert alive == []
    listening = [
        json.loads(line)
        for line in server.log_path.read_text().splitlines()
        if line.startswith("{") and '"listening"' in line
    ]
    assert {(e["worker"], e["port"]) for e in listening} == {
        ("node-a-0", server.port),
        ("node-a-1", server.port + 1),
    }
    assert len(listening) == 3  # the second worker twice


@pytest.mark.timeout(120)
async def test_a_restarted_worker_that_cannot_start_is_tried_again_while_the_other_serves(
    tmp_path: Path, cluster_database: str, redis_url: str, keys: ClusterKeys
) -> None:
    """A worker killed after it served, whose restart cannot bind its port (held a moment
    longer): the supervisor tries again rather than stopping the node, and the other worker
    serves throughout."""
    async with two_worker_node(tmp_path, cluster_database, redis_url, keys) as server:
        supervisor = server.process
        victim = worker_processes(supervisor)[server.port + 1]
        victim.kill()
        victim.wait(DEADLINE)
        # Taken before the restarted worker (a fresh interpreter, a second or more of
        # imports) reaches its bind.
        with socket.socket() as holder:
            holder.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            holder.bind(("127.0.0.1", server.port + 1))
            holder.listen()

            def restart_failed() -> bool:
                return '"worker.restart_failed"' in server.log_path.read_text()

            await wait_for(restart_failed, DEADLINE, "a restart that could not bind")
            assert supervisor.is_running()
            assert await healthy(server.worker_urls[0])

        async def replaced() -> bool:
            now = worker_processes(supervisor).get(server.port + 1)
            return (
                now is not None and now.pid != victim.pid and await healthy(server.worker_urls[1])
            )

        await wait_for(replaced, DEADLINE, "the second worker started again once its port was free")
        assert await healthy(server.worker_urls[0])
    assert server.returncode == 0


def serve(tmp_path: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("TRIAD_")}
    clean.update({"TRIAD_DATA_DIR": str(tmp_path / "var"), **env})
    return subprocess.run(
        [sys.executable, "-m", "server", "serve", *args],
        env=clean,
        capture_output=True,
        text=True,
        timeout=DEADLINE,
        check=False,
    )


def test_workers_on_sqlite_without_redis_are_refused_before_anything_starts(
    tmp_path: Path,
) -> None:
    result = serve(tmp_path, "--workers", "2", "--port", str(free_ports(2)))
    assert result.returncode == 2
    assert "share PostgreSQL and Redis" in result.stderr
    assert "TRIAD_DATABASE_URL must name a PostgreSQL database" in result.stderr
    assert "TRIAD_REDIS_URL must name a Redis server" in result.stderr
    assert "Triad is running" not in result.stdout


def test_a_worker_that_cannot_start_stops_the_others_with_its_status(
    tmp_path: Path, redis_url: str, keys: ClusterKeys, postgres_empty: str
) -> None:
    result = serve(
        tmp_path,
        "--workers",
        "2",
        "--port",
        str(free_ports(2)),
        TRIAD_DATABASE_URL=postgres_empty,
        TRIAD_REDIS_URL=redis_url,
        TRIAD_CLUSTER_NAME=keys.deployment,
    )
    assert result.returncode == 2
    assert "run `triad migrate`" in result.stderr
