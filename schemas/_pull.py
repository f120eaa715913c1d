"""Downloading the official Smart Data Models schemas into a local directory (when online).

For each subject (`Environment`) and entity type (`AirQualityObserved`) asked for, it fetches
`dataModel.<Subject>/<Type>/schema.json` and the subject's `context.jsonld`, then every file
those schemas `$ref` (the subject's shared `*-schema.json`, `common-schema.json`, ...), following
references until none is missing. Files are fetched from
`<base_url>/<repository>/<branch>/<path>`, laid out like the upstream repositories (see
`schemas._sdm`), and only moved into place when all of them arrived, so a failed pull never
leaves a half-updated directory. A `MANIFEST.json` records where and when they came from.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final

import httpx
import orjson
from pydantic import BaseModel, ConfigDict

from schemas._errors import SchemaPullError
from schemas._sdm import COMMON_REPOSITORY, ENV_SDM_SCHEMAS, local_path_for_url

__all__ = ["DEFAULT_BASE_URL", "DEFAULT_BRANCH", "PullResult", "pull_schemas"]

DEFAULT_BASE_URL: Final = "https://raw.githubusercontent.com/smart-data-models"
DEFAULT_BRANCH: Final = "master"
_MAX_BYTES = 4 << 20


class PullResult(BaseModel):
    """What a pull wrote: the directory, the base URL and the files (relative POSIX paths)."""

    model_config = ConfigDict(frozen=True)

    dest: Path
    base_url: str
    files: list[str]


def _url(base_url: str, branch: str, relative: str) -> str:
    first, _, rest = relative.partition("/")
    if rest and first.startswith("dataModel."):
        return f"{base_url.rstrip('/')}/{first}/{branch}/{rest}"
    return f"{base_url.rstrip('/')}/{COMMON_REPOSITORY}/{branch}/{relative}"


def _references(document: Any) -> Iterable[str]:
    if isinstance(document, dict):
        for key, value in document.items():
            if key == "$ref" and isinstance(value, str):
                yield value
            else:
                yield from _references(value)
    elif isinstance(document, list):
        for item in document:
            yield from _references(item)


def pull_schemas(
    dest: str | os.PathLike[str],
    *,
    subjects: Mapping[str, Sequence[str]],
    base_url: str = DEFAULT_BASE_URL,
    branch: str = DEFAULT_BRANCH,
    timeout: float = 10.0,
    transport: httpx.BaseTransport | None = None,
) -> PullResult:
    """Fetch the schemas of `subjects` (subject → entity types) into `dest`.

    Raises `SchemaPullError` saying which URL failed and why (offline, 404, not JSON); `dest`
    is then left as it was.
    """
    target = Path(dest).expanduser()
    queue: list[str] = ["common-schema.json"]
    for subject, types in subjects.items():
        repository = f"dataModel.{subject}"
        queue.append(f"{repository}/context.jsonld")
        queue.extend(f"{repository}/{type_name}/schema.json" for type_name in types)
    fetched: dict[str, bytes] = {}
    with httpx.Client(
        timeout=timeout, transport=transport, follow_redirects=True, trust_env=True
    ) as client:
        while queue:
            relative = queue.pop(0)
            if relative in fetched:
                continue
            url = _url(base_url, branch, relative)
            body = _fetch(client, url)
            try:
                document = orjson.loads(body)
            except orjson.JSONDecodeError:
                raise SchemaPullError(f"{url} did not answer with JSON") from None
            fetched[relative] = body
            for reference in _references(document):
                needed = local_path_for_url(reference)
                if needed is not None and needed not in fetched and needed not in queue:
                    queue.append(needed)
    _install(target, fetched, base_url=base_url, branch=branch)
    return PullResult(dest=target, base_url=base_url, files=sorted(fetched))


def _fetch(client: httpx.Client, url: str) -> bytes:
    try:
        response = client.get(url)
    except httpx.TransportError as exc:
        raise SchemaPullError(
            f"cannot reach {url}: {exc or type(exc).__name__}. Offline? Copy a schema "
            f"directory from a machine that is online and point {ENV_SDM_SCHEMAS} at it"
        ) from None
    if response.status_code != 200:
        raise SchemaPullError(f"{url} answered HTTP {response.status_code}")
    if len(response.content) > _MAX_BYTES:
        raise SchemaPullError(f"{url} is larger than {_MAX_BYTES} bytes")
    return response.content


def _install(target: Path, files: Mapping[str, bytes], *, base_url: str, branch: str) -> None:
    target.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".pull-", dir=target))
    try:
        manifest = {
            "base_url": base_url,
            "branch": branch,
            "pulled_at": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "files": {
                name: hashlib.sha256(body).hexdigest() for name, body in sorted(files.items())
            },
        }
        for relative, body in files.items():
            path = staging / relative
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(body)
        (staging / "MANIFEST.json").write_bytes(orjson.dumps(manifest, option=orjson.OPT_INDENT_2))
        for relative in [*files, "MANIFEST.json"]:
            final = target / relative
            final.parent.mkdir(parents=True, exist_ok=True)
            os.replace(staging / relative, final)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
