"""JSON Schemas this project owns, and validation against Smart Data Models schemas.

    from schemas import sdm_schemas, validate_document

    schemas = sdm_schemas()                 # the official schemas in $DREHSCHEIBE_SDM_SCHEMAS
    schemas.violations(entity)              # [] when valid; normalized or key-values
    schemas.validate(entity)                # raises EntityInvalid listing every violation
    validate_document("AirQualityObserved", data)   # the project's own schemas

Nothing here touches the network, except `pull_schemas`, which is only ever called on request.
"""

from schemas._compile import compile_validator
from schemas._errors import (
    EntityInvalid,
    SchemaError,
    SchemaNotFound,
    SchemaPullError,
    Violation,
)
from schemas._own import (
    OWN_SCHEMA_DIR,
    OWN_SCHEMA_ID_PREFIX,
    document_validator,
    load_schema,
    schema_names,
    schema_path,
    validate_document,
)
from schemas._pull import DEFAULT_BASE_URL, DEFAULT_BRANCH, PullResult, pull_schemas
from schemas._sdm import (
    ENV_SDM_SCHEMAS,
    EntityRepresentation,
    SdmSchemas,
    default_sdm_dir,
    key_values,
    local_path_for_url,
    sdm_schemas,
    urls_for_local_path,
)

__all__ = [
    "DEFAULT_BASE_URL",
    "DEFAULT_BRANCH",
    "ENV_SDM_SCHEMAS",
    "OWN_SCHEMA_DIR",
    "OWN_SCHEMA_ID_PREFIX",
    "EntityInvalid",
    "EntityRepresentation",
    "PullResult",
    "SchemaError",
    "SchemaNotFound",
    "SchemaPullError",
    "SdmSchemas",
    "Violation",
    "compile_validator",
    "default_sdm_dir",
    "document_validator",
    "key_values",
    "load_schema",
    "local_path_for_url",
    "pull_schemas",
    "schema_names",
    "schema_path",
    "sdm_schemas",
    "urls_for_local_path",
    "validate_document",
]
