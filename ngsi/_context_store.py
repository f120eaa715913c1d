"""Where @context documents come from: registered, preloaded, cached on disk, or fetched.

`ContextStore.resolve(entries)` turns an `@context` value into a `Context`. URLs are looked up in
this order, and the first hit wins:

1. the NGSI-LD core context URLs (`CORE_CONTEXT_URLS`): built in, never fetched;
2. contexts registered with `add(url, document)` (the broker's `/jsonldContexts`; the broker
   persists them itself and adds them again at start);
3. preloaded files, from a `preload={url: path}` mapping or from folders with a map file
   (see below); read on first use, then kept in memory;
4. documents fetched earlier by this store (in memory);
5. the on-disk cache folder (`cache_dir`): one file per URL, named by the SHA-256 of the URL
   plus `.jsonld`, written after each successful fetch and never expired;
6. the network, only with `allow_network=True` (off by default: offline first).

A preload folder holds a map file, `contexts.json` (or `map.json`), that is one JSON object from
context URL to file path, relative to the folder:

    {
      "https://raw.githubusercontent.com/smart-data-models/dataModel.Weather/master/context.jsonld":
        "dataModel.Weather/context.jsonld"
    }

Network fetches use httpx with a connect timeout (2 s) and a total budget for the whole fetch,
redirects included (5 s); at most `max_bytes` (1 MiB) are read; redirects are followed by hand,
at most `max_redirects` (0: never), and only to http(s) URLs. With a `host_policy`
(`ngsi._outbound.HostPolicy`) the host of every URL, each redirect's included, is checked
before it is called, and where the policy needs it the addresses a name resolves to are checked
when the connection is made (`GuardedTransport`, without proxies). A failed fetch is remembered for
`retry_after` seconds, so that a broken Link header does not cost a timeout per request. A
context may name other contexts: they are resolved recursively, at most `max_depth` levels
deep, and a context that includes itself is refused. Every failure raises
`LdContextNotAvailable` whose detail names the URL and the reason.

Concurrency: all methods are thread-safe; one URL is fetched by one thread at a time and the
others wait for its result. Resolution is synchronous, because fetches are rare (preloaded or
cached contexts are the rule) and the result is memoised: `aresolve` answers from memory when it
can and otherwise runs `resolve` in a worker thread, so an event loop is never blocked.
"""

from __future__ import annotations

import asyncio
import builtins
import concurrent.futures
import contextlib
import hashlib
import json
import os
import tempfile
import threading
import time
from collections import OrderedDict
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any, Final
from urllib.parse import urljoin, urlsplit

import httpx

from ngsi._context import (
    Context,
    ContextSpec,
    _build_context,
    _entries_key,
    _normalize_entries,
)
from ngsi._core_context import CORE_CONTEXT_URLS, core_context_document
from ngsi._errors import BadRequestData, LdContextNotAvailable
from ngsi._outbound import GuardedTransport, HostPolicy

__all__ = ["CONTEXT_MAP_FILES", "ContextStore", "context_cache_filename", "default_store"]

CONTEXT_MAP_FILES: Final = ("contexts.json", "map.json")
"""Names of the map file in a preload folder, in the order they are looked for."""

_ACCEPT: Final = "application/ld+json, application/json;q=0.9, */*;q=0.1"
_CORE_DOCUMENT: Final = core_context_document()


def context_cache_filename(url: str) -> str:
    """The file name under which a fetched context is cached: SHA-256 of the URL, hex, `.jsonld`."""
    return hashlib.sha256(url.encode("utf-8")).hexdigest() + ".jsonld"


class _FetchError(Exception):
    """A fetch failed; the message is the reason."""


