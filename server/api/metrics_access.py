"""Who may read `/metrics`: with `TRIAD_METRICS_TOKEN`, a caller sending it as a Bearer
credential (compared in constant time); without it, loopback callers in development and nobody
in production (docs/operations.md). The counts are not clinical, but they show the service's
traffic and its failures, which is nobody's business outside operations."""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
from dataclasses import dataclass

from aiohttp import web

from ..errors import ErrorCode, TriadError
from ..settings import Settings


@dataclass(frozen=True)
class MetricsAccess:
    # The token's SHA-256: digests of equal length are compared, so the comparison time says
    # nothing of the token's length either.
    token_digest: bytes | None
    loopback_only: bool

    @classmethod
    def of(cls, settings: Settings) -> MetricsAccess:
        token = settings.metrics_token
        return cls(
            token_digest=_digest(token.get_secret_value()) if token is not None else None,
            loopback_only=settings.mode == "development",
        )

    def check(self, request: web.Request) -> None:
        if self.token_digest is None:
            if self.loopback_only and _is_loopback(request.remote):
                return
            raise TriadError(
                ErrorCode.METRICS_NOT_EXPOSED,
                "set TRIAD_METRICS_TOKEN to read the metrics from here",
            )
        scheme, _, credential = request.headers.get("Authorization", "").partition(" ")
        credential = credential.strip()
        if scheme.lower() != "bearer" or not credential:
            raise TriadError(
                ErrorCode.METRICS_TOKEN_MISSING, "send the metrics token as a Bearer credential"
            )
        if not hmac.compare_digest(_digest(credential), self.token_digest):
            raise TriadError(ErrorCode.METRICS_TOKEN_INVALID, "the metrics token is not valid")


def _digest(token: str) -> bytes:
    # aiohttp decodes header bytes that are not UTF-8 as lone surrogates: encode them back.
    return hashlib.sha256(token.encode("utf-8", "surrogateescape")).digest()


def _is_loopback(remote: str | None) -> bool:
    """The peer's own address (never a forwarded header: any caller can write one)."""
    if remote is None:
        return False
    try:
        address = ipaddress.ip_address(remote)
    except ValueError:
        return False
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return address.is_loopback
