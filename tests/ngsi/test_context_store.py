"""ContextStore: preloads, the disk cache, the registry, and fetches from a server on 127.0.0.1."""

from __future__ import annotations

import asyncio
import json
import socket
import threading
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest

from ngsi._context import Context
from ngsi._context_store import ContextStore, context_cache_filename
from ngsi._core_context import CORE_CONTEXT_URLS, DEFAULT_VOCAB
from ngsi._errors import BadRequestData, LdContextNotAvailable

SDM = "https://smartdatamodels.org/"
ENVIRONMENT = "https://raw.githubusercontent.com/smart-data-models/dataModel.Environment/master/context.jsonld"
WEATHER = (
    "https://raw.githubusercontent.com/smart-data-models/dataModel.Weather/master/context.jsonld"
)
LOOPBACK = {"127.0.0.1", "localhost", "::1"}


@pytest.fixture(autouse=True)
def loopback_only(monkeypatch: pytest.MonkeyPatch) -> None:
    """Any socket connection or name lookup beyond loopback fails the test."""
    real_connect = socket.socket.connect
    real_connect_ex = socket.socket.connect_ex
    real_getaddrinfo = socket.getaddrinfo

    def check(address: Any) -> None:
        host = address[0] if isinstance(address, tuple) else address
        if host not in LOOPBACK:
            raise AssertionError(f"a test tried to reach {address!r}")

    def connect(self: socket.socket, address: Any) -> None:
        check(address)
        real_connect(self, address)

    def connect_ex(self: socket.socket, address: Any) -> int:
        check(address)
        return real_connect_ex(self, address)

    def getaddrinfo(host: Any, *args: Any, **kwargs: Any) -> Any:
        check((host.decode() if isinstance(host, bytes) else host,))
        return real_getaddrinfo(host, *args, **kwargs)

    monkeypatch.setattr(socket.socket, "connect", connect)
    monkeypatch.setattr(socket.socket, "connect_ex", connect_ex)
    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)


def test_the_loopback_guard_is_on() -> None:
    with pytest.raises(AssertionError, match="tried to reach"):
        socket.getaddrinfo("uri.etsi.org", 443)
    with socket.socket() as sock, pytest.raises(AssertionError, match="tried to reach"):
        sock.connect(("192.0.2.1", 80))


@dataclass
class Route:
    status: int = 200
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0  # before the status line
    trickle: float = 0.0  # between body bytes
    content_length: bool = True


class ContextServer:
    """A tiny HTTP server on 127.0.0.1 that serves canned answers and counts requests."""

    def __init__(self) -> None:
        self.routes: dict[str, Route] = {}
        self.hits: Counter[str] = Counter()
        self.stopping = threading.Event()
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                server.hits[self.path] += 1
                route = server.routes.get(self.path, Route(status=404, body=b"not here"))
                if route.delay and server.stopping.wait(route.delay):
                    return
                try:
                    self.send_response(route.status)
                    for name, value in route.headers.items():
                        self.send_header(name, value)
                    if route.content_length:
                        self.send_header("Content-Length", str(len(route.body)))
                    self.end_headers()
                    if route.trickle:
                        for byte in route.body:
                            self.wfile.write(bytes([byte]))
                            self.wfile.flush()
                            if server.stopping.wait(route.trickle):
                                return
                    else:
                        self.wfile.write(route.body)
                except (BrokenPipeError, ConnectionResetError):
                    pass

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.port = self.httpd.server_address[1]
        self.thread = threading.Thread(target=self.httpd.serve_forever, args=(0.05,), daemon=True)

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def serve(self, path: str, document: Any, **options: Any) -> str:
        self.routes[path] = Route(body=json.dumps(document).encode(), **options)
        return self.url(path)

    def start(self) -> None:
        self.thread.start()

    def stop(self) -> None:
        self.stopping.set()
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(timeout=5)


@pytest.fixture
def server() -> Iterator[ContextServer]:
    instance = ContextServer()
    instance.start()
    try:
        yield instance
    finally:
        instance.stop()


def online(**options: Any) -> ContextStore:
    options.setdefault("timeout", 2.0)
    return ContextStore(allow_network=True, trust_env=False, **options)


