"""NGSI-LD errors: ProblemDetails on the wire, a small exception hierarchy in Python.

    NgsiError
    ├── NgsiTransportError        the request never got an answer (connect, read, timeout)
    └── NgsiApiError              the broker answered with a ProblemDetails body
        ├── InvalidRequest        400
        ├── BadRequestData        400
        ├── Unauthorized          401   (no or bad credentials)
        ├── Forbidden             403   (credentials without the right)
        ├── TooComplexQuery       403
        ├── TooManyResults        403
        ├── ResourceNotFound      404   (alias NotFound)
        ├── NonexistentTenant     404
        ├── MethodNotAllowed      405   (the resource has no such method)
        ├── NotAcceptable         406   (no representation matches Accept)
        ├── AlreadyExists         409
        ├── PayloadTooLarge       413   (the request body is over the limit)
        ├── UnsupportedMediaType  415   (Content-Type is not JSON / JSON-LD)
        ├── OperationNotSupported 422
        ├── NoMultiTenantSupport  501
        ├── InternalError         500
        └── LdContextNotAvailable 503

Both sides use it: the client raises these from responses, the embedded broker raises them in
handlers and renders them as ProblemDetails. The HTTP-level errors (401, 403, 405, 406, 413, 415)
are not NGSI-LD error types; their `type` is built the same way
(`https://uri.etsi.org/ngsi-ld/errors/NotAcceptable`) so that a client maps them back by name,
and by status when a broker sends another type or none.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

import httpx
from pydantic import BaseModel, ConfigDict

__all__ = [
    "ERROR_TYPE_BASE",
    "AlreadyExists",
    "BadRequestData",
    "Forbidden",
    "InternalError",
    "InvalidRequest",
    "LdContextNotAvailable",
    "MethodNotAllowed",
    "NgsiApiError",
    "NgsiError",
    "NgsiTransportError",
    "NoMultiTenantSupport",
    "NonexistentTenant",
    "NotAcceptable",
    "NotFound",
    "OperationNotSupported",
    "PayloadTooLarge",
    "ProblemDetails",
    "ResourceNotFound",
    "TooComplexQuery",
    "TooManyResults",
    "Unauthorized",
    "UnsupportedMediaType",
    "error_from_problem",
]

ERROR_TYPE_BASE = "https://uri.etsi.org/ngsi-ld/errors/"


class ProblemDetails(BaseModel):
    """RFC 7807 body as NGSI-LD brokers send it; unknown members are kept."""

    model_config = ConfigDict(extra="allow")

    type: str = ERROR_TYPE_BASE + "InternalError"
    title: str | None = None
    status: int | None = None
    detail: str | None = None
    instance: str | None = None

    @property
    def error_name(self) -> str:
        """The last path segment of `type` (`ResourceNotFound`), or the whole type."""
        return self.type.rsplit("/", 1)[-1]


class NgsiError(Exception):
    """Base of every error the `ngsi` package raises."""

    def __init__(self, message: str, *, request: httpx.Request | None = None) -> None:
        super().__init__(message)
        self.request = request


class NgsiTransportError(NgsiError):
    """No answer from the broker: connection refused or dropped, timeout, protocol error."""


class NgsiApiError(NgsiError):
    """The broker answered with an error; `problem` holds its ProblemDetails."""

    status: ClassVar[int] = 500
    error_name: ClassVar[str] = "InternalError"

    def __init__(
        self,
        detail: str = "",
        *,
        problem: ProblemDetails | None = None,
        status: int | None = None,
        request: httpx.Request | None = None,
        response: httpx.Response | None = None,
    ) -> None:
        if problem is None:
            problem = ProblemDetails(
                type=ERROR_TYPE_BASE + self.error_name,
                title=_TITLES.get(self.error_name, self.error_name),
                detail=detail or None,
                status=status or self.status,
            )
        self.problem = problem
        self.response = response
        self.status_code = status or problem.status or self.status
        text = problem.detail or problem.title or problem.type
        super().__init__(f"{self.status_code} {problem.error_name}: {text}", request=request)

    @property
    def detail(self) -> str | None:
        return self.problem.detail

    def to_problem(self) -> dict[str, Any]:
        """The ProblemDetails body to send, without empty members."""
        body = self.problem.model_dump(exclude_none=True)
        body.setdefault("status", self.status_code)
        return body


class InvalidRequest(NgsiApiError):
    status = 400
    error_name = "InvalidRequest"


class BadRequestData(NgsiApiError):
    status = 400
    error_name = "BadRequestData"


class Unauthorized(NgsiApiError):
    status = 401
    error_name = "Unauthorized"


class Forbidden(NgsiApiError):
    status = 403
    error_name = "Forbidden"


class TooComplexQuery(NgsiApiError):
    status = 403
    error_name = "TooComplexQuery"


class TooManyResults(NgsiApiError):
    status = 403
    error_name = "TooManyResults"


class ResourceNotFound(NgsiApiError):
    status = 404
    error_name = "ResourceNotFound"


NotFound = ResourceNotFound


class NonexistentTenant(NgsiApiError):
    status = 404
    error_name = "NonexistentTenant"


class MethodNotAllowed(NgsiApiError):
    status = 405
    error_name = "MethodNotAllowed"


class NotAcceptable(NgsiApiError):
    status = 406
    error_name = "NotAcceptable"


class AlreadyExists(NgsiApiError):
    status = 409
    error_name = "AlreadyExists"


class PayloadTooLarge(NgsiApiError):
    status = 413
    error_name = "PayloadTooLarge"


class UnsupportedMediaType(NgsiApiError):
    status = 415
    error_name = "UnsupportedMediaType"


class OperationNotSupported(NgsiApiError):
    status = 422
    error_name = "OperationNotSupported"


class InternalError(NgsiApiError):
    status = 500
    error_name = "InternalError"


class NoMultiTenantSupport(NgsiApiError):
    status = 501
    error_name = "NoMultiTenantSupport"


class LdContextNotAvailable(NgsiApiError):
    status = 503
    error_name = "LdContextNotAvailable"


_TITLES = {
    "InvalidRequest": "The request associated to the operation is syntactically invalid",
    "BadRequestData": "The request includes input data which does not meet the requirements",
    "Unauthorized": "Authentication is needed",
    "Forbidden": "The credentials do not allow this operation",
    "TooComplexQuery": "The query is too complex",
    "TooManyResults": "Too many results",
    "ResourceNotFound": "Resource not found",
    "NonexistentTenant": "The addressed tenant does not exist",
    "MethodNotAllowed": "Method not allowed",
    "NotAcceptable": "No acceptable representation",
    "AlreadyExists": "The referred element already exists",
    "PayloadTooLarge": "The request body is too large",
    "UnsupportedMediaType": "Unsupported media type",
    "OperationNotSupported": "The operation is not supported",
    "InternalError": "Internal error",
    "NoMultiTenantSupport": "Multi-tenancy is not supported",
    "LdContextNotAvailable": "A remote JSON-LD @context could not be retrieved",
}

_BY_NAME: dict[str, type[NgsiApiError]] = {
    cls.error_name: cls
    for cls in (
        InvalidRequest,
        BadRequestData,
        Unauthorized,
        Forbidden,
        TooComplexQuery,
        TooManyResults,
        ResourceNotFound,
        NonexistentTenant,
        MethodNotAllowed,
        NotAcceptable,
        AlreadyExists,
        PayloadTooLarge,
        UnsupportedMediaType,
        OperationNotSupported,
        InternalError,
        NoMultiTenantSupport,
        LdContextNotAvailable,
    )
}

_BY_STATUS: dict[int, type[NgsiApiError]] = {
    400: BadRequestData,
    401: Unauthorized,
    403: Forbidden,
    404: ResourceNotFound,
    405: MethodNotAllowed,
    406: NotAcceptable,
    409: AlreadyExists,
    413: PayloadTooLarge,
    415: UnsupportedMediaType,
    422: OperationNotSupported,
    501: NoMultiTenantSupport,
    503: LdContextNotAvailable,
}


def error_from_problem(
    body: Mapping[str, Any] | None,
    status: int,
    *,
    request: httpx.Request | None = None,
    response: httpx.Response | None = None,
) -> NgsiApiError:
    """Build the matching exception from a ProblemDetails body (or from the status alone).

    Brokers differ: some send a full URI in `type`, some only the name, some no body at all.
    The error type wins over the status; an unknown type falls back to the status.
    """
    problem: ProblemDetails
    if body and isinstance(body.get("type"), str):
        problem = ProblemDetails.model_validate(dict(body))
    else:
        fallback = _BY_STATUS.get(status, InternalError)
        detail = None
        if body:
            detail = str(body.get("detail") or body.get("description") or body.get("title") or "")
        problem = ProblemDetails(
            type=ERROR_TYPE_BASE + fallback.error_name,
            title=_TITLES[fallback.error_name],
            status=status,
            detail=detail or None,
        )
    cls = _BY_NAME.get(problem.error_name) or _BY_STATUS.get(status, NgsiApiError)
    return cls(problem=problem, status=status, request=request, response=response)
