"""Everything of the NGSI-LD client that does no I/O, shared by `Client` and `AsyncClient`.

The base builds requests (URLs under `/ngsi-ld/v1/`, each id quoted as one path segment,
`Accept` / `Content-Type` / `Link`, the query parameters, the `NGSILD-Tenant` header), reads
answers (ProblemDetails into exceptions, bodies into plain dicts and typed results) and writes
each operation once, as a flow (see `ngsi._paging`). The two faces only send.

@context rules, per request:

* No context: the broker's core context applies; bodies go as `application/json`.
* A context URL (str): sent as the `Link` header with `application/json` bodies.
* An inline context (a dict or a list): put into the body as `@context`, sent as
  `application/ld+json`. Requests without a body (reads, deletes of attributes) cannot carry an
  inline context: upload it with `add_context()` and use the URL it returns.
* A body that carries its own `@context` is sent as `application/ld+json` without `Link`. In a
  batch where some entities carry one, the others get the client's context (or the core one).
"""

from __future__ import annotations

import enum
import logging
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any, Literal, Protocol, TypeVar, runtime_checkable
from urllib.parse import quote, unquote

import httpx
import orjson
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from pydantic.alias_generators import to_camel

from ngsi._auth import BearerToken
from ngsi._batch import BatchFailure, BatchResult, batch_outcome, plan_chunks
from ngsi._context_http import format_link_header
from ngsi._core_context import CORE_CONTEXT_URL
from ngsi._errors import (
    ERROR_TYPE_BASE,
    InternalError,
    NgsiApiError,
    NgsiTransportError,
    ProblemDetails,
    error_from_problem,
)
from ngsi._geoquery import GeoQuery, parse_geoquery
from ngsi._paging import RESULTS_COUNT_HEADER, Flow, Pager, Send
from ngsi._profiles import BrokerProfile, get_profile
from ngsi._retry import RetryMode, RetryPolicy
from ngsi._subscription import Subscription, SubscriptionGeoQuery

__all__ = [
    "API_PREFIX",
    "DEFAULT_RETRIES",
    "TENANT_HEADER",
    "USE_CLIENT_DEFAULT",
    "BaseNgsiClient",
    "ClientState",
    "ContextArg",
    "EntityLike",
    "NotUpdatedDetails",
    "RawEntity",
    "SupportsToDict",
    "TimeoutArg",
    "UpdateResult",
    "UseClientDefault",
]

logger = logging.getLogger("ngsi.client")

T = TypeVar("T")

API_PREFIX = "/ngsi-ld/v1/"
TENANT_HEADER = "NGSILD-Tenant"
USER_AGENT = "drehscheibe-ngsi"
JSON = "application/json"
JSON_LD = "application/ld+json"
_QUERY_SAFE = ":,/@"
_PATH_SAFE = ":@"
_NOT_ATTRIBUTES = frozenset({"id", "type", "@context", "scope"})

DEFAULT_RETRIES = RetryPolicy()


class UseClientDefault:
    """The type of `USE_CLIENT_DEFAULT`: "not given, use the client's setting".

    Per-call `tenant`, `context` and `timeout` default to it, so that `None` keeps its own
    meaning (the default tenant, no context, no timeout).
    """

    _instance: UseClientDefault | None = None

    def __new__(cls) -> UseClientDefault:
        if cls._instance is None:
            cls._instance = super().__new__(cls)
        return cls._instance

    def __repr__(self) -> str:
        return "USE_CLIENT_DEFAULT"


USE_CLIENT_DEFAULT = UseClientDefault()


class ClientState(enum.Enum):
    """A client is UNOPENED until its first request or `with`, then OPENED, then CLOSED for good."""

    UNOPENED = 1
    OPENED = 2
    CLOSED = 3


@runtime_checkable
class SupportsToDict(Protocol):
    """An entity (or attribute fragment) object that knows its NGSI-LD JSON form."""

    def to_dict(self) -> Mapping[str, Any]: ...


EntityLike = Mapping[str, Any] | SupportsToDict


class RawEntity:
    """An entity already serialised as JSON, for the batch operations (`batch_create`,
    `batch_upsert`, `batch_update`): its bytes go into the request as they are, without being
    decoded and encoded again (a sender that keeps entities as JSON, such as an outbox, passes
    them through).

    Contract: `json` is one JSON object (compact or not) whose `id` member is `entity_id`, and
    without an `@context` member: the context comes from the call's `context` (or the client's),
    as for the other entities of the batch; when the batch goes with inline contexts, the
    client adds `@context` to the object. The client checks only that `json` looks like an
    object (`{` ... `}`); the broker judges the rest, per entity.
    """

    __slots__ = ("entity_id", "json")

    def __init__(self, entity_id: str, json: bytes) -> None:
        self.entity_id = entity_id
        self.json = json

    def __repr__(self) -> str:
        return f"RawEntity({self.entity_id!r}, {len(self.json)} bytes)"

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, RawEntity):
            return NotImplemented
        return self.entity_id == other.entity_id and self.json == other.json

    __hash__ = None  # type: ignore[assignment]


ContextArg = str | Mapping[str, Any] | Sequence[Any] | None
TimeoutArg = float | httpx.Timeout | None
Names = str | Sequence[str]
Options = str | Sequence[str]
GeoQueryArg = GeoQuery | SubscriptionGeoQuery | Mapping[str, Any]
TimeRel = Literal["before", "after", "between"]


