"""Scale-out settings: one process on SQLite by default; several workers (or a node of several)
need PostgreSQL and Redis, and each worker gets its own port, public URL and UDP share."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from server.crypto import generate_key_spec
from server.errors import ConfigError
from server.services import media_config
from server.settings import Settings

POSTGRES = "postgresql+asyncpg://triad@db.example.test/triad"
REDIS = "redis://redis.example.test:6379/0"


def cluster(tmp_path: Path, **values: Any) -> Settings:
    base: dict[str, Any] = {
        "data_dir": tmp_path,
        "database_url": POSTGRES,
        "redis_url": REDIS,
        "port": 9000,
        "workers": 4,
        "node_id": "node-a",
    }
    return Settings(**{**base, **values})


def test_the_default_is_one_process_on_sqlite_with_nothing_else(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path, database_url=None, redis_url=None)
    settings.check()
    assert not settings.clustered
    assert settings.workers == 1
    assert settings.worker_port == settings.port
    assert settings.worker_url == settings.base_url
    ranged = settings.model_copy(update={"ice_udp_port_min": 40000, "ice_udp_port_max": 40099})
    assert ranged.worker_udp_ports == (40000, 40099)


@pytest.mark.parametrize(
    ("values", "named"),
    [
        ({"workers": 2}, ["TRIAD_DATABASE_URL", "TRIAD_REDIS_URL"]),
        ({"node_id": "node-a"}, ["TRIAD_DATABASE_URL", "TRIAD_REDIS_URL"]),
        ({"workers": 2, "redis_url": REDIS}, ["TRIAD_DATABASE_URL"]),
        ({"workers": 2, "database_url": POSTGRES}, ["TRIAD_REDIS_URL"]),
    ],
)
def test_several_workers_refuse_to_start_without_postgres_and_redis(
    tmp_path: Path, values: dict[str, Any], named: list[str]
) -> None:
    settings = Settings(**{"data_dir": tmp_path, "database_url": None, "redis_url": None, **values})
    with pytest.raises(ConfigError) as refused:
        settings.check()
    message = str(refused.value)
    assert "share PostgreSQL and Redis" in message
    for name in named:
        assert name in message
    for name in {"TRIAD_DATABASE_URL", "TRIAD_REDIS_URL"} - set(named):
        assert name not in message


def test_each_worker_has_its_port_url_and_share_of_the_udp_range(tmp_path: Path) -> None:
    node = cluster(tmp_path, ice_udp_port_min=40000, ice_udp_port_max=40103)
    node.check()
    workers = [node.model_copy(update={"worker_index": i}) for i in range(4)]
    assert [w.worker_id for w in workers] == ["node-a-0", "node-a-1", "node-a-2", "node-a-3"]
    assert [w.worker_port for w in workers] == [9000, 9001, 9002, 9003]
    # Unset, a worker's public URL is the public base URL with the worker's port.
    assert [w.worker_url for w in workers] == [f"http://127.0.0.1:{9000 + i}" for i in range(4)]
    # 104 ports in four equal shares of 26, none shared; the media plane binds only its own.
    shares = [w.worker_udp_ports for w in workers]
    assert shares == [(40000, 40025), (40026, 40051), (40052, 40077), (40078, 40103)]
    config = media_config(workers[2])
    assert (config.udp_port_min, config.udp_port_max) == (40052, 40077)


def test_a_worker_url_template_names_the_worker(tmp_path: Path) -> None:
    template = "https://triad.example.test/w/{worker}"
    third = cluster(tmp_path, worker_public_url=template + "/", worker_index=2)
    third.check()
    assert third.worker_url == "https://triad.example.test/w/node-a-2"
    by_port = cluster(tmp_path, worker_public_url="https://{node}.example.test:{port}")
    assert by_port.model_copy(update={"worker_index": 1}).worker_url == (
        "https://node-a.example.test:9001"
    )


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"worker_public_url": "https://triad.example.test"}, "tell the workers apart"),
        ({"worker_public_url": "https://triad.example.test/{secret}"}, "may name only"),
        ({"worker_public_url": "https://triad.example.test/{}"}, "may name only"),
        ({"worker_public_url": "https://triad.example.test/{port.real}"}, "may name only"),
        ({"worker_public_url": "https://triad.example.test/{port"}, "unbalanced"),
        ({"worker_public_url": "ftp://triad.example.test/{port}"}, "http"),
        ({"port": 0}, "TRIAD_PORT"),
        ({"port": 65534}, "past port 65535"),
        ({"ice_udp_port_min": 40000, "ice_udp_port_max": 40002}, "one port per worker"),
        ({"worker_index": 4}, "below TRIAD_WORKERS"),
    ],
)
def test_scale_out_mistakes_are_refused_by_name(
    tmp_path: Path, values: dict[str, Any], message: str
) -> None:
    with pytest.raises(ConfigError, match=message):
        cluster(tmp_path, **values).check()


@pytest.mark.parametrize("node_id", ["Node", "-a", "a-", "a_b", "a" * 33, "", "a.b"])
def test_a_node_id_is_a_dns_label(tmp_path: Path, node_id: str) -> None:
    with pytest.raises(ValueError, match="node_id"):
        cluster(tmp_path, node_id=node_id)


def test_without_a_node_id_the_host_name_names_the_node(tmp_path: Path) -> None:
    settings = cluster(tmp_path, node_id=None)
    assert settings.clustered
    node = settings.node
    assert node
    assert len(node) <= 32
    assert settings.worker_id == f"{node}-0"
    Settings(node_id=node)  # a valid node id


def test_production_needs_each_workers_https_url(tmp_path: Path) -> None:
    secure: dict[str, Any] = {
        "mode": "production",
        "encryption_keys": generate_key_spec(),
        "public_base_url": "https://triad.example.test",
    }
    with pytest.raises(ConfigError, match="TRIAD_WORKER_PUBLIC_URL"):
        cluster(tmp_path, **secure).check()
    cluster(tmp_path, **secure, worker_public_url="https://triad.example.test/w/{worker}").check()
