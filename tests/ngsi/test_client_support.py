"""Helpers for the client tests: one way to call both faces, and a recording fake broker.

The fake broker is an httpx `MockTransport` handler; it stands in for a broker where a test
needs an answer the real ones give only under faults (503, dropped connections, odd 207s).
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Iterable
from typing import Any

import httpx
import orjson
import pytest

from ngsi._client import AsyncClient, Client
from ngsi._retry import RetryPolicy

FAST_RETRIES = RetryPolicy(attempts=4, initial_wait=0.001, max_wait=0.01, max_elapsed=5.0)

Answer = Callable[[httpx.Request], httpx.Response]


def json_response(
    status: int = 200, body: Any = None, *, headers: dict[str, str] | None = None
) -> httpx.Response:
    content = b"" if body is None else orjson.dumps(body)
    merged = {"Content-Type": "application/json"} if body is not None else {}
    merged.update(headers or {})
    return httpx.Response(status, content=content, headers=merged)


def problem(status: int, name: str, detail: str = "") -> httpx.Response:
    body = {
        "type": f"https://uri.etsi.org/ngsi-ld/errors/{name}",
        "title": name,
        "detail": detail or name,
        "status": status,
    }
    return httpx.Response(
        status, content=orjson.dumps(body), headers={"Content-Type": "application/problem+json"}
    )


class FakeBroker:
    """Records every request (body read) and answers with `answer(request)`."""

    def __init__(self, answer: Answer | None = None) -> None:
        self.requests: list[httpx.Request] = []
        self.answer: Answer = answer or (lambda request: httpx.Response(204))

    def __call__(self, request: httpx.Request) -> httpx.Response:
        request.read()
        self.requests.append(request)
        return self.answer(request)

    def scripted(self, *answers: httpx.Response | Exception) -> FakeBroker:
        """Answer the requests in turn; an exception is raised as a transport fault."""
        queue = list(answers)

        def answer(request: httpx.Request) -> httpx.Response:
            item = queue.pop(0) if len(queue) > 1 else queue[0]
            if isinstance(item, Exception):
                raise item
            return item

        self.answer = answer
        return self

    @property
    def last(self) -> httpx.Request:
        return self.requests[-1]

    def bodies(self) -> list[Any]:
        return [orjson.loads(request.content) for request in self.requests]


class Face:
    """Calls a `Client` or an `AsyncClient` the same way from an async test."""

    def __init__(self, client: Client | AsyncClient) -> None:
        self.client = client
        self.is_async = isinstance(client, AsyncClient)

    def __getattr__(self, name: str) -> Callable[..., Any]:
        method = getattr(self.client, name)

        async def call(*args: Any, **kwargs: Any) -> Any:
            result = method(*args, **kwargs)
            if inspect.isawaitable(result):
                return await result
            return result

        return call

    async def collect(self, name: str, **kwargs: Any) -> list[Any]:
        iterator = getattr(self.client, name)(**kwargs)
        if self.is_async:
            return [item async for item in iterator]
        return list(iterator)

    async def close(self) -> None:
        if isinstance(self.client, AsyncClient):
            await self.client.aclose()
        else:
            self.client.close()


FaceFactory = Callable[..., Face]


def make_face_factory(kind: str) -> FaceFactory:
    def make(handler: Callable[[httpx.Request], Any], **kwargs: Any) -> Face:
        kwargs.setdefault("retries", FAST_RETRIES)
        transport = httpx.MockTransport(handler)
        cls: type[Client] | type[AsyncClient] = AsyncClient if kind == "async" else Client
        return Face(cls(transport=transport, **kwargs))

    return make


def faces() -> Any:
    """A fixture parametrised over both faces, yielding a factory of `Face`s."""

    @pytest.fixture(params=["sync", "async"])
    def face(request: pytest.FixtureRequest) -> FaceFactory:
        return make_face_factory(request.param)

    return face


def entities(
    count: int, *, type_: str = "AirQualityObserved", pad: int = 0
) -> list[dict[str, Any]]:
    return [
        {
            "id": f"urn:ngsi-ld:{type_}:{index:05d}",
            "type": type_,
            "no2": {"type": "Property", "value": index, "unitCode": "GQ"},
            **({"note": {"type": "Property", "value": "x" * pad}} if pad else {}),
        }
        for index in range(count)
    ]


def ids_of(items: Iterable[dict[str, Any]]) -> list[str]:
    return [item["id"] for item in items]
