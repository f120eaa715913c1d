"""`drehscheibe models ...`: the Smart Data Models the hub writes, and their official schemas.

    drehscheibe models list                     types, subjects, schema versions
    drehscheibe models show AirQualityObserved  attributes, NGSI-LD types, units, enumerations
    drehscheibe models validate FILE...         entities against the official schemas (offline)
    drehscheibe models pull [--dest DIR]        download the official schemas (online)
    drehscheibe models schemas --write|--check  the project's published entity schemas

Exit codes: 0 all good, 1 error (unreadable file, missing schema, download failed), 6 invalid.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import orjson
import typer

from drehscheibe._output import ExitCode, OutputFormat, fail, print_json, print_table
from schemas import (
    DEFAULT_BASE_URL,
    DEFAULT_BRANCH,
    ENV_SDM_SCHEMAS,
    OWN_SCHEMA_DIR,
    SchemaError,
    SchemaNotFound,
    SdmSchemas,
    default_sdm_dir,
    pull_schemas,
)

if TYPE_CHECKING:
    from models import SmartDataModel

# `models` is imported inside the commands: building its classes takes half a second, which
# every other `drehscheibe` command would pay at start.

app = typer.Typer(
    help="Smart Data Models: types, attributes, official schemas and validation.",
    no_args_is_help=True,
)

OutputOpt = Annotated[
    OutputFormat, typer.Option("--output", "-o", help="table for people, json for scripts.")
]
SchemasOpt = Annotated[
    Path | None,
    typer.Option(
        "--schemas",
        envvar=ENV_SDM_SCHEMAS,
        help="Directory of official Smart Data Models schemas (default: the user data folder).",
        show_default=False,
    ),
]


def _sdm(directory: Path | None) -> SdmSchemas:
    return SdmSchemas(directory if directory is not None else default_sdm_dir())


@app.command("list")
def list_models(*, output: OutputOpt = OutputFormat.table, schemas_dir: SchemasOpt = None) -> None:
    """List the entity types, their subjects and schema versions."""
    from models import default_registry

    sdm = _sdm(schemas_dir)
    rows: list[dict[str, Any]] = []
    for info in default_registry:
        try:
            installed: str | None = sdm.schema_version(info.type_name) or "?"
        except SchemaError:
            installed = None
        rows.append(
            {
                "type": info.type_name,
                "subject": info.subject,
                "schemaVersion": info.schema_version,
                "installedSchemaVersion": installed,
                "context": info.context_url,
            }
        )
    if output is OutputFormat.json:
        print_json(rows)
        return
    print_table(
        f"Smart Data Models (official schemas: {sdm.root})",
        ["type", "subject", "schema", "installed", "@context"],
        [
            [
                row["type"],
                row["subject"],
                row["schemaVersion"],
                row["installedSchemaVersion"] or "missing",
                row["context"],
            ]
            for row in rows
        ],
    )


def _value_type(schema: dict[str, Any], definitions: dict[str, Any]) -> tuple[str, list[Any]]:
    """A short description of a property schema, and its enumeration if it has one."""
    if "$ref" in schema:
        name = str(schema["$ref"]).rsplit("/", 1)[-1]
        return name, []
    branches = schema.get("anyOf", [])
    if any("pattern" in sub for sub in branches) and any(
        sub.get("format") == "uri" for sub in branches
    ):
        return "entity id", []
    for key in ("anyOf", "oneOf"):
        if key in schema:
            parts = [_value_type(sub, definitions) for sub in schema[key]]
            kinds = {"Point", "LineString", "Polygon"} & {
                str(sub.get("properties", {}).get("type", {}).get("enum", [""])[0])
                for sub in schema[key]
                if isinstance(sub, dict)
            }
            if kinds:
                return "GeoJSON geometry", []
            enum = [item for _, values in parts for item in values]
            return " | ".join(dict.fromkeys(text for text, _ in parts)), enum
    kind = str(schema.get("type", "any"))
    if kind == "array":
        inner, enum = _value_type(schema.get("items", {}), definitions)
        return f"array of {inner}", enum
    text = kind
    if "format" in schema:
        text += f" ({schema['format']})"
    bounds = []
    if "minimum" in schema:
        bounds.append(f"≥ {schema['minimum']}")
    if "exclusiveMinimum" in schema:
        bounds.append(f"> {schema['exclusiveMinimum']}")
    if "maximum" in schema:
        bounds.append(f"≤ {schema['maximum']}")
    if bounds:
        text += " " + ", ".join(bounds)
    return text, list(schema.get("enum", []))


def _attributes(model: type[SmartDataModel]) -> list[dict[str, Any]]:
    from models import entity_json_schema

    schema = entity_json_schema(model)
    definitions = schema.get("$defs", {})
    required = set(schema["required"])
    rows = []
    for name in model.attribute_names():
        value_type, enum = _value_type(schema["properties"][name], definitions)
        rows.append(
            {
                "name": name,
                "attributeType": model.attribute_type(name),
                "valueType": value_type,
                "unitCode": model.default_unit(name),
                "required": name in required,
                "enum": enum,
            }
        )
    return rows


@app.command("show")
def show(
    type_name: Annotated[str, typer.Argument(metavar="TYPE", help="Entity type.")],
    *,
    output: OutputOpt = OutputFormat.table,
) -> None:
    """Show a type's attributes: NGSI-LD type, value type, default unit, enumeration."""
    from models import UnknownModel, default_registry

    try:
        info = default_registry.info(type_name)
    except UnknownModel as exc:
        fail(str(exc))
    attributes = _attributes(info.model)
    if output is OutputFormat.json:
        print_json(
            {
                "type": info.type_name,
                "subject": info.subject,
                "schemaVersion": info.schema_version,
                "context": info.context_url,
                "attributes": attributes,
            }
        )
        return
    print_table(
        f"{info.type_name} (dataModel.{info.subject} {info.schema_version})",
        ["attribute", "NGSI-LD", "value", "unit", "required", "enumeration"],
        [
            [
                row["name"],
                row["attributeType"],
                row["valueType"],
                row["unitCode"] or "",
                "yes" if row["required"] else "",
                ", ".join(str(item) for item in row["enum"]),
            ]
            for row in attributes
        ],
    )


