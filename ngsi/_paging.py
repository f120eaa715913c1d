"""Request flows and paging, written once for both client faces.

A *flow* is a generator that yields `Send` steps (a request and how safe it is to repeat) and
receives the broker's answers; it returns the operation's result. `Client` and `AsyncClient`
only drive flows: they send each request (with retries) and hand the answer back, or throw
`NgsiTransportError` into the flow when no answer came. This is the shape of httpx's auth flows.

`Pager` walks a collection (`/entities`, `/subscriptions`) one page per flow, so that an
iterator can hand out entities while the next page is not fetched yet.
"""

from __future__ import annotations

from collections.abc import Callable, Generator
from dataclasses import dataclass, field
from typing import Generic, TypeVar

import httpx

from ngsi._retry import RetryMode

__all__ = ["RESULTS_COUNT_HEADER", "Flow", "Pager", "Send", "next_link"]

T = TypeVar("T")

RESULTS_COUNT_HEADER = "NGSILD-Results-Count"


@dataclass(frozen=True)
class Send:
    """One request of a flow, and whether it may be sent again after a failure."""

    request: httpx.Request
    mode: RetryMode = RetryMode.IDEMPOTENT


Flow = Generator[Send, httpx.Response, T]
"""Yields the requests to send, receives their answers, returns the result."""


def next_link(response: httpx.Response) -> httpx.URL | None:
    """The absolute URL of a `Link: <...>; rel="next"` on the same origin, if the broker sent one.

    A link to another origin is ignored: credentials must not leave for another host.
    """
    link = response.links.get("next")
    if not link or not link.get("url"):
        return None
    current = response.request.url
    try:
        url = current.join(link["url"])
    except httpx.InvalidURL:
        return None
    if (url.scheme, url.host, url.port) != (current.scheme, current.host, current.port):
        return None
    if url == current:
        return None
    return url


@dataclass
class Pager(Generic[T]):
    """Walks a collection page by page: `limit`/`offset`, or the broker's `rel="next"` links.

    The first page asks for `count=true`; when the broker answers with the total in
    `NGSILD-Results-Count`, the walk stops once that many items were read (a broker that caps
    `limit` below the page size asked for is then still read to the end). Without a total it
    stops at the first page shorter than the page size. It always stops at an empty page.

    `build(offset, limit, count)` makes the step for a page; `parse` reads the items of an
    answer; `empty` tells whether an error answer means "no items" (a tenant nothing was written
    to) and raises for any other error.
    """

    build: Callable[[int, int, bool], Send]
    page_size: int
    parse: Callable[[httpx.Response], list[T]]
    empty: Callable[[httpx.Response], bool]
    received: int = 0
    total: int | None = None
    done: bool = False
    _next: httpx.Request | None = field(default=None, repr=False)

    def page(self) -> Flow[list[T]]:
        """The flow for the next page; sets `done` when there is nothing after it."""
        if self.done:
            return []
        if self._next is not None:
            step = Send(self._next)
        else:
            step = self.build(self.received, self.page_size, self.received == 0)
        response = yield step
        if self.empty(response):
            self.done = True
            return []
        items = self.parse(response)
        if self.received == 0:
            self.total = _results_count(response)
        self.received += len(items)
        self._next = None
        url = next_link(response) if items else None
        if not items:
            self.done = True
        elif url is not None:
            self._next = _follow(step.request, url)
        elif self.total is not None:
            self.done = self.received >= self.total
        else:
            self.done = len(items) < self.page_size
        return items


def _results_count(response: httpx.Response) -> int | None:
    value = response.headers.get(RESULTS_COUNT_HEADER, "").strip()
    return int(value) if value.isdigit() else None


def _follow(request: httpx.Request, url: httpx.URL) -> httpx.Request:
    headers = httpx.Headers(request.headers)
    headers.pop("Authorization", None)
    headers.pop("Host", None)
    return httpx.Request(request.method, url, headers=headers, extensions=request.extensions)