class NotUpdatedDetails(BaseModel):
    """An attribute the broker did not update, and why."""

    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="allow")

    attribute_name: str
    reason: str | None = None


class UpdateResult(BaseModel):
    """The outcome of appending or updating attributes: a 204 updates all, a 207 some."""

    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="allow")

    updated: list[str] = Field(default_factory=list)
    not_updated: list[NotUpdatedDetails] = Field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.not_updated


def quote_segment(value: str) -> str:
    """`value` as one URL path segment: `/`, `?`, `#`, `%` and spaces are escaped, `:` is not."""
    if not value:
        raise ValueError("an id or name in a URL path must not be empty")
    return quote(value, safe=_PATH_SAFE)


def query_string(params: Mapping[str, str]) -> str:
    """Percent-encode parameters; spaces become `%20` (never `+`), `,` and `:` stay readable."""
    return "&".join(
        f"{quote(name, safe='')}={quote(value, safe=_QUERY_SAFE)}" for name, value in params.items()
    )


def dumps(value: Any) -> bytes:
    """Compact JSON; mappings, objects with `to_dict()` and pydantic models are written too."""
    return orjson.dumps(value, default=_json_default)


def _json_default(value: Any) -> Any:
    if isinstance(value, Mapping):
        return dict(value)
    if isinstance(value, set | frozenset):
        return list(value)
    if isinstance(value, Decimal):
        return float(value)
    if isinstance(value, BaseModel):
        return value.model_dump(mode="json", by_alias=True, exclude_none=True)
    to_dict = getattr(value, "to_dict", None)
    if callable(to_dict):
        return to_dict()
    raise TypeError(f"cannot write a {type(value).__name__} as JSON")


def as_dict(value: EntityLike | BaseModel, *, what: str = "entity") -> dict[str, Any]:
    """A plain dict from a mapping or from an object with `to_dict()`."""
    if isinstance(value, Mapping):
        return dict(value)
    to_dict = getattr(value, "to_dict", None)
    if callable(to_dict):
        result = to_dict()
        if isinstance(result, Mapping):
            return dict(result)
    raise TypeError(
        f"expected the {what} as a mapping or an object with to_dict(), got {type(value).__name__}"
    )


def geo_params(geoq: GeoQueryArg) -> dict[str, str]:
    """The georel / geometry / coordinates / geoproperty parameters of a geo-query.

    A mapping (or a subscription's geoQ) is validated first: a bad one raises `BadRequestData`
    naming the member, before anything is sent.
    """
    if isinstance(geoq, SubscriptionGeoQuery):
        geoq = geoq.model_dump(exclude_none=True)
    query = geoq if isinstance(geoq, GeoQuery) else parse_geoquery(dict(geoq))
    return query.to_params()


def join_names(value: Names | None) -> str | None:
    """One name, or several joined with commas as NGSI-LD parameters list them."""
    if value is None:
        return None
    if isinstance(value, str):
        return value
    joined = ",".join(value)
    return joined or None


def _iso(value: datetime | str, name: str) -> str:
    if isinstance(value, str):
        return value
    if value.tzinfo is None:
        raise ValueError(f"{name} must be timezone-aware (UTC), got the naive datetime {value}")
    return value.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _location_id(response: httpx.Response, collection: str) -> str | None:
    """The id in a `Location` such as `/ngsi-ld/v1/entities/<id>` (which may hold `/`)."""
    location = response.headers.get("Location")
    if not location:
        return None
    path = httpx.URL(location).raw_path.decode("ascii", "replace").split("?", 1)[0]
    marker = f"/{collection}/"
    if marker not in path:
        return None
    return unquote(path.split(marker, 1)[1]) or None


def _attribute_names(body: Mapping[str, Any]) -> list[str]:
    return [name for name in body if name not in _NOT_ATTRIBUTES]