def detail(error: pytest.ExceptionInfo[LdContextNotAvailable]) -> str:
    return error.value.detail or ""


# Offline sources


def test_preloaded_sdm_contexts(shared_dir: Path) -> None:
    store = ContextStore(
        preload={
            ENVIRONMENT: shared_dir / "sdm/dataModel.Environment/context.jsonld",
            WEATHER: str(shared_dir / "sdm/dataModel.Weather/context.jsonld"),
        }
    )
    assert store.resolve(ENVIRONMENT).expand_term("temperature") == (
        SDM + "dataModel.Environment/temperature"
    )
    assert store.resolve(WEATHER).expand_term("temperature") == (
        SDM + "dataModel.Weather/temperature"
    )
    assert store.resolve(WEATHER).expand_term("name") == SDM + "name"
    assert store.list(include_cached=True) == sorted([ENVIRONMENT, WEATHER])
    assert store.list() == []


@pytest.mark.parametrize("map_name", ["contexts.json", "map.json"])
def test_preload_folder_with_a_map_file(tmp_path: Path, shared_dir: Path, map_name: str) -> None:
    (tmp_path / "local.jsonld").write_text(
        json.dumps({"@context": {"speed": "http://example.org/speed"}}), encoding="utf-8"
    )
    mapping = {
        "https://contexts.example/local.jsonld": "local.jsonld",
        WEATHER: str(shared_dir / "sdm/dataModel.Weather/context.jsonld"),
    }
    (tmp_path / map_name).write_text(json.dumps(mapping), encoding="utf-8")
    store = ContextStore(preload_dirs=[tmp_path])
    local = store.resolve(["https://contexts.example/local.jsonld", WEATHER])
    assert local.expand_term("speed") == "http://example.org/speed"
    assert local.expand_term("temperature") == SDM + "dataModel.Weather/temperature"


def test_preload_configuration_errors(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="no map file"):
        ContextStore(preload_dirs=[tmp_path])
    (tmp_path / "contexts.json").write_text('["not", "a", "map"]', encoding="utf-8")
    with pytest.raises(ValueError, match="one JSON object"):
        ContextStore(preload_dirs=[tmp_path])
    with pytest.raises(ValueError, match="does not exist"):
        ContextStore(preload={"https://contexts.example/x": tmp_path / "missing.jsonld"})


def test_preloaded_file_that_is_not_a_context(tmp_path: Path) -> None:
    (tmp_path / "broken.jsonld").write_text('{"terms": {}}', encoding="utf-8")
    store = ContextStore(preload={"https://contexts.example/b": tmp_path / "broken.jsonld"})
    with pytest.raises(LdContextNotAvailable) as raised:
        store.resolve("https://contexts.example/b")
    assert "https://contexts.example/b" in detail(raised)
    assert "no top-level @context" in detail(raised)


def test_offline_by_default_names_the_url() -> None:
    store = ContextStore()
    with pytest.raises(LdContextNotAvailable) as raised:
        store.resolve("https://contexts.example/remote.jsonld")
    assert "https://contexts.example/remote.jsonld" in detail(raised)
    assert "allow_network=False" in detail(raised)
    assert raised.value.status_code == 503


def test_core_context_urls_never_touch_the_network() -> None:
    requests: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        requests.append(request)
        return httpx.Response(500)

    store = ContextStore(allow_network=True, transport=httpx.MockTransport(handler))
    for url in CORE_CONTEXT_URLS:
        context = store.resolve([url])
        assert context.expand_term("value") == "https://uri.etsi.org/ngsi-ld/hasValue"
        assert store.load(url)["@context"]["value"] == "https://uri.etsi.org/ngsi-ld/hasValue"
    assert requests == []


# The network path


def test_fetch_then_cache_on_disk_then_offline(server: ContextServer, tmp_path: Path) -> None:
    url = server.serve("/ctx.jsonld", {"@context": {"speed": "http://example.org/speed"}})
    cache = tmp_path / "cache"
    store = online(cache_dir=cache)
    assert store.resolve(url).expand_term("speed") == "http://example.org/speed"
    assert server.hits["/ctx.jsonld"] == 1
    cached = cache / context_cache_filename(url)
    assert json.loads(cached.read_text(encoding="utf-8"))["@context"]["speed"]
    assert store.resolve(url) is store.resolve(url)
    assert server.hits["/ctx.jsonld"] == 1

    offline = ContextStore(cache_dir=cache)
    assert offline.resolve(url).expand_term("speed") == "http://example.org/speed"
    assert server.hits["/ctx.jsonld"] == 1