def _entities(path: Path) -> list[Any]:
    try:
        data = orjson.loads(path.read_bytes())
    except OSError as exc:
        raise ValueError(f"cannot read: {exc.strerror or exc}") from None
    except orjson.JSONDecodeError as exc:
        raise ValueError(f"not JSON: {exc}") from None
    return data if isinstance(data, list) else [data]


@app.command("validate")
def validate(
    files: Annotated[
        list[Path], typer.Argument(help="JSON or JSON-LD files: an entity or an array of them.")
    ],
    *,
    schemas_dir: SchemasOpt = None,
    output: OutputOpt = OutputFormat.table,
) -> None:
    """Validate NGSI-LD entities (normalized or keyValues) against the official schemas."""
    sdm = _sdm(schemas_dir)
    results: list[dict[str, Any]] = []
    errors = invalid = 0
    for path in files:
        try:
            entities = _entities(path)
        except ValueError as exc:
            errors += 1
            results.append({"file": str(path), "entity": None, "error": str(exc)})
            continue
        for index, entity in enumerate(entities):
            entity_id = entity.get("id") if isinstance(entity, dict) else None
            label = entity_id if isinstance(entity_id, str) else f"#{index}"
            try:
                found = sdm.violations(entity)
            except SchemaNotFound as exc:
                errors += 1
                results.append({"file": str(path), "entity": label, "error": str(exc)})
                continue
            if found:
                invalid += 1
            results.append(
                {
                    "file": str(path),
                    "entity": label,
                    "type": entity.get("type") if isinstance(entity, dict) else None,
                    "valid": not found,
                    "violations": [
                        {"attribute": v.path, "rule": v.rule, "message": v.message} for v in found
                    ],
                }
            )
    if output is OutputFormat.json:
        print_json(results)
    else:
        _print_validation(results)
    if errors:
        raise typer.Exit(int(ExitCode.ERROR))
    if invalid:
        raise typer.Exit(int(ExitCode.INVALID))


def _print_validation(results: list[dict[str, Any]]) -> None:
    checked = sum(1 for r in results if "valid" in r)
    valid = sum(1 for r in results if r.get("valid"))
    for result in results:
        where = f"{result['file']}: {result['entity']}" if result["entity"] else result["file"]
        if "error" in result:
            typer.echo(f"{where}: error: {result['error']}")
        elif result["valid"]:
            typer.echo(f"{where}: valid")
        else:
            for violation in result["violations"]:
                attribute = violation["attribute"] or "(entity)"
                typer.echo(f"{where}: {attribute}: {violation['rule']}: {violation['message']}")
    typer.echo(f"{valid} of {checked} entities valid")


@app.command("pull")
def pull(
    *,
    dest: Annotated[
        Path | None,
        typer.Option(
            "--dest",
            envvar=ENV_SDM_SCHEMAS,
            help="Directory to fill (default: the user data folder).",
            show_default=False,
        ),
    ] = None,
    base_url: Annotated[
        str,
        typer.Option(
            "--base-url",
            envvar="DREHSCHEIBE_SDM_BASE_URL",
            help="Where the smart-data-models repositories are served from.",
        ),
    ] = DEFAULT_BASE_URL,
    branch: Annotated[str, typer.Option(help="Branch of the repositories.")] = DEFAULT_BRANCH,
    timeout: Annotated[float, typer.Option(help="Seconds per request.")] = 10.0,
) -> None:
    """Download the official schemas and contexts of every registered type (needs network)."""
    from models import default_registry

    target = dest if dest is not None else default_sdm_dir()
    try:
        result = pull_schemas(
            target,
            subjects=default_registry.subjects(),
            base_url=base_url,
            branch=branch,
            timeout=timeout,
        )
    except SchemaError as exc:
        fail(str(exc))
    typer.echo(f"{len(result.files)} files from {result.base_url} in {result.dest}")


@app.command("schemas")
def schemas_command(
    *,
    write: Annotated[bool, typer.Option("--write", help="Write the generated schemas.")] = False,
    check: Annotated[
        bool, typer.Option("--check", help="Exit 1 when a committed schema differs.")
    ] = False,
    directory: Annotated[
        Path, typer.Option("--dir", help="Where the schemas are.", show_default=False)
    ] = OWN_SCHEMA_DIR,
) -> None:
    """Generate the project's published entity schemas from the model classes."""
    from models import default_registry, entity_json_schema

    stale: list[str] = []
    for info in default_registry:
        generated = entity_json_schema(info.model)
        path = directory / f"{info.type_name}.schema.json"
        current: Any = orjson.loads(path.read_bytes()) if path.is_file() else None
        if current == generated:
            continue
        stale.append(info.type_name)
        if write:
            directory.mkdir(parents=True, exist_ok=True)
            path.write_bytes(orjson.dumps(generated, option=orjson.OPT_INDENT_2) + b"\n")
    verb = "written" if write else "out of date"
    for name in stale:
        typer.echo(f"{name}: {verb}")
    if not stale:
        typer.echo(f"{len(default_registry)} schemas up to date in {directory}")
    if check and stale and not write:
        raise typer.Exit(int(ExitCode.ERROR))
