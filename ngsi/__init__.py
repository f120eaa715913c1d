"""NGSI-LD for Python: entity types, @context, the query language, errors and the client.

Import from here; the underscore modules are the package's private layout.
"""

from ngsi._errors import (
    ERROR_TYPE_BASE,
    AlreadyExists,
    BadRequestData,
    InternalError,
    InvalidRequest,
    LdContextNotAvailable,
    NgsiApiError,
    NgsiError,
    NgsiTransportError,
    NoMultiTenantSupport,
    NonexistentTenant,
    NotFound,
    OperationNotSupported,
    ProblemDetails,
    ResourceNotFound,
    TooComplexQuery,
    TooManyResults,
    error_from_problem,
)

__all__ = [
    "ERROR_TYPE_BASE",
    "AlreadyExists",
    "BadRequestData",
    "InternalError",
    "InvalidRequest",
    "LdContextNotAvailable",
    "NgsiApiError",
    "NgsiError",
    "NgsiTransportError",
    "NoMultiTenantSupport",
    "NonexistentTenant",
    "NotFound",
    "OperationNotSupported",
    "ProblemDetails",
    "ResourceNotFound",
    "TooComplexQuery",
    "TooManyResults",
    "error_from_problem",
]