class BaseNgsiClient:
    """Configuration, request building, answer reading and the operation flows."""

    _http: httpx.Client | httpx.AsyncClient

    def __init__(
        self,
        base_url: str,
        *,
        tenant: str | None,
        context: ContextArg,
        timeout: TimeoutArg,
        auth: httpx.Auth | str | None,
        profile: str | BrokerProfile,
        headers: Mapping[str, str] | None,
        retries: RetryPolicy,
    ) -> None:
        url = httpx.URL(base_url)
        if url.scheme not in ("http", "https") or not url.host:
            raise ValueError(
                f"base_url must be an http(s) URL such as http://localhost:1026, got {base_url!r}"
            )
        self.base_url = str(base_url).rstrip("/")
        self.tenant = tenant
        self.context = _check_context(context)
        self.timeout = httpx.Timeout(timeout)
        self.profile = get_profile(profile)
        self.retries = retries
        self.auth: httpx.Auth | None = BearerToken(auth) if isinstance(auth, str) else auth
        self.headers = httpx.Headers({"User-Agent": USER_AGENT})
        self.headers.update(headers or {})
        self._state = ClientState.UNOPENED
        self._owns_http = True

    def __repr__(self) -> str:
        tenant = f", tenant={self.tenant!r}" if self.tenant else ""
        return f"{type(self).__name__}({self.base_url!r}{tenant}, profile={self.profile.name!r})"

    # Lifecycle ---------------------------------------------------------------------------------

    @property
    def is_closed(self) -> bool:
        return self._state is ClientState.CLOSED

    def _check_open(self) -> None:
        if self._state is ClientState.CLOSED:
            raise RuntimeError(
                f"{type(self).__name__} for {self.base_url} is closed; make a new one"
            )
        self._state = ClientState.OPENED

    def _check_enter(self) -> None:
        if self._state is not ClientState.UNOPENED:
            raise RuntimeError(
                "cannot reopen a closed client"
                if self._state is ClientState.CLOSED
                else "the client is already open; enter it once, before its first request"
            )
        self._state = ClientState.OPENED

    # Per-call settings -------------------------------------------------------------------------

    def _tenant(self, tenant: str | UseClientDefault | None) -> str | None:
        return self.tenant if isinstance(tenant, UseClientDefault) else tenant

    def _context(self, context: ContextArg | UseClientDefault) -> ContextArg:
        return self.context if isinstance(context, UseClientDefault) else _check_context(context)

    def _timeout(self, timeout: TimeoutArg | UseClientDefault) -> httpx.Timeout:
        return self.timeout if isinstance(timeout, UseClientDefault) else httpx.Timeout(timeout)

    # Requests ----------------------------------------------------------------------------------

    def _url(self, path: str, params: Mapping[str, str | None] | None = None) -> str:
        url = self.base_url + API_PREFIX + path
        clean = {name: value for name, value in (params or {}).items() if value is not None}
        return url + "?" + query_string(clean) if clean else url

    def _step(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, str | None] | None = None,
        content: bytes | None = None,
        content_type: str | None = None,
        link: str | None = None,
        tenant: str | UseClientDefault | None,
        timeout: TimeoutArg | UseClientDefault,
        mode: RetryMode = RetryMode.IDEMPOTENT,
    ) -> Send:
        headers = httpx.Headers(self.headers)
        headers["Accept"] = JSON
        if content is not None:
            headers["Content-Type"] = content_type or JSON
        if link is not None:
            headers["Link"] = format_link_header(link)
        resolved_tenant = self._tenant(tenant)
        if resolved_tenant:
            headers[TENANT_HEADER] = resolved_tenant
        request = self._http.build_request(
            method,
            self._url(path, params),
            content=content,
            headers=headers,
            timeout=self._timeout(timeout),
        )
        return Send(request, mode)

    def _read(
        self,
        path: str,
        *,
        params: Mapping[str, str | None] | None = None,
        method: str = "GET",
        tenant: str | UseClientDefault | None,
        context: ContextArg | UseClientDefault,
        timeout: TimeoutArg | UseClientDefault,
    ) -> Send:
        """A request without a body whose names the broker expands with the context (`Link`)."""
        resolved = self._context(context)
        if resolved is not None and not isinstance(resolved, str):
            raise ValueError(
                f"{method} /ngsi-ld/v1/{path.split('?')[0]} has no body to carry an inline "
                "@context: upload it with add_context() and pass the URL it returns as context"
            )
        return self._step(
            method, path, params=params, link=resolved, tenant=tenant, timeout=timeout
        )

    def _write(
        self,
        method: str,
        path: str,
        body: Mapping[str, Any],
        *,
        params: Mapping[str, str | None] | None = None,
        tenant: str | UseClientDefault | None,
        context: ContextArg | UseClientDefault,
        timeout: TimeoutArg | UseClientDefault,
        mode: RetryMode = RetryMode.IDEMPOTENT,
    ) -> Send:
        """A request with a JSON object body, with the context applied to it."""
        resolved = self._context(context)
        link: str | None = None
        content_type = JSON
        if "@context" in body:
            content_type = JSON_LD
        elif isinstance(resolved, str):
            link = resolved
        elif resolved is not None:
            body = {**body, "@context": resolved}
            content_type = JSON_LD
        return self._step(
            method,
            path,
            params=params,
            content=dumps(body),
            content_type=content_type,
            link=link,
            tenant=tenant,
            timeout=timeout,
            mode=mode,
        )

    # Answers -----------------------------------------------------------------------------------

    def _body(self, response: httpx.Response) -> Any:
        if not response.content:
            return None
        try:
            return orjson.loads(response.content)
        except orjson.JSONDecodeError:
            if not response.is_success:
                return None
            raise InternalError(
                f"the broker answered {response.request.method} {response.request.url.path} "
                f"with {response.status_code} and a body that is not JSON",
                status=response.status_code,
                request=response.request,
                response=response,
            ) from None

    def _error(self, response: httpx.Response) -> NgsiApiError:
        body = self._body(response)
        return error_from_problem(
            body if isinstance(body, Mapping) else None,
            response.status_code,
            request=response.request,
            response=response,
        )

    def _check(self, response: httpx.Response) -> None:
        if not response.is_success:
            raise self._error(response)

    def _object(self, response: httpx.Response) -> dict[str, Any]:
        self._check(response)
        body = self._body(response)
        if not isinstance(body, dict):
            raise self._unexpected(response, "a JSON object")
        return body

    def _array(self, response: httpx.Response) -> list[Any]:
        self._check(response)
        body = self._body(response)
        if not isinstance(body, list):
            raise self._unexpected(response, "a JSON array")
        return body

    def _objects(self, response: httpx.Response) -> list[dict[str, Any]]:
        items = self._array(response)
        if not all(isinstance(item, dict) for item in items):
            raise self._unexpected(response, "a JSON array of objects")
        return items

    def _unexpected(self, response: httpx.Response, expected: str) -> NgsiApiError:
        request = response.request
        return InternalError(
            f"the broker answered {request.method} {request.url.path} with "
            f"{response.status_code} but not with {expected}",
            status=response.status_code,
            request=request,
            response=response,
        )

    def _empty_for_unknown_tenant(self, response: httpx.Response) -> bool:
        """True for a "no such tenant" answer the profile reads as empty; raises other errors."""
        if response.is_success:
            return False
        error = self._error(response)
        if (
            self.profile.empty_on_unknown_tenant
            and response.status_code == 404
            and error.problem.error_name in self.profile.unknown_tenant_errors
        ):
            return True
        raise error

    def _update_result(self, response: httpx.Response, body: Mapping[str, Any]) -> UpdateResult:
        self._check(response)
        if response.status_code == 207:
            parsed = self._body(response)
            if isinstance(parsed, Mapping):
                try:
                    return UpdateResult.model_validate(dict(parsed))
                except ValidationError:
                    pass
            raise self._unexpected(response, "an UpdateResult")
        return UpdateResult(updated=_attribute_names(body))

    def _created_id(
        self, response: httpx.Response, body: Mapping[str, Any], collection: str, what: str
    ) -> str:
        """The id of what was created: the one sent, else the one in `Location`."""
        self._check(response)
        given = body.get("id")
        if isinstance(given, str) and given:
            return given
        created = _location_id(response, collection)
        if created is None:
            raise self._unexpected(response, f"the Location of the new {what}")
        return created

    def _subscription(self, data: Any, response: httpx.Response) -> Subscription:
        if not isinstance(data, Mapping):
            raise self._unexpected(response, "a subscription object")
        try:
            return Subscription.from_dict(data)
        except ValidationError as exc:
            raise InternalError(
                f"the broker sent subscription {data.get('id')!r} in a form the client cannot "
                f"read: {exc.errors(include_url=False)}",
                status=response.status_code,
                request=response.request,
                response=response,
            ) from None

    # Parameters --------------------------------------------------------------------------------

    def _page_size(self, page_size: int | None) -> int:
        if page_size is None:
            return self.profile.max_page_size
        if page_size < 1:
            raise ValueError(f"page_size must be at least 1, got {page_size}")
        return min(page_size, self.profile.max_page_size)

    def _limit(self, limit: int | None) -> str | None:
        if limit is None:
            return None
        if not 1 <= limit <= self.profile.max_page_size:
            raise ValueError(
                f"limit must be between 1 and {self.profile.max_page_size} for the "
                f"{self.profile.name} profile, got {limit}; use iter_entities() or count()"
            )
        return str(limit)

    @staticmethod
    def _filters(
        *,
        type: Names | None,
        id: Names | None,
        id_pattern: str | None,
        attrs: Names | None,
        q: object | None,
        geoq: GeoQueryArg | None,
        options: Options | None = None,
    ) -> dict[str, str | None]:
        params: dict[str, str | None] = {
            "type": join_names(type),
            "id": join_names(id),
            "idPattern": id_pattern,
            "attrs": join_names(attrs),
            "q": None if q is None else str(q),
            "options": join_names(options),
        }
        if geoq is not None:
            params.update(geo_params(geoq))
        return params

    @staticmethod
    def _temporal(
        *,
        timerel: TimeRel | None,
        time_at: datetime | str | None,
        end_time_at: datetime | str | None,
        last_n: int | None,
    ) -> dict[str, str | None]:
        if timerel is None:
            if time_at is not None or end_time_at is not None:
                raise ValueError("time_at and end_time_at need timerel (before, after or between)")
        elif timerel not in ("before", "after", "between"):
            raise ValueError(f"timerel must be before, after or between, got {timerel!r}")
        elif time_at is None:
            raise ValueError(f"timerel={timerel!r} needs time_at")
        elif (timerel == "between") != (end_time_at is not None):
            raise ValueError("end_time_at goes with timerel='between', and only with it")
        if last_n is not None and last_n < 1:
            raise ValueError(f"last_n must be at least 1, got {last_n}")
        return {
            "timerel": timerel,
            "timeAt": None if time_at is None else _iso(time_at, "time_at"),
            "endTimeAt": None if end_time_at is None else _iso(end_time_at, "end_time_at"),
            "lastN": None if last_n is None else str(last_n),
        }

    # Entity flows ------------------------------------------------------------------------------

    def _create_flow(
        self,
        entity: EntityLike,
        *,
        tenant: str | UseClientDefault | None,
        context: ContextArg | UseClientDefault,
        timeout: TimeoutArg | UseClientDefault,
    ) -> Flow[str]:
        body = as_dict(entity)
        response = yield self._write(
            "POST",
            "entities",
            body,
            tenant=tenant,
            context=context,
            timeout=timeout,
            mode=RetryMode.NOT_SENT_ONLY,
        )
        return self._created_id(response, body, "entities", "entity")

    def _retrieve_flow(
        self,
        entity_id: str,
        *,
        attrs: Names | None,
        options: Options | None,
        pick: Names | None,
        omit: Names | None,
        tenant: str | UseClientDefault | None,
        context: ContextArg | UseClientDefault,
        timeout: TimeoutArg | UseClientDefault,
    ) -> Flow[dict[str, Any]]:
        params = {
            "attrs": join_names(attrs),
            "options": join_names(options),
            "pick": join_names(pick),
            "omit": join_names(omit),
        }
        response = yield self._read(
            f"entities/{quote_segment(entity_id)}",
            params=params,
            tenant=tenant,
            context=context,
            timeout=timeout,
        )
        return self._object(response)

    def _replace_flow(
        self,
        entity_id: str,
        entity: EntityLike,
        *,
        tenant: str | UseClientDefault | None,
        context: ContextArg | UseClientDefault,
        timeout: TimeoutArg | UseClientDefault,
    ) -> Flow[None]:
        response = yield self._write(
            "PUT",
            f"entities/{quote_segment(entity_id)}",
            as_dict(entity),
            tenant=tenant,
            context=context,
            timeout=timeout,
        )
        self._check(response)

    def _delete_flow(
        self,
        entity_id: str,
        *,
        tenant: str | UseClientDefault | None,
        timeout: TimeoutArg | UseClientDefault,
    ) -> Flow[None]:
        response = yield self._step(
            "DELETE", f"entities/{quote_segment(entity_id)}", tenant=tenant, timeout=timeout
        )
        self._check(response)

    def _append_attrs_flow(
        self,
        entity_id: str,
        attrs: EntityLike,
        *,
        no_overwrite: bool,
        tenant: str | UseClientDefault | None,
        context: ContextArg | UseClientDefault,
        timeout: TimeoutArg | UseClientDefault,
    ) -> Flow[UpdateResult]:
        body = as_dict(attrs, what="attributes")
        response = yield self._write(
            "POST",
            f"entities/{quote_segment(entity_id)}/attrs",
            body,
            params={"options": "noOverwrite" if no_overwrite else None},
            tenant=tenant,
            context=context,
            timeout=timeout,
        )
        return self._update_result(response, body)

    def _update_attrs_flow(
        self,
        entity_id: str,
        attrs: EntityLike,
        *,
        tenant: str | UseClientDefault | None,
        context: ContextArg | UseClientDefault,
        timeout: TimeoutArg | UseClientDefault,
    ) -> Flow[UpdateResult]:
        body = as_dict(attrs, what="attributes")
        response = yield self._write(
            "PATCH",
            f"entities/{quote_segment(entity_id)}/attrs",
            body,
            tenant=tenant,
            context=context,
            timeout=timeout,
        )
        return self._update_result(response, body)

    def _partial_update_attr_flow(
        self,
        entity_id: str,
        attr: str,
        fragment: EntityLike,
        *,
        tenant: str | UseClientDefault | None,
        context: ContextArg | UseClientDefault,
        timeout: TimeoutArg | UseClientDefault,
    ) -> Flow[None]:
        response = yield self._write(
            "PATCH",
            f"entities/{quote_segment(entity_id)}/attrs/{quote_segment(attr)}",
            as_dict(fragment, what="attribute fragment"),
            tenant=tenant,
            context=context,
            timeout=timeout,
        )
        self._check(response)

    def _delete_attr_flow(
        self,
        entity_id: str,
        attr: str,
        *,
        dataset_id: str | None,
        delete_all: bool,
        tenant: str | UseClientDefault | None,
        context: ContextArg | UseClientDefault,
        timeout: TimeoutArg | UseClientDefault,
    ) -> Flow[None]:
        if dataset_id is not None and delete_all:
            raise ValueError("give dataset_id or delete_all, not both")
        response = yield self._read(
            f"entities/{quote_segment(entity_id)}/attrs/{quote_segment(attr)}",
            method="DELETE",
            params={"datasetId": dataset_id, "deleteAll": "true" if delete_all else None},
            tenant=tenant,
            context=context,
            timeout=timeout,
        )
        self._check(response)

    # Batch flows -------------------------------------------------------------------------------

    def _batch_entities_flow(
        self,
        operation: str,
        entities: Iterable[EntityLike | RawEntity],
        *,
        params: Mapping[str, str | None],
        mode: RetryMode,
        tenant: str | UseClientDefault | None,
        context: ContextArg | UseClientDefault,
        timeout: TimeoutArg | UseClientDefault,
    ) -> Flow[BatchResult]:
        bodies: list[dict[str, Any] | RawEntity] = [
            entity if isinstance(entity, RawEntity) else as_dict(entity) for entity in entities
        ]
        resolved = self._context(context)
        inline = any(not isinstance(body, RawEntity) and "@context" in body for body in bodies) or (
            resolved is not None and not isinstance(resolved, str)
        )
        link: str | None = None
        content_type = JSON
        context_tail = b""
        if inline:
            content_type = JSON_LD
            default = resolved if resolved is not None else CORE_CONTEXT_URL
            context_tail = b',"@context":' + dumps(default) + b"}"
            bodies = [
                body
                if isinstance(body, RawEntity) or "@context" in body
                else {**body, "@context": default}
                for body in bodies
            ]
        elif isinstance(resolved, str):
            link = resolved
        refused: list[BatchFailure] = []
        parts: list[tuple[str, bytes]] = []
        for index, body in enumerate(bodies):
            if isinstance(body, RawEntity):
                raw = _raw_part(body, index, context_tail)
                if isinstance(raw, BatchFailure):
                    refused.append(raw)
                else:
                    parts.append(raw)
                continue
            entity_id = body.get("id")
            if not isinstance(entity_id, str) or not entity_id:
                refused.append(_refused("", 400, f"entity #{index} of the batch has no 'id'"))
                continue
            try:
                parts.append((entity_id, dumps(body)))
            except TypeError as exc:
                refused.append(_refused(entity_id, 400, f"entity {entity_id!r}: {exc}"))
        result = yield from self._batch_chunks_flow(
            operation,
            parts,
            refused=refused,
            params=params,
            content_type=content_type,
            link=link,
            mode=mode,
            tenant=tenant,
            timeout=timeout,
        )
        return result

    def _batch_delete_flow(
        self,
        entity_ids: Iterable[str],
        *,
        tenant: str | UseClientDefault | None,
        timeout: TimeoutArg | UseClientDefault,
    ) -> Flow[BatchResult]:
        refused: list[BatchFailure] = []
        parts: list[tuple[str, bytes]] = []
        for index, entity_id in enumerate(entity_ids):
            if not isinstance(entity_id, str) or not entity_id:
                refused.append(_refused("", 400, f"id #{index} of the batch is empty"))
            else:
                parts.append((entity_id, dumps(entity_id)))
        result = yield from self._batch_chunks_flow(
            "delete",
            parts,
            refused=refused,
            params={},
            content_type=JSON,
            link=None,
            mode=RetryMode.IDEMPOTENT,
            tenant=tenant,
            timeout=timeout,
        )
        return result

    def _batch_chunks_flow(
        self,
        operation: str,
        parts: Sequence[tuple[str, bytes]],
        *,
        refused: list[BatchFailure],
        params: Mapping[str, str | None],
        content_type: str,
        link: str | None,
        mode: RetryMode,
        tenant: str | UseClientDefault | None,
        timeout: TimeoutArg | UseClientDefault,
    ) -> Flow[BatchResult]:
        profile = self.profile
        chunks, too_large = plan_chunks(
            parts, max_entities=profile.max_batch_entities, max_bytes=profile.max_batch_bytes
        )
        result = BatchResult(failed=list(refused))
        for entity_id, size in too_large:
            detail = (
                f"entity {entity_id!r} is {size} bytes as JSON, more than the "
                f"{profile.max_batch_bytes} bytes one request may carry to {profile.name}; "
                "it was not sent"
            )
            result.failed.append(_refused(entity_id, 413, detail))
        for index, chunk in enumerate(chunks):
            step = self._step(
                "POST",
                f"entityOperations/{operation}",
                params=params,
                content=chunk.body,
                content_type=content_type,
                link=link,
                tenant=tenant,
                timeout=timeout,
                mode=mode,
            )
            try:
                response = yield step
            except NgsiTransportError as exc:
                for later in chunks[index:]:
                    problem = _no_answer(exc, sent=later is chunk)
                    result.failed.extend(
                        BatchFailure(entity_id=entity_id, problem=problem, status=None)
                        for entity_id in later.ids
                    )
                break
            result.extend(self._chunk_outcome(response, chunk.ids))
        return result

    def _chunk_outcome(self, response: httpx.Response, ids: list[str]) -> BatchResult:
        body = self._body(response)
        whole: ProblemDetails | None = None
        if not response.is_success:
            whole = self._error(response).problem
            logger.warning(
                "batch request %s %s rejected as a whole: %s %s",
                response.request.method,
                response.request.url.path,
                response.status_code,
                whole.detail or whole.title or whole.type,
            )
        return batch_outcome(
            response.status_code, body, ids, parser=self.profile.parse_batch, whole_problem=whole
        )

    # Query flows -------------------------------------------------------------------------------

    def _query_flow(
        self,
        params: dict[str, str | None],
        *,
        tenant: str | UseClientDefault | None,
        context: ContextArg | UseClientDefault,
        timeout: TimeoutArg | UseClientDefault,
        path: str = "entities",
    ) -> Flow[list[dict[str, Any]]]:
        response = yield self._read(
            path, params=params, tenant=tenant, context=context, timeout=timeout
        )
        if self._empty_for_unknown_tenant(response):
            return []
        return self._objects(response)

    def _entity_pager(
        self,
        params: dict[str, str | None],
        *,
        page_size: int | None,
        tenant: str | UseClientDefault | None,
        context: ContextArg | UseClientDefault,
        timeout: TimeoutArg | UseClientDefault,
    ) -> Pager[dict[str, Any]]:
        def build(offset: int, limit: int, count: bool) -> Send:
            page = {
                **params,
                "limit": str(limit),
                "offset": str(offset) if offset else None,
                "count": "true" if count else None,
            }
            return self._read(
                "entities", params=page, tenant=tenant, context=context, timeout=timeout
            )

        return Pager(
            build=build,
            page_size=self._page_size(page_size),
            parse=self._objects,
            empty=self._empty_for_unknown_tenant,
        )

    def _count_flow(
        self,
        params: dict[str, str | None],
        *,
        tenant: str | UseClientDefault | None,
        context: ContextArg | UseClientDefault,
        timeout: TimeoutArg | UseClientDefault,
    ) -> Flow[int]:
        params = {**params, "count": "true", "limit": "0"}
        response = yield self._read(
            "entities", params=params, tenant=tenant, context=context, timeout=timeout
        )
        if self._empty_for_unknown_tenant(response):
            return 0
        value = response.headers.get(RESULTS_COUNT_HEADER, "").strip()
        if not value.isdigit():
            raise self._unexpected(response, f"a {RESULTS_COUNT_HEADER} header")
        return int(value)

    def _names_flow(
        self,
        path: str,
        key: str,
        *,
        tenant: str | UseClientDefault | None,
        context: ContextArg | UseClientDefault,
        timeout: TimeoutArg | UseClientDefault,
    ) -> Flow[list[str]]:
        response = yield self._read(path, tenant=tenant, context=context, timeout=timeout)
        if self._empty_for_unknown_tenant(response):
            return []
        body = self._body(response)
        if isinstance(body, Mapping) and isinstance(body.get(key), list):
            return [str(name) for name in body[key]]
        if isinstance(body, list):
            # the detailed form: one object per name
            return [
                str(item.get("typeName") or item.get("attributeName") or item.get("id"))
                for item in body
                if isinstance(item, Mapping)
            ]
        raise self._unexpected(response, f"a list of names under {key!r}")

    def _info_flow(
        self,
        path: str,
        *,
        tenant: str | UseClientDefault | None,
        context: ContextArg | UseClientDefault,
        timeout: TimeoutArg | UseClientDefault,
    ) -> Flow[dict[str, Any]]:
        response = yield self._read(path, tenant=tenant, context=context, timeout=timeout)
        return self._object(response)

    # Subscription flows ------------------------------------------------------------------------

    def _create_subscription_flow(
        self,
        subscription: Subscription | Mapping[str, Any],
        *,
        tenant: str | UseClientDefault | None,
        context: ContextArg | UseClientDefault,
        timeout: TimeoutArg | UseClientDefault,
    ) -> Flow[str]:
        if isinstance(subscription, Subscription):
            body = subscription.to_dict()
        else:
            body = as_dict(subscription, what="subscription")
        response = yield self._write(
            "POST",
            "subscriptions",
            body,
            tenant=tenant,
            context=context,
            timeout=timeout,
            mode=RetryMode.NOT_SENT_ONLY,
        )
        return self._created_id(response, body, "subscriptions", "subscription")

    def _subscription_pager(
        self,
        *,
        tenant: str | UseClientDefault | None,
        context: ContextArg | UseClientDefault,
        timeout: TimeoutArg | UseClientDefault,
    ) -> Pager[Subscription]:
        def build(offset: int, limit: int, count: bool) -> Send:
            params = {
                "limit": str(limit),
                "offset": str(offset) if offset else None,
                "count": "true" if count else None,
            }
            return self._read(
                "subscriptions", params=params, tenant=tenant, context=context, timeout=timeout
            )

        def parse(response: httpx.Response) -> list[Subscription]:
            return [self._subscription(item, response) for item in self._array(response)]

        return Pager(
            build=build,
            page_size=self.profile.max_page_size,
            parse=parse,
            empty=self._empty_for_unknown_tenant,
        )

    def _retrieve_subscription_flow(
        self,
        subscription_id: str,
        *,
        tenant: str | UseClientDefault | None,
        context: ContextArg | UseClientDefault,
        timeout: TimeoutArg | UseClientDefault,
    ) -> Flow[Subscription]:
        response = yield self._read(
            f"subscriptions/{quote_segment(subscription_id)}",
            tenant=tenant,
            context=context,
            timeout=timeout,
        )
        return self._subscription(self._object(response), response)

    def _update_subscription_flow(
        self,
        subscription_id: str,
        fragment: Subscription | Mapping[str, Any],
        *,
        tenant: str | UseClientDefault | None,
        context: ContextArg | UseClientDefault,
        timeout: TimeoutArg | UseClientDefault,
    ) -> Flow[None]:
        if isinstance(fragment, Subscription):
            body = fragment.to_dict()
            body.pop("id", None)
        else:
            body = as_dict(fragment, what="subscription fragment")
        response = yield self._write(
            "PATCH",
            f"subscriptions/{quote_segment(subscription_id)}",
            body,
            tenant=tenant,
            context=context,
            timeout=timeout,
        )
        self._check(response)

    def _delete_subscription_flow(
        self,
        subscription_id: str,
        *,
        tenant: str | UseClientDefault | None,
        timeout: TimeoutArg | UseClientDefault,
    ) -> Flow[None]:
        response = yield self._step(
            "DELETE",
            f"subscriptions/{quote_segment(subscription_id)}",
            tenant=tenant,
            timeout=timeout,
        )
        self._check(response)

    # Temporal flows ----------------------------------------------------------------------------

    def _temporal_retrieve_flow(
        self,
        entity_id: str,
        params: dict[str, str | None],
        *,
        tenant: str | UseClientDefault | None,
        context: ContextArg | UseClientDefault,
        timeout: TimeoutArg | UseClientDefault,
    ) -> Flow[dict[str, Any]]:
        response = yield self._read(
            f"temporal/entities/{quote_segment(entity_id)}",
            params=params,
            tenant=tenant,
            context=context,
            timeout=timeout,
        )
        return self._object(response)

    # @context flows ----------------------------------------------------------------------------

    def _add_context_flow(
        self, document: Mapping[str, Any], *, timeout: TimeoutArg | UseClientDefault
    ) -> Flow[str]:
        body = dict(document) if "@context" in document else {"@context": dict(document)}
        response = yield self._step(
            "POST",
            "jsonldContexts",
            content=dumps(body),
            content_type=JSON,
            tenant=None,
            timeout=timeout,
            mode=RetryMode.NOT_SENT_ONLY,
        )
        self._check(response)
        location = response.headers.get("Location")
        if not location:
            raise self._unexpected(response, "the Location of the stored @context")
        return str(response.request.url.join(location))

    def _context_segment(self, context_id: str) -> str:
        """The local id of a context this broker hosts, also when given as its URL."""
        own = self.base_url + API_PREFIX + "jsonldContexts/"
        if context_id.startswith(own) and len(context_id) > len(own):
            return quote_segment(unquote(context_id[len(own) :]))
        return quote_segment(context_id)

    def _contexts_flow(
        self,
        *,
        details: bool,
        kind: str | None,
        timeout: TimeoutArg | UseClientDefault,
    ) -> Flow[list[Any]]:
        params = {"details": "true" if details else None, "kind": kind}
        response = yield self._step(
            "GET", "jsonldContexts", params=params, tenant=None, timeout=timeout
        )
        return self._array(response)

    def _context_flow(
        self, context_id: str, *, details: bool, timeout: TimeoutArg | UseClientDefault
    ) -> Flow[dict[str, Any]]:
        response = yield self._step(
            "GET",
            f"jsonldContexts/{self._context_segment(context_id)}",
            params={"details": "true" if details else None},
            tenant=None,
            timeout=timeout,
        )
        return self._object(response)

    def _delete_context_flow(
        self, context_id: str, *, reload: bool, timeout: TimeoutArg | UseClientDefault
    ) -> Flow[None]:
        response = yield self._step(
            "DELETE",
            f"jsonldContexts/{self._context_segment(context_id)}",
            params={"reload": "true" if reload else None},
            tenant=None,
            timeout=timeout,
        )
        self._check(response)

    # Sending helpers shared by the faces -------------------------------------------------------

    def _log_retry(self, request: httpx.Request) -> Any:
        attempts = self.retries.attempts

        def on_retry(outcome: httpx.Response | BaseException, attempt: int, delay: float) -> None:
            if isinstance(outcome, httpx.Response):
                reason = f"{outcome.status_code} {outcome.reason_phrase}".strip()
                if "Retry-After" in outcome.headers:
                    reason += f" (Retry-After {outcome.headers['Retry-After']})"
            else:
                reason = f"{type(outcome).__name__}: {outcome}"
            logger.warning(
                "retrying %s %s in %.3f s: try %d of %d failed with %s",
                request.method,
                request.url,
                delay,
                attempt,
                attempts,
                reason,
            )

        return on_retry

    @staticmethod
    def _transport_error(exc: Exception, request: httpx.Request) -> NgsiTransportError:
        text = str(exc) or type(exc).__name__
        return NgsiTransportError(
            f"{request.method} {request.url} got no answer: {type(exc).__name__}: {text}",
            request=request,
        )


