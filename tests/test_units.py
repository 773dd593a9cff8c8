"""Pure pieces without a database: join-token claims, sealing, settings."""

from __future__ import annotations

import base64
import time
from pathlib import Path

import pytest

from server.auth import apikeys, tokens
from server.auth.roles import Role, require_host
from server.crypto import KeyRing, SealError, development_keyring, generate_key_spec
from server.errors import ConfigError, ErrorCode, TriadError
from server.ids import ConsultId, KeyId, ParticipantId, TokenId
from server.settings import Settings


def claims(**changes: object) -> tokens.JoinClaims:
    now = time.time()
    values: dict[str, object] = {
        "iss": KeyId("key_1"),
        "sub": ParticipantId("p_1"),
        "consult": ConsultId("c_1"),
        "role": Role.CLIENT,
        "name": "Alex",
        "iat": now,
        "nbf": now,
        "exp": now + 60,
        "jti": TokenId("j1"),
    }
    values.update(changes)
    return tokens.JoinClaims(**values)  # type: ignore[arg-type]


def test_token_round_trip() -> None:
    secret = apikeys.new_secret()
    original = claims()
    token = tokens.mint(original, secret)
    assert tokens.read_key_id(token) == "key_1"
    assert tokens.verify(token, key_id=KeyId("key_1"), secret=secret, leeway=0) == original


@pytest.mark.parametrize(
    "changes",
    [
        {"role": "admin"},
        {"name": ""},
        {"name": "x" * 101},
        {"exp": 0.0},
        {"iat": float("nan")},
        {"iat": True},
        {"sub": ""},
        {"aud": "other"},
    ],
)
def test_claims_validate_themselves(changes: dict[str, object]) -> None:
    with pytest.raises(ValueError):  # noqa: PT011 - each case has its own message
        claims(**changes)


def test_expired_and_early_tokens_have_their_own_codes() -> None:
    secret = apikeys.new_secret()
    now = time.time()
    expired = tokens.mint(claims(iat=now - 100, nbf=now - 100, exp=now - 50), secret)
    early = tokens.mint(claims(nbf=now + 50, exp=now + 100), secret)
    for token, code in ((expired, ErrorCode.TOKEN_EXPIRED), (early, ErrorCode.TOKEN_NOT_YET_VALID)):
        with pytest.raises(TriadError) as raised:
            tokens.verify(token, key_id=KeyId("key_1"), secret=secret, leeway=10)
        assert raised.value.code == code
    # Within the leeway both pass: platforms' clocks drift.
    slightly_early = tokens.mint(claims(nbf=now + 5, exp=now + 100), secret)
    tokens.verify(slightly_early, key_id=KeyId("key_1"), secret=secret, leeway=10)


def test_api_secrets() -> None:
    secret = apikeys.new_secret()
    assert apikeys.is_well_formed(secret)
    assert not apikeys.is_well_formed(secret + "x")
    assert len(apikeys.digest(secret)) == 32
    assert apikeys.new_secret() != secret


def test_only_hosts_may_host() -> None:
    require_host(Role.THERAPIST, "end")
    require_host(Role.PSYCHIATRIST, "end")
    with pytest.raises(TriadError) as raised:
        require_host(Role.CLIENT, "end")
    assert raised.value.code == ErrorCode.FORBIDDEN_ROLE


def test_sealing_round_trip_and_tamper() -> None:
    ring = KeyRing.parse(generate_key_spec("k1"))
    sealed = ring.seal(b"sertraline 50 mg", b"row:1")
    assert b"sertraline" not in sealed
    assert ring.open(sealed, b"row:1") == b"sertraline 50 mg"
    with pytest.raises(SealError):
        ring.open(sealed, b"row:2")  # moved to another row
    tampered = sealed[:-1] + bytes([sealed[-1] ^ 1])
    with pytest.raises(SealError):
        ring.open(tampered, b"row:1")
    with pytest.raises(SealError):
        ring.open(b"\x02junk", b"row:1")