class ContextStore:
    """Resolves @context URLs to documents and entries to shared `Context` objects.

    Keyword options: `preload` (URL → file path), `preload_dirs` (folders with a map file),
    `cache_dir` (fetched documents are written there and read back offline), `allow_network`
    (default False), `connect_timeout` (2 s), `timeout` (total per fetch, 5 s), `max_bytes`
    (1 MiB), `max_redirects` (3), `max_depth` (nested remote contexts, 8), `retry_after` (seconds
    a failed URL is not tried again, 10), `lru_size` (resolved contexts kept, 256), `transport`
    (an `httpx.AsyncBaseTransport` for tests), `trust_env` (proxy settings from the
    environment, default True; not where the `host_policy` checks addresses) and `host_policy`
    (which hosts may be fetched from, see the module). A mapped file that does not exist raises
    `ValueError`.
    """

    def __init__(
        self,
        *,
        preload: Mapping[str, str | os.PathLike[str]] | None = None,
        preload_dirs: Iterable[str | os.PathLike[str]] = (),
        cache_dir: str | os.PathLike[str] | None = None,
        allow_network: bool = False,
        connect_timeout: float = 2.0,
        timeout: float = 5.0,
        max_bytes: int = 1 << 20,
        max_redirects: int = 3,
        max_depth: int = 8,
        retry_after: float = 10.0,
        lru_size: int = 256,
        transport: httpx.AsyncBaseTransport | None = None,
        trust_env: bool = True,
        host_policy: HostPolicy | None = None,
    ) -> None:
        self._preload: dict[str, Path] = {}
        for folder in preload_dirs:
            self._preload.update(_read_map_file(Path(folder)))
        for url, path in (preload or {}).items():
            self._preload[url] = Path(path)
        for url, path in self._preload.items():
            if not path.is_file():
                raise ValueError(f"preloaded @context {url}: file {path} does not exist")
        self._cache_dir = Path(cache_dir) if cache_dir is not None else None
        self.allow_network = allow_network
        self._connect_timeout = connect_timeout
        self._timeout = timeout
        self._max_bytes = max_bytes
        self._max_redirects = max_redirects
        self._max_depth = max_depth
        self._retry_after = retry_after
        self._lru_size = lru_size
        self._transport = transport
        self._trust_env = trust_env
        self._host_policy = host_policy

        self._lock = threading.Lock()
        self._registered: dict[str, Mapping[str, Any]] = {}
        self._documents: dict[str, Mapping[str, Any]] = {}
        self._failures: dict[str, tuple[float, str]] = {}
        self._fetch_locks: dict[str, threading.Lock] = {}
        self._contexts: OrderedDict[tuple[str, ...], Context] = OrderedDict()

    # Contexts

    def resolve(self, entries: ContextSpec) -> Context:
        """The `Context` for an `@context` value (a URL, an object, a list of them, or None for
        the core context alone). The same entries give the same object while it stays in the
        LRU. Raises `LdContextNotAvailable` (a URL cannot be had) or `BadRequestData` (the
        context is malformed)."""
        normalized = _normalize_entries(entries)
        if not normalized:
            return Context.core()
        key = _entries_key(normalized)
        with self._lock:
            found = self._contexts.get(key)
            if found is not None:
                self._contexts.move_to_end(key)
                return found
        built = _build_context(normalized, key, loader=self.load, max_depth=self._max_depth)
        with self._lock:
            found = self._contexts.get(key)
            if found is not None:
                return found
            self._contexts[key] = built
            while len(self._contexts) > self._lru_size:
                self._contexts.popitem(last=False)
        return built

    def cached(self, entries: ContextSpec) -> Context | None:
        """The `Context` for an `@context` value if it is resolved already (memory only: no
        file, no network), else None; then call `resolve`."""
        normalized = _normalize_entries(entries)
        if not normalized:
            return Context.core()
        with self._lock:
            return self._contexts.get(_entries_key(normalized))

    async def aresolve(self, entries: ContextSpec) -> Context:
        """`resolve` for async code: answers from memory, else resolves in a worker thread."""
        found = self.cached(entries)
        if found is not None:
            return found
        return await asyncio.to_thread(self.resolve, entries)

    # Documents

    def load(self, url: str) -> Mapping[str, Any]:
        """The JSON-LD document at `url` (an object with an `@context` member), from the first
        source that has it (see the module documentation). Raises `LdContextNotAvailable`."""
        if url in CORE_CONTEXT_URLS:
            return _CORE_DOCUMENT
        with self._lock:
            document = self._registered.get(url) or self._documents.get(url)
        if document is not None:
            return document
        path = self._preload.get(url)
        if path is not None:
            return self._remember(url, self._read_file(url, path, origin="preloaded file"))
        cached = self._read_cache(url)
        if cached is not None:
            return self._remember(url, cached)
        return self._fetch_once(url)

    def _remember(self, url: str, document: Mapping[str, Any]) -> Mapping[str, Any]:
        with self._lock:
            return self._documents.setdefault(url, document)

    def _read_file(self, url: str, path: Path, *, origin: str) -> Mapping[str, Any]:
        try:
            raw = path.read_bytes()
        except OSError as exc:
            raise LdContextNotAvailable(
                f"@context {url}: cannot read {origin} {path}: {exc.strerror or exc}"
            ) from None
        try:
            return _parse_document(raw)
        except _FetchError as exc:
            raise LdContextNotAvailable(f"@context {url}: {origin} {path}: {exc}") from None

    def _read_cache(self, url: str) -> Mapping[str, Any] | None:
        if self._cache_dir is None:
            return None
        path = self._cache_dir / context_cache_filename(url)
        if not path.is_file():
            return None
        return self._read_file(url, path, origin="cached file")

    def _write_cache(self, url: str, raw: bytes) -> None:
        if self._cache_dir is None:
            return
        self._cache_dir.mkdir(parents=True, exist_ok=True)
        target = self._cache_dir / context_cache_filename(url)
        fd, temporary = tempfile.mkstemp(dir=self._cache_dir, prefix=".", suffix=".part")
        try:
            with os.fdopen(fd, "wb") as handle:
                handle.write(raw)
            os.replace(temporary, target)
        except BaseException:
            Path(temporary).unlink(missing_ok=True)
            raise

    def _fetch_once(self, url: str) -> Mapping[str, Any]:
        if not self.allow_network:
            raise LdContextNotAvailable(
                f"@context {url} is not available offline: it is not preloaded, registered or"
                " cached, and network fetches are off (allow_network=False)"
            )
        with self._lock:
            lock = self._fetch_locks.setdefault(url, threading.Lock())
        with lock:
            with self._lock:
                document = self._documents.get(url)
                failure = self._failures.get(url)
            if document is not None:
                return document
            if failure is not None and time.monotonic() < failure[0]:
                raise LdContextNotAvailable(f"@context {url}: {failure[1]} (not retried yet)")
            try:
                raw = self._fetch(url)
                document = _parse_document(raw)
            except _FetchError as exc:
                reason = str(exc)
                with self._lock:
                    self._failures[url] = (time.monotonic() + self._retry_after, reason)
                raise LdContextNotAvailable(f"@context {url}: {reason}") from None
            with self._lock:
                self._failures.pop(url, None)
                self._documents[url] = document
            # The disk cache is an optimisation: the document is in memory anyway.
            with contextlib.suppress(OSError):
                self._write_cache(url, raw)
            return document

    def _fetch(self, url: str) -> bytes:
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            return asyncio.run(self._afetch(url))
        with concurrent.futures.ThreadPoolExecutor(max_workers=1) as pool:
            return pool.submit(asyncio.run, self._afetch(url)).result()

    async def _afetch(self, url: str) -> bytes:
        timeout = httpx.Timeout(self._timeout, connect=min(self._connect_timeout, self._timeout))
        try:
            async with (
                asyncio.timeout(self._timeout),
                httpx.AsyncClient(
                    timeout=timeout,
                    follow_redirects=False,
                    transport=self._transport or self._guarded_transport(),
                    trust_env=self._trust_env and not self._checks_addresses,
                ) as client,
            ):
                return await self._afetch_with(client, url)
        except TimeoutError:
            raise _FetchError(f"no complete answer within {self._timeout:g} s") from None
        except httpx.TimeoutException:
            raise _FetchError(f"no complete answer within {self._timeout:g} s") from None
        except httpx.HTTPError as exc:
            raise _FetchError(f"{type(exc).__name__}: {exc}") from None

    @property
    def _checks_addresses(self) -> bool:
        return self._host_policy is not None and self._host_policy.checks_addresses

    def _guarded_transport(self) -> httpx.AsyncBaseTransport | None:
        policy = self._host_policy
        if policy is None or not policy.checks_addresses:
            return None
        return GuardedTransport(policy.connect_problem)

    async def _afetch_with(self, client: httpx.AsyncClient, url: str) -> bytes:
        current = url
        for _ in range(self._max_redirects + 1):
            if urlsplit(current).scheme not in ("http", "https"):
                raise _FetchError(f"only http and https URLs are fetched, not {current}")
            if self._host_policy is not None:
                problem = self._host_policy.problem(urlsplit(current).hostname or "")
                if problem is not None:
                    raise _FetchError(problem)
            async with client.stream("GET", current, headers={"Accept": _ACCEPT}) as response:
                if response.is_redirect:
                    location = response.headers.get("location")
                    if not location:
                        raise _FetchError(f"HTTP {response.status_code} without a Location")
                    if self._max_redirects == 0:
                        raise _FetchError(
                            f"HTTP {response.status_code} redirect to {location} not followed "
                            "(redirects are off): preload the context or name its final URL"
                        )
                    current = urljoin(current, location)
                    continue
                if response.status_code != 200:
                    raise _FetchError(f"HTTP {response.status_code} {response.reason_phrase}")
                declared = response.headers.get("content-length")
                if declared and declared.isdigit() and int(declared) > self._max_bytes:
                    raise _FetchError(
                        f"{declared} bytes, more than the {self._max_bytes} bytes allowed"
                    )
                chunks: builtins.list[bytes] = []
                size = 0
                async for chunk in response.aiter_bytes():
                    size += len(chunk)
                    if size > self._max_bytes:
                        raise _FetchError(f"more than the {self._max_bytes} bytes allowed")
                    chunks.append(chunk)
                return b"".join(chunks)
        raise _FetchError(f"more than {self._max_redirects} redirects")

    # Registry of contexts the broker hosts (/jsonldContexts)

    def add(self, url: str, document: Mapping[str, Any]) -> None:
        """Register `document` (an object with an `@context` member) under `url`; it wins over
        every other source. Contexts resolved with an earlier version are dropped from the LRU.
        Raises `BadRequestData` if the document has no usable `@context`."""
        if not isinstance(document, Mapping) or not _is_context_value(document.get("@context")):
            raise BadRequestData(
                f"@context document for {url}: expected an object with an @context member that"
                " is a URL, an object or a list of them"
            )
        with self._lock:
            self._registered[url] = document
            self._forget_contexts_using(url)

    def get(self, url: str) -> Mapping[str, Any] | None:
        """The registered document for `url`, or None."""
        with self._lock:
            return self._registered.get(url)

    def remove(self, url: str) -> bool:
        """Unregister `url`; False if it was not registered."""
        with self._lock:
            found = self._registered.pop(url, None) is not None
            if found:
                self._forget_contexts_using(url)
            return found

    def list(self, *, include_cached: bool = False) -> builtins.list[str]:
        """Registered URLs, sorted; with `include_cached`, also the preloaded and fetched ones
        held in memory."""
        with self._lock:
            urls = set(self._registered)
            if include_cached:
                urls.update(self._documents)
        return sorted(urls)

    def _forget_contexts_using(self, url: str) -> None:
        stale = [key for key, context in self._contexts.items() if url in context.urls]
        for key in stale:
            del self._contexts[key]