def _check_context(context: Any) -> ContextArg:
    if context is None or isinstance(context, str | Mapping):
        return context
    if isinstance(context, Sequence) and not isinstance(context, bytes | bytearray):
        return context
    raise TypeError(
        "context must be a URL (str), an inline @context (dict or list) or None, "
        f"got {type(context).__name__}"
    )


def _raw_part(
    entity: RawEntity, index: int, context_tail: bytes
) -> tuple[str, bytes] | BatchFailure:
    """A `RawEntity` as a batch part (with `context_tail`, the `,"@context":...}` to end it
    with, when the batch goes with inline contexts), or why it is not sent."""
    entity_id = entity.entity_id
    if not isinstance(entity_id, str) or not entity_id:
        return _refused("", 400, f"entity #{index} of the batch has no 'id'")
    given: object = entity.json
    if not isinstance(given, bytes | bytearray | memoryview):
        return _refused(entity_id, 400, f"entity {entity_id!r}: its JSON is not bytes")
    body = given if type(given) is bytes else bytes(given)
    if body[:1] != b"{" or body[-1:] != b"}":
        body = body.strip()
        if body[:1] != b"{" or body[-1:] != b"}":
            return _refused(entity_id, 400, f"entity {entity_id!r}: its JSON is not an object")
    if context_tail:
        inner = body[1:-1].strip()
        body = (b"{" + inner + context_tail) if inner else (b"{" + context_tail[1:])
    return entity_id, body


def _refused(entity_id: str, status: int, detail: str) -> BatchFailure:
    name = "BadRequestData"
    problem = ProblemDetails(
        type=ERROR_TYPE_BASE + name,
        title="Not sent: the client refused this entity",
        detail=detail,
        status=status,
    )
    return BatchFailure(entity_id=entity_id, problem=problem, status=status)


def _no_answer(exc: NgsiTransportError, *, sent: bool) -> ProblemDetails:
    if sent:
        detail = f"no answer to the batch request that carried this entity ({exc}); outcome unknown"
    else:
        detail = f"not sent: an earlier request of the batch got no answer ({exc})"
    return ProblemDetails(
        type=ERROR_TYPE_BASE + "InternalError",
        title="No answer from the broker",
        detail=detail,
    )