def test_http_errors_and_bad_documents(server: ContextServer) -> None:
    server.routes["/notjson"] = Route(body=b"<html>hello</html>")
    server.serve("/nocontext", {"terms": {}})
    store = online()
    for path, reason in [
        ("/missing", "HTTP 404"),
        ("/notjson", "not JSON"),
        ("/nocontext", "no top-level @context"),
    ]:
        with pytest.raises(LdContextNotAvailable) as raised:
            store.resolve(server.url(path))
        assert server.url(path) in detail(raised)
        assert reason in detail(raised)


def test_slow_server_hits_the_timeout(server: ContextServer) -> None:
    url = server.serve("/slow", {"@context": {}}, delay=30.0)
    store = online(timeout=0.5)
    started = time.monotonic()
    with pytest.raises(LdContextNotAvailable) as raised:
        store.resolve(url)
    assert time.monotonic() - started < 10.0
    assert url in detail(raised)
    assert "within 0.5 s" in detail(raised)


def test_trickling_body_hits_the_total_budget(server: ContextServer) -> None:
    body = {"@context": {f"t{i}": f"http://example.org/{i}" for i in range(50)}}
    url = server.serve("/trickle", body, trickle=0.05)
    with pytest.raises(LdContextNotAvailable) as raised:
        online(timeout=0.6).resolve(url)
    assert "within 0.6 s" in detail(raised)


@pytest.mark.parametrize("content_length", [True, False])
def test_size_limit(server: ContextServer, content_length: bool) -> None:
    body = {"@context": {f"term{i}": f"http://example.org/{i}" for i in range(200)}}
    url = server.serve("/big", body, content_length=content_length)
    with pytest.raises(LdContextNotAvailable) as raised:
        online(max_bytes=1000).resolve(url)
    assert "more than the 1000 bytes allowed" in detail(raised)


def test_redirects(server: ContextServer) -> None:
    server.serve("/target", {"@context": {"speed": "http://example.org/speed"}})
    server.routes["/moved"] = Route(status=301, headers={"Location": "/target"})
    server.routes["/to-ftp"] = Route(status=302, headers={"Location": "ftp://127.0.0.1/x"})
    server.routes["/to-file"] = Route(status=302, headers={"Location": "file:///etc/hostname"})
    server.routes["/loop"] = Route(status=302, headers={"Location": "/loop"})
    store = online()
    assert store.resolve(server.url("/moved")).expand_term("speed") == "http://example.org/speed"
    assert server.hits["/target"] == 1
    for path, reason in [
        ("/to-ftp", "only http and https"),
        ("/to-file", "only http and https"),
        ("/loop", "more than 3 redirects"),
    ]:
        with pytest.raises(LdContextNotAvailable) as raised:
            store.resolve(server.url(path))
        assert reason in detail(raised)


def test_nested_remote_contexts(server: ContextServer) -> None:
    outer = server.serve(
        "/outer.jsonld",
        {"@context": ["inner.jsonld", {"speed": "ex:speed"}]},
    )
    inner = server.serve(
        "/inner.jsonld",
        {"@context": {"ex": "http://example.org/", "colour": "ex:colour"}},
    )
    context = online().resolve(outer)
    assert context.expand_term("speed") == "http://example.org/speed"
    assert context.expand_term("colour") == "http://example.org/colour"
    assert context.urls == frozenset({outer, inner})


def test_context_including_itself_is_refused(server: ContextServer) -> None:
    first = server.serve("/a.jsonld", {"@context": ["/b.jsonld"]})
    server.serve("/b.jsonld", {"@context": [{"x": "http://example.org/x"}, "/a.jsonld"]})
    with pytest.raises(LdContextNotAvailable) as raised:
        online().resolve(first)
    assert "includes itself" in detail(raised)


