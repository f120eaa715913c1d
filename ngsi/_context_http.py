"""@context on the wire: the JSON-LD Link header and NGSI-LD's rules for where a context may be.

NGSI-LD rules applied by `context_from_request`:

- `Content-Type: application/ld+json`: the context is the body's `@context` member, which must be
  there; a JSON-LD Link header as well is refused with `BadRequestData` (NGSI-LD forbids both
  at once, and Orion-LD answers 400 to it).
- Any other content type (`application/json`, `application/merge-patch+json`) or none (GET,
  DELETE): the context comes from the Link header; an `@context` member in the body is refused
  with `BadRequestData`. No Link header means the core context alone.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Final
from urllib.parse import urlsplit

from ngsi._errors import BadRequestData

if TYPE_CHECKING:
    from ngsi._context import Context
    from ngsi._context_store import ContextStore

__all__ = [
    "JSONLD_CONTEXT_REL",
    "JSONLD_MEDIA_TYPE",
    "acontext_from_request",
    "cached_context_from_request",
    "context_from_request",
    "format_link_header",
    "parse_link_header",
]

JSONLD_CONTEXT_REL: Final = "http://www.w3.org/ns/json-ld#context"
"""The link relation of a JSON-LD context link."""

JSONLD_MEDIA_TYPE: Final = "application/ld+json"


def format_link_header(url: str) -> str:
    """The Link header value that points at a JSON-LD context, exactly as NGSI-LD spells it."""
    return f'<{url}>; rel="{JSONLD_CONTEXT_REL}"; type="{JSONLD_MEDIA_TYPE}"'


def _split_outside(text: str, separator: str) -> list[str]:
    """Split on `separator` except inside `<...>` and double quotes."""
    parts: list[str] = []
    current: list[str] = []
    in_angle = in_quote = False
    for char in text:
        if char == '"' and not in_angle:
            in_quote = not in_quote
        elif char == "<" and not in_quote:
            in_angle = True
        elif char == ">" and not in_quote:
            in_angle = False
        elif char == separator and not in_angle and not in_quote:
            parts.append("".join(current))
            current = []
            continue
        current.append(char)
    parts.append("".join(current))
    return parts


def _bad_link(value: str, reason: str) -> BadRequestData:
    return BadRequestData(f"Link header {value!r}: {reason}")


def parse_link_header(value: str | None) -> str | None:
    """The JSON-LD context URL in a Link header value, or None if it has no context link.

    Accepts several comma-separated links (others, such as `rel="next"`, are ignored), any
    spacing, quoted or bare parameter values, and `rel` lists. A context link without `type` is
    accepted. Raises `BadRequestData` naming the header when a link is malformed, has no `rel`,
    when there are several context links, or when the URL is not an absolute http(s) URL.
    """
    if value is None or not value.strip():
        return None
    found: list[str] = []
    for link in _split_outside(value, ","):
        link = link.strip()
        if not link:
            continue
        if not link.startswith("<"):
            raise _bad_link(value, "expected <URL>; rel=...; type=...")
        end = link.find(">")
        if end < 0:
            raise _bad_link(value, "the URL is not closed by '>'")
        url = link[1:end].strip()
        params: dict[str, str] = {}
        for param in _split_outside(link[end + 1 :], ";"):
            param = param.strip()
            if not param:
                continue
            name, sep, raw = param.partition("=")
            if not sep:
                raise _bad_link(value, f"parameter {param!r} has no value")
            raw = raw.strip()
            if len(raw) >= 2 and raw[0] == raw[-1] == '"':
                raw = raw[1:-1]
            params[name.strip().lower()] = raw.strip()
        if "rel" not in params:
            raise _bad_link(
                value, f'the link to {url} has no rel (expected rel="{JSONLD_CONTEXT_REL}")'
            )
        if JSONLD_CONTEXT_REL in params["rel"].split():
            found.append(url)
    if not found:
        return None
    if len(set(found)) > 1:
        raise _bad_link(value, "more than one JSON-LD context link")
    url = found[0]
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise _bad_link(value, f"the context URL {url!r} is not an absolute http(s) URL")
    return url


def _context_spec(link_header: str | None, body_context: Any, content_type: str | None) -> Any:
    media_type = (content_type or "").split(";", 1)[0].strip().lower()
    if media_type == JSONLD_MEDIA_TYPE:
        if parse_link_header(link_header) is not None:
            raise BadRequestData(
                "a JSON-LD Link header cannot be used with Content-Type application/ld+json:"
                " put the @context in the body, or send Content-Type application/json"
            )
        if body_context is None:
            raise BadRequestData(
                "Content-Type application/ld+json needs an @context member in the body"
            )
        return body_context
    if body_context is not None:
        raise BadRequestData(
            f"an @context member in the body needs Content-Type application/ld+json"
            f" (got {media_type or 'none'}); with application/json, send the context in a Link"
            " header"
        )
    return parse_link_header(link_header)


def context_from_request(
    link_header: str | None,
    body_context: Any | None,
    content_type: str | None,
    store: ContextStore,
) -> Context:
    """The active context of an NGSI-LD request (see the module documentation for the rules).

    `body_context` is the body's `@context` member (None when absent: `"@context": null` counts as
    absent); for a batch, call once per entity. `content_type` is the request's Content-Type
    header (parameters ignored), or None/"" without a body. Raises `BadRequestData` for a
    misplaced or missing context and `LdContextNotAvailable` when a URL cannot be resolved.
    Resolution may read a file or, if the store allows it, fetch a URL: from `async` code, use
    `acontext_from_request`.
    """
    return store.resolve(_context_spec(link_header, body_context, content_type))


def cached_context_from_request(
    link_header: str | None,
    body_context: Any | None,
    content_type: str | None,
    store: ContextStore,
) -> Context | None:
    """`context_from_request` when the context is in memory already (`store.cached`), else
    None: safe on an event loop."""
    return store.cached(_context_spec(link_header, body_context, content_type))


async def acontext_from_request(
    link_header: str | None,
    body_context: Any | None,
    content_type: str | None,
    store: ContextStore,
) -> Context:
    """`context_from_request` for `async` code: never blocks the event loop (`store.aresolve`)."""
    return await store.aresolve(_context_spec(link_header, body_context, content_type))
