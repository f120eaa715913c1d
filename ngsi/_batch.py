"""Batch operations: results, the brokers' 207 bodies, and chunking to a broker's limits.

A batch (`/entityOperations/create|upsert|update|delete`) answers 201 (ids created), 204 (all
done) or 207 (some failed). Brokers shape the 207 body differently:

* Orion-LD and the embedded broker: ``{"success": [id, ...], "errors": [{"entityId": id,
  "error": {type, title, detail, status}}]}``.
* Stellio: the same keys; ``error`` is a ProblemDetails in current releases and a list of
  message strings in older ones.
* Scorpio 5: ``{"success": [id, ...], "errors": [{"id": id, "type": "Upsert", "ProblemDetails":
  {type, title, detail, status}}]}``; when every entity failed it answers 400/404/409 with the
  same body without ``success``. Scorpio 4 answered a list of per-entity objects
  ``[{"id": id, "success": [...]}, {"id": id, "failure": [{type, title, detail, errorCode}]}]``.

`parse_batch_body` reads all of these and never raises. The rule for what counts as done is
written down in `batch_outcome`: an entity succeeded only when the broker said so.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import orjson
from pydantic import BaseModel, ConfigDict, Field

from ngsi._errors import ERROR_TYPE_BASE, ProblemDetails, error_from_problem

__all__ = [
    "BatchFailure",
    "BatchParser",
    "BatchResult",
    "Chunk",
    "ParsedBatchBody",
    "batch_outcome",
    "parse_batch_body",
    "plan_chunks",
]


class BatchFailure(BaseModel):
    """One entity of a batch that was not done, with the reason.

    `status` is the HTTP status the broker gave for this entity (its ProblemDetails `status`, or
    the status of the whole answer when the broker rejected the request as a whole). Entities the
    client refused to send carry the status the broker would have given (413 for an entity larger
    than a request may be, 400 for an entity without an id). `status` is None when no answer came
    back at all (the connection failed after the retries), so the outcome is unknown.
    """

    model_config = ConfigDict(frozen=True)

    entity_id: str
    problem: ProblemDetails
    status: int | None = None

    @property
    def permanent(self) -> bool:
        """True when sending the same entity again cannot succeed: the broker rejected it (4xx).

        Not permanent: no answer, 5xx, an outcome unknown, and the 4xx that are about the
        request rather than the entity (401, 403, 407 credentials; 408 timeout; 429 rate). An
        at-least-once sender dead-letters permanent failures and keeps the others for later.
        """
        return (
            self.status is not None
            and 400 <= self.status < 500
            and self.status not in _NOT_ABOUT_THE_ENTITY
        )


class BatchResult(BaseModel):
    """What a batch operation did, whatever the broker answered (201, 204, 207 or an error).

    `succeeded` lists the ids the broker confirmed, in the order they were sent; `failed` holds
    one `BatchFailure` per entity that was rejected, refused by the client, or whose outcome is
    unknown.
    """

    succeeded: list[str] = Field(default_factory=list)
    failed: list[BatchFailure] = Field(default_factory=list)

    @property
    def ok(self) -> bool:
        """True when every entity of the batch was confirmed."""
        return not self.failed

    @property
    def failed_ids(self) -> list[str]:
        return [failure.entity_id for failure in self.failed]

    def extend(self, other: BatchResult) -> None:
        """Append the outcome of another chunk of the same batch."""
        self.succeeded.extend(other.succeeded)
        self.failed.extend(other.failed)


@dataclass(frozen=True)
class ParsedBatchBody:
    """What a batch answer's body says: confirmed ids and per-entity problems."""

    success: list[str]
    errors: list[BatchFailure]


BatchParser = Callable[[Any, int], ParsedBatchBody]
"""Reads a batch answer body (decoded JSON) given the answer's status; must never raise."""

_NOT_ABOUT_THE_ENTITY = frozenset({401, 403, 407, 408, 429})
_ID_KEYS = ("entityId", "id", "entity_id", "@id")
_PROBLEM_KEYS = ("error", "ProblemDetails", "problemDetails", "problem", "failure", "failures")
_ERROR_LIST_KEYS = ("errors", "failure", "failures", "error")
_SUCCESS_LIST_KEYS = ("success", "created", "updated")