def test_nesting_depth_is_limited(server: ContextServer) -> None:
    for level in range(5):
        server.serve(f"/level{level}", {"@context": [f"/level{level + 1}"]})
    server.serve("/level5", {"@context": {}})
    assert online(max_depth=6).resolve(server.url("/level0")).vocab == DEFAULT_VOCAB
    with pytest.raises(LdContextNotAvailable) as raised:
        online(max_depth=3).resolve(server.url("/level0"))
    assert "more than 3 nested" in detail(raised)


def test_import(server: ContextServer) -> None:
    base = server.serve("/base", {"@context": {"speed": "http://example.org/speed"}})
    context = online().resolve({"@import": base, "colour": "http://example.org/colour"})
    assert context.expand_term("speed") == "http://example.org/speed"
    assert context.expand_term("colour") == "http://example.org/colour"


def test_failures_are_not_retried_at_once(server: ContextServer) -> None:
    url = server.url("/flaky")
    store = online(retry_after=60.0)
    for _ in range(3):
        with pytest.raises(LdContextNotAvailable):
            store.resolve(url)
    assert server.hits["/flaky"] == 1
    server.serve("/flaky", {"@context": {}})
    impatient = online(retry_after=0.0)
    with pytest.raises(LdContextNotAvailable):
        impatient.resolve(server.url("/gone"))
    assert impatient.resolve(url).vocab == DEFAULT_VOCAB
    assert server.hits["/flaky"] == 2


def test_concurrent_resolution_fetches_once(server: ContextServer) -> None:
    url = server.serve("/shared", {"@context": {"speed": "http://example.org/s"}}, delay=0.3)
    store = online()
    results: list[Context] = []
    errors: list[BaseException] = []

    def work() -> None:
        try:
            results.append(store.resolve(url))
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=work) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=10)
    assert errors == []
    assert len(results) == 8
    assert all(context is results[0] for context in results)
    assert server.hits["/shared"] == 1


def test_async_resolution(server: ContextServer) -> None:
    url = server.serve("/async", {"@context": {"speed": "http://example.org/speed"}})
    other = server.serve("/inside-loop", {"@context": {"colour": "http://example.org/c"}})
    store = online()

    async def main() -> tuple[Context, Context, Context]:
        first = await store.aresolve(url)
        again = await store.aresolve([url])
        # The sync API also works from inside a running event loop.
        inside = store.resolve(other)
        return first, again, inside

    first, again, inside = asyncio.run(main())
    assert first is again
    assert first.expand_term("speed") == "http://example.org/speed"
    assert inside.expand_term("colour") == "http://example.org/c"


def test_transport_errors_are_not_available() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("connection refused", request=request)

    store = ContextStore(allow_network=True, transport=httpx.MockTransport(handler))
    with pytest.raises(LdContextNotAvailable) as raised:
        store.resolve("http://127.0.0.1:9/ctx")
    assert "ConnectError" in detail(raised)


# The registry (/jsonldContexts)


def test_registry(shared_dir: Path) -> None:
    url = "http://127.0.0.1:1026/ngsi-ld/v1/jsonldContexts/abc"
    store = ContextStore()
    assert store.get(url) is None
    store.add(url, {"@context": {"speed": "http://example.org/v1/speed"}})
    first = store.resolve(url)
    assert first.expand_term("speed") == "http://example.org/v1/speed"
    assert store.list() == [url]
    assert store.get(url) == {"@context": {"speed": "http://example.org/v1/speed"}}

    store.add(url, {"@context": {"speed": "http://example.org/v2/speed"}})
    second = store.resolve(url)
    assert second is not first
    assert second.expand_term("speed") == "http://example.org/v2/speed"

    nested = store.resolve([{"x": "http://example.org/x"}, url])
    assert store.remove(url) is True
    assert store.remove(url) is False
    assert store.list() == []
    with pytest.raises(LdContextNotAvailable):
        store.resolve(url)
    with pytest.raises(LdContextNotAvailable):
        store.resolve([{"x": "http://example.org/x"}, url])
    assert nested.expand_term("speed") == "http://example.org/v2/speed"


@pytest.mark.parametrize("document", [{}, {"@context": 5}, {"@context": [1]}, ["@context"]])
def test_registry_refuses_non_contexts(document: Any) -> None:
    with pytest.raises(BadRequestData, match="@context"):
        ContextStore().add("http://127.0.0.1/ctx", document)