def _is_context_value(value: Any) -> bool:
    if isinstance(value, str | Mapping):
        return True
    return isinstance(value, list) and all(
        item is None or isinstance(item, str | Mapping) for item in value
    )


def _parse_document(raw: bytes) -> Mapping[str, Any]:
    try:
        document = json.loads(raw)
    except (ValueError, UnicodeDecodeError) as exc:
        raise _FetchError(f"not JSON ({exc})") from None
    if not isinstance(document, dict) or "@context" not in document:
        raise _FetchError("not a JSON-LD context document (no top-level @context member)")
    if not _is_context_value(document["@context"]):
        raise _FetchError("its @context is neither a URL, an object nor a list of them")
    return document


def _read_map_file(folder: Path) -> dict[str, Path]:
    for name in CONTEXT_MAP_FILES:
        map_file = folder / name
        if map_file.is_file():
            break
    else:
        raise ValueError(
            f"preload folder {folder}: no map file ({' or '.join(CONTEXT_MAP_FILES)}) found"
        )
    try:
        mapping = json.loads(map_file.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ValueError(f"context map file {map_file}: {exc}") from None
    if not isinstance(mapping, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in mapping.items()
    ):
        raise ValueError(
            f"context map file {map_file}: expected one JSON object from URL to file path"
        )
    return {url: folder / path for url, path in mapping.items()}


_default_lock = threading.Lock()
_default: ContextStore | None = None


def default_store() -> ContextStore:
    """A shared offline store without preloads: core URLs and inline contexts only."""
    global _default
    with _default_lock:
        if _default is None:
            _default = ContextStore()
        return _default