def parse_batch_body(body: Any, status: int) -> ParsedBatchBody:
    """Read any known batch answer body; unknown shapes give empty lists, never an exception.

    `status` is the status of the whole answer: it becomes an entity's status when its problem
    names none.
    """
    success: list[str] = []
    errors: list[BatchFailure] = []
    if isinstance(body, Mapping):
        for key in _SUCCESS_LIST_KEYS:
            success.extend(_ids(body.get(key)))
        for key in _ERROR_LIST_KEYS:
            value = body.get(key)
            if isinstance(value, list):
                errors.extend(_failures(value, status))
                break
    elif isinstance(body, list):
        for item in body:
            if isinstance(item, str):
                success.append(item)
            elif isinstance(item, Mapping):
                _read_entity_report(item, status, success, errors)
    return ParsedBatchBody(success=success, errors=errors)


def _read_entity_report(
    item: Mapping[str, Any], status: int, success: list[str], errors: list[BatchFailure]
) -> None:
    """One per-entity object of a list-shaped body (Scorpio 4)."""
    entity_id = _entity_id(item)
    if entity_id is None:
        return
    failure = item.get("failure") or item.get("failures") or item.get("errors")
    if failure:
        problem, entity_status = _problem(failure, status)
        errors.append(BatchFailure(entity_id=entity_id, problem=problem, status=entity_status))
    elif "success" in item:
        success.append(entity_id)


def _ids(value: Any) -> list[str]:
    if isinstance(value, Mapping):
        # {id: flag} maps: the keys are the ids.
        return [key for key in value if isinstance(key, str)]
    if not isinstance(value, list):
        return []
    found: list[str] = []
    for item in value:
        if isinstance(item, str):
            found.append(item)
        elif isinstance(item, Mapping):
            entity_id = _entity_id(item)
            if entity_id is not None:
                found.append(entity_id)
    return found


def _entity_id(item: Mapping[str, Any]) -> str | None:
    for key in _ID_KEYS:
        value = item.get(key)
        if isinstance(value, str) and value:
            return value
    return None


def _failures(entries: Iterable[Any], status: int) -> list[BatchFailure]:
    found: list[BatchFailure] = []
    for entry in entries:
        if not isinstance(entry, Mapping):
            continue
        entity_id = _entity_id(entry)
        if entity_id is None:
            continue
        raw: Any = None
        for key in _PROBLEM_KEYS:
            if entry.get(key) is not None:
                raw = entry[key]
                break
        if raw is None and any(key in entry for key in ("title", "detail", "status")):
            raw = entry  # the problem members sit directly on the entry
        problem, entity_status = _problem(raw, status)
        found.append(BatchFailure(entity_id=entity_id, problem=problem, status=entity_status))
    return found


def _problem(raw: Any, fallback_status: int) -> tuple[ProblemDetails, int]:
    """A ProblemDetails and a status from whatever a broker put in an error entry."""
    if isinstance(raw, list):
        if raw and all(isinstance(item, Mapping) for item in raw):
            return _problem(raw[0], fallback_status)
        text = "; ".join(str(item) for item in raw) or None
        return _default_problem(fallback_status, text)
    if isinstance(raw, str):
        return _default_problem(fallback_status, raw)
    if not isinstance(raw, Mapping):
        return _default_problem(fallback_status, None)
    status = _as_status(raw.get("status")) or _as_status(raw.get("errorCode"))
    type_value = raw.get("type")
    if not isinstance(type_value, str) or not type_value:
        # Some releases put the HTTP status into `type`.
        status = status or _as_status(type_value)
        type_value = None
    if status is None:
        status = _status_of(type_value) if type_value else None
    status = status or _fallback_entity_status(fallback_status)
    if type_value is None:
        type_value = _default_problem(status, None)[0].type
    members = {key: value for key, value in raw.items() if isinstance(key, str)}
    members.update(
        type=type_value,
        title=_text(raw.get("title")),
        detail=_text(raw.get("detail")),
        status=status,
        instance=_text(raw.get("instance")),
    )
    members.pop("errorCode", None)
    return ProblemDetails.model_validate(members), status


def _default_problem(status: int, detail: str | None) -> tuple[ProblemDetails, int]:
    status = _fallback_entity_status(status)
    problem = error_from_problem(None, status).problem.model_copy(
        update={"detail": detail, "status": status}
    )
    return problem, status


def _fallback_entity_status(status: int) -> int:
    # Inside a 207 an entity without its own status was rejected: call it a 400.
    return 400 if status < 400 else status


def _status_of(type_value: str) -> int | None:
    name = type_value.rsplit("/", 1)[-1].strip()
    cls = type(error_from_problem({"type": ERROR_TYPE_BASE + name}, 0))
    if cls.error_name != name:
        return None
    return cls.status


