"""Outbound safety for HTTP calls made on someone else's behalf (notifications, @context fetches).

A client of a broker names a URL and the broker calls it. Without care that lets anyone who may
create a subscription make the broker call services that only listen on its own machine or its
private network (cloud metadata at 169.254.169.254, an admin port on 127.0.0.1, a database on
10.0.0.5). Two checks keep that out:

1. When the URL is accepted: its host (a name or an address literal) is checked by the
   caller's policy (`ngsi.broker`'s `NotificationHosts`).
2. When the connection is made: `GuardedTransport` resolves the name itself, asks the policy
   about every address it resolves to (`AddressCheck`), refuses the connection when one of them
   is not allowed, and connects to the very address it checked. A name that resolved to a public
   address when the subscription was made and to 127.0.0.1 later (DNS rebinding) is refused.

`GuardedTransport` never uses a proxy (the environment's proxy settings would bypass the check)
and is meant for clients with `follow_redirects=False`.
"""

from __future__ import annotations

import ipaddress
import socket
import ssl
from collections.abc import Callable, Iterable
from typing import Final, Protocol

import anyio
import httpcore
import httpx

__all__ = [
    "DEFAULT_LIMITS",
    "LOCAL_NETWORKS",
    "AddressCheck",
    "GuardedTransport",
    "HostPolicy",
    "OutboundRefused",
    "local_address_kind",
]

IpAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

LOCAL_NETWORKS: Final[tuple[tuple[str, str], ...]] = (
    ("0.0.0.0/8", "unspecified"),
    ("127.0.0.0/8", "loopback"),
    ("10.0.0.0/8", "private"),
    ("172.16.0.0/12", "private"),
    ("192.168.0.0/16", "private"),
    ("100.64.0.0/10", "shared (carrier-grade NAT)"),
    ("169.254.0.0/16", "link-local"),
    ("224.0.0.0/4", "multicast"),
    ("255.255.255.255/32", "broadcast"),
    ("::/128", "unspecified"),
    ("::1/128", "loopback"),
    ("fc00::/7", "private (unique local)"),
    ("fe80::/10", "link-local"),
    ("ff00::/8", "multicast"),
)
"""The networks a broker reachable from the network does not call unless told to, with the
kind of address each holds (as error messages name it)."""

_NETWORKS: Final = tuple((ipaddress.ip_network(net), kind) for net, kind in LOCAL_NETWORKS)


def local_address_kind(address: IpAddress) -> str | None:
    """The kind of local address `address` is (`loopback`, `private`, `link-local`...), or None
    for an address on the internet. IPv4-mapped IPv6 addresses count as their IPv4 address."""
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    for network, kind in _NETWORKS:
        if address.version == network.version and address in network:
            return kind
    return None


AddressCheck = Callable[[str, IpAddress], "str | None"]
"""`check(host, address)`: why the connection to `host`, resolved to `address`, is refused, or
None when it may be made."""


class HostPolicy(Protocol):
    """Which hosts may be called: `problem(host)` for a URL's host when it is accepted (a name
    or an address literal), `connect_problem(host, address)` for every address it resolves to
    when the connection is made, the latter only where `checks_addresses` says it matters."""

    @property
    def checks_addresses(self) -> bool: ...

    def problem(self, host: str) -> str | None: ...

    def connect_problem(self, host: str, address: IpAddress) -> str | None: ...


class OutboundRefused(httpcore.ConnectError):
    """A connection the outbound policy refused (httpx raises it as `httpx.ConnectError` with
    the same message)."""


class _GuardedBackend(httpcore.AsyncNetworkBackend):
    def __init__(self, check: AddressCheck) -> None:
        self._check = check
        self._inner = httpcore.AnyIOBackend()

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        addresses = await _resolve(host, port, timeout)
        for address in addresses:
            problem = self._check(host, address)
            if problem is not None:
                raise OutboundRefused(problem)
        last: Exception | None = None
        for address in addresses:
            try:
                return await self._inner.connect_tcp(
                    str(address),
                    port,
                    timeout=timeout,
                    local_address=local_address,
                    socket_options=socket_options,
                )
            except (httpcore.ConnectError, httpcore.ConnectTimeout) as exc:
                last = exc
        assert last is not None
        raise last

    async def connect_unix_socket(
        self,
        path: str,
        timeout: float | None = None,
        socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        raise OutboundRefused("connections to Unix sockets are not made")

    async def sleep(self, seconds: float) -> None:
        await self._inner.sleep(seconds)


async def _resolve(host: str, port: int, timeout: float | None) -> list[IpAddress]:
    literal = host.strip("[]")
    try:
        return [ipaddress.ip_address(literal)]
    except ValueError:
        pass
    try:
        with anyio.fail_after(timeout):
            infos = await anyio.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except TimeoutError:
        raise httpcore.ConnectTimeout(f"resolving {host} took longer than {timeout} s") from None
    except (OSError, UnicodeError) as exc:
        raise httpcore.ConnectError(f"cannot resolve {host}: {exc}") from None
    found: list[IpAddress] = []
    for _family, _type, _proto, _name, sockaddr in infos:
        address = ipaddress.ip_address(str(sockaddr[0]).split("%", 1)[0])
        if address not in found:
            found.append(address)
    if not found:
        raise httpcore.ConnectError(f"{host} resolves to no address")
    return found


DEFAULT_LIMITS: Final = httpx.Limits(max_connections=4, max_keepalive_connections=2)
"""One endpoint's connection pool: a hanging endpoint holds at most four connections."""


class GuardedTransport(httpx.AsyncHTTPTransport):
    """An `httpx.AsyncHTTPTransport` that checks every address it connects to with `check`
    (see the module documentation) and never goes through a proxy.

    `verify` is as for httpx (pass one shared `ssl.SSLContext` when many transports are made:
    building one costs tens of milliseconds); `limits` bounds the connection pool.
    """

    def __init__(
        self,
        check: AddressCheck,
        *,
        verify: ssl.SSLContext | bool = True,
        limits: httpx.Limits = DEFAULT_LIMITS,
    ) -> None:
        context = verify if isinstance(verify, ssl.SSLContext) else httpx.create_ssl_context(verify)
        super().__init__(verify=context, limits=limits, trust_env=False)
        self._pool = httpcore.AsyncConnectionPool(
            ssl_context=context,
            max_connections=limits.max_connections,
            max_keepalive_connections=limits.max_keepalive_connections,
            keepalive_expiry=limits.keepalive_expiry,
            http1=True,
            http2=False,
            network_backend=_GuardedBackend(check),
        )