def test_key_rotation_opens_old_values_and_seals_with_the_new_key() -> None:
    old_spec = generate_key_spec("old")
    old = KeyRing.parse(old_spec)
    sealed = old.seal(b"plan", b"a")
    rotated = KeyRing.parse(generate_key_spec("new") + "," + old_spec)
    assert rotated.active_kid == "new"
    assert rotated.open(sealed, b"a") == b"plan"
    with pytest.raises(SealError):
        KeyRing.parse(generate_key_spec("other")).open(sealed, b"a")


@pytest.mark.parametrize(
    "spec",
    [
        "nokey",
        "k1:not-base64!",
        "k1:" + base64.b64encode(b"short").decode(),
        "k1:"
        + base64.b64encode(b"x" * 32).decode()
        + ",k1:"
        + base64.b64encode(b"y" * 32).decode(),
    ],
)
def test_bad_key_specs(spec: str) -> None:
    with pytest.raises(ConfigError):
        KeyRing.parse(spec)


def test_development_key_is_created_once_and_private(tmp_path: Path) -> None:
    sealed = development_keyring(tmp_path).seal(b"x", b"")
    assert development_keyring(tmp_path).open(sealed, b"") == b"x"
    assert (tmp_path / "dev-encryption-key").stat().st_mode & 0o777 == 0o600


def test_production_refuses_to_default_secrets(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("TRIAD_ENCRYPTION_KEYS", "TRIAD_PUBLIC_BASE_URL", "TRIAD_TURN_URLS"):
        monkeypatch.delenv(name, raising=False)
    settings = Settings(mode="production", turn_urls=["turn:turn.example.test:3478"])
    with pytest.raises(ConfigError) as raised:
        settings.check()
    message = str(raised.value)
    assert "TRIAD_ENCRYPTION_KEYS" in message
    assert "TRIAD_PUBLIC_BASE_URL" in message
    assert "TRIAD_TURN_SECRET" in message
    good = Settings(
        mode="production",
        encryption_keys=generate_key_spec(),
        public_base_url="https://consult.example.test",
    )
    good.check()


def test_development_defaults_are_local(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("TRIAD_HOST", "TRIAD_PORT", "TRIAD_DATABASE_URL", "TRIAD_PUBLIC_BASE_URL"):
        monkeypatch.delenv(name, raising=False)
    settings = Settings()
    settings.check()
    assert settings.host == "127.0.0.1"
    assert settings.base_url == "http://127.0.0.1:8080"
    assert settings.effective_database_url.startswith("sqlite+aiosqlite:///")
    assert Settings(port=9001).base_url == "http://127.0.0.1:9001"


def test_lists_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TRIAD_ICE_HOST_ADDRESSES", "127.0.0.1, ::1")
    monkeypatch.setenv("TRIAD_ALLOWED_ORIGINS", '["https://a.test", "https://b.test"]')
    settings = Settings()
    assert settings.ice_host_addresses == ["127.0.0.1", "::1"]
    assert settings.allowed_origins == ["https://a.test", "https://b.test"]


def test_port_range_must_be_ordered() -> None:
    with pytest.raises(ConfigError):
        Settings(ice_udp_port_min=50000, ice_udp_port_max=40000).check()


@pytest.mark.parametrize(
    ("ports", "message"),
    [
        ({"ice_udp_port_min": 50000}, "together"),
        ({"ice_udp_port_max": 50000}, "together"),
        ({"ice_udp_port_min": 50010, "ice_udp_port_max": 50000}, "above"),
    ],
)
def test_a_half_or_inverted_udp_port_range_is_refused_by_name(
    tmp_path: Path, ports: dict[str, int], message: str
) -> None:
    settings = Settings(data_dir=tmp_path, ice_host_addresses=["127.0.0.1"], **ports)
    with pytest.raises(ConfigError, match=message):
        settings.check()