def _as_status(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int) and 100 <= value <= 599:
        return value
    if isinstance(value, str) and value.isdigit() and 100 <= int(value) <= 599:
        return int(value)
    return None


def _text(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, str):
        return value
    if isinstance(value, Mapping) and isinstance(value.get("message"), str):
        return str(value["message"])
    if isinstance(value, list) and all(isinstance(item, str) for item in value):
        return "; ".join(value)
    return orjson.dumps(value, default=str).decode()


def _unknown_outcome(entity_id: str, status: int) -> BatchFailure:
    problem = ProblemDetails(
        type=ERROR_TYPE_BASE + "InternalError",
        title="Outcome unknown",
        detail=(
            f"the broker's {status} answer names entity {entity_id!r} neither as done nor as "
            "failed; send it again"
        ),
        status=status,
    )
    return BatchFailure(entity_id=entity_id, problem=problem, status=status)


def batch_outcome(
    status: int,
    body: Any,
    sent_ids: Sequence[str],
    *,
    parser: BatchParser = parse_batch_body,
    whole_problem: ProblemDetails | None = None,
) -> BatchResult:
    """The result of one batch request from the status and decoded body of its answer.

    The rule, for every id that was sent:

    * 201 or 204: the broker says every entity was done, so all succeeded (a 201 body lists only
      the ids created, which is a subset).
    * any other answer: an entity succeeded only if the body lists it as a success and not as an
      error; an entity listed under errors failed with that problem. An entity the body does not
      mention failed: with `whole_problem` when the broker rejected the request as a whole (an
      error status), else with an "outcome unknown" InternalError carrying the answer's status,
      so that an at-least-once sender tries it again instead of dropping it.

    Errors the body reports for ids that were not sent are kept as failures too.
    """
    unique_ids = list(dict.fromkeys(sent_ids))
    if status in (201, 204):
        return BatchResult(succeeded=unique_ids)
    parsed = parser(body, status)
    failed_by_id: dict[str, BatchFailure] = {}
    for failure in parsed.errors:
        failed_by_id.setdefault(failure.entity_id, failure)
    confirmed = set(parsed.success)
    result = BatchResult()
    for entity_id in unique_ids:
        if entity_id in failed_by_id:
            result.failed.append(failed_by_id.pop(entity_id))
        elif entity_id in confirmed and status < 300:
            result.succeeded.append(entity_id)
        elif whole_problem is not None and status >= 300:
            result.failed.append(
                BatchFailure(entity_id=entity_id, problem=whole_problem, status=status)
            )
        else:
            result.failed.append(_unknown_outcome(entity_id, status))
    result.failed.extend(failed_by_id.values())
    return result


@dataclass(frozen=True)
class Chunk:
    """One batch request: the ids it carries and their serialized JSON values, in order."""

    ids: list[str]
    parts: list[bytes]

    @property
    def body(self) -> bytes:
        """The JSON array of the parts."""
        return b"[" + b",".join(self.parts) + b"]"

    @property
    def size(self) -> int:
        return 2 + sum(len(part) for part in self.parts) + max(len(self.parts) - 1, 0)


def plan_chunks(
    items: Iterable[tuple[str, bytes]], *, max_entities: int, max_bytes: int
) -> tuple[list[Chunk], list[tuple[str, int]]]:
    """Split serialized items into requests of at most `max_entities` items and `max_bytes`.

    Items keep their order. An item that alone exceeds `max_bytes` (as a one-element array) is
    left out and returned with its size in the second list, so that it fails alone.
    """
    if max_entities < 1 or max_bytes < 3:
        raise ValueError(
            f"batch limits must be positive, got {max_entities} entities, {max_bytes} B"
        )
    chunks: list[Chunk] = []
    too_large: list[tuple[str, int]] = []
    ids: list[str] = []
    parts: list[bytes] = []
    size = 2
    for entity_id, part in items:
        if len(part) + 2 > max_bytes:
            too_large.append((entity_id, len(part) + 2))
            continue
        extra = len(part) + (1 if parts else 0)
        if parts and (len(parts) >= max_entities or size + extra > max_bytes):
            chunks.append(Chunk(ids=ids, parts=parts))
            ids, parts, size = [], [], 2
            extra = len(part)
        ids.append(entity_id)
        parts.append(part)
        size += extra
    if parts:
        chunks.append(Chunk(ids=ids, parts=parts))
    return chunks, too_large
