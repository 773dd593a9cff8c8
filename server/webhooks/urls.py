"""Where a webhook may be sent: checked when an endpoint is registered (the URL's form, and
an address written in it) and again at each delivery (every address its name resolves to),
so a name that later resolves to a private address reaches nothing inside the network."""

from __future__ import annotations

import ipaddress
import socket

from aiohttp.abc import AbstractResolver, ResolveResult
from aiohttp.resolver import DefaultResolver
from yarl import URL

MAX_URL_CHARS = 2048


class UrlRefused(ValueError):
    """The URL may not be a webhook endpoint; the message says why (no secret in it)."""


class AddressRefused(OSError):
    """Every address the endpoint's name resolved to is private (raised by the resolver)."""


IpAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


def public_address(address: IpAddress) -> bool:
    """A globally routable unicast address (not loopback, private, link-local, shared,
    multicast, reserved or unspecified; an IPv4-mapped IPv6 address as its IPv4 address)."""
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return address.is_global and not address.is_multicast


def check_url(text: str, *, require_https: bool, allow_private: bool) -> str:
    """The endpoint URL as it will be stored, or `UrlRefused`."""
    if len(text) > MAX_URL_CHARS:
        raise UrlRefused(f"the URL is longer than {MAX_URL_CHARS} characters")
    if not text.isascii() or any(ch.isspace() or ord(ch) < 0x20 for ch in text):
        raise UrlRefused("the URL must be ASCII without spaces or control characters")
    try:
        url = URL(text)
    except ValueError:
        raise UrlRefused("the URL does not parse") from None
    if url.scheme not in ("https", "http"):
        raise UrlRefused("the URL must be https (or http outside production)")
    if require_https and url.scheme != "https":
        raise UrlRefused("the URL must be https in production")
    if url.user is not None or url.password is not None:
        raise UrlRefused("the URL may not carry credentials")
    if url.fragment:
        raise UrlRefused("the URL may not carry a fragment")
    host = url.raw_host
    if not host:
        raise UrlRefused("the URL has no host")
    if not allow_private:
        try:
            address = ipaddress.ip_address(host.strip("[]"))
        except ValueError:
            name = host.rstrip(".").lower()
            if name == "localhost" or name.endswith(".localhost") or "." not in name:
                raise UrlRefused("the URL's host must be a public name") from None
        else:
            if not public_address(address):
                raise UrlRefused("the URL's address is not public")
    return str(url)


class PublicOnlyResolver(AbstractResolver):
    """A resolver that drops every address that is not public; a name with none left does not
    resolve. aiohttp does not ask a resolver about an address literal: those are checked by
    `check_url` before each delivery."""

    def __init__(self) -> None:
        self._inner = DefaultResolver()

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        results = await self._inner.resolve(host, port, family)
        allowed = [r for r in results if public_address(ipaddress.ip_address(r["host"]))]
        if not allowed:
            raise AddressRefused(
                f"no public address for the endpoint's host ({len(results)} refused)"
            )
        return allowed

    async def close(self) -> None:
        await self._inner.close()


def resolver(allow_private: bool) -> AbstractResolver | None:
    """The delivery client's resolver (None: aiohttp's own, for private endpoints allowed)."""
    return None if allow_private else PublicOnlyResolver()
