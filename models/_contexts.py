"""The Smart Data Models @context terms our models write, as JSON-LD documents.

Other cities read our entities with the official subject contexts (decision 7), and the broker
must resolve those URLs without the network (decision 4). `models/data/attribute_iris.json`
holds, per entity type, the IRI each attribute expands to under its subject's official context;
the test suite checks every entry against the official context files. From it,
`subject_context(url)` builds a context document with just those terms, which a broker can
preload under the official URL when the full upstream file (`drehscheibe models pull`) is not
at hand. It is a subset: terms our models never write are not in it.
"""

from __future__ import annotations

import json
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any

__all__ = ["attribute_iris", "context_urls", "subject_context", "write_subject_contexts"]

_CORE_PREFIX = "https://uri.etsi.org/ngsi-ld/"
_SDM = "https://smartdatamodels.org/"


def _subject(url: str) -> str:
    return url.split("/dataModel.", 1)[1].split("/", 1)[0]


@cache
def attribute_iris() -> dict[str, dict[str, str]]:
    """Entity type → {"@context": subject URL, attribute: expanded IRI, ...}."""
    text = resources.files("models").joinpath("data/attribute_iris.json").read_text("utf-8")
    data: dict[str, dict[str, str]] = json.loads(text)
    return data


def context_urls() -> list[str]:
    """The subject @context URLs our models are written with, sorted."""
    return sorted({terms["@context"] for terms in attribute_iris().values()})


def subject_context(url: str) -> dict[str, Any]:
    """A JSON-LD document defining every term our models write under the subject `url`.

    Core NGSI-LD terms (`location`, ...) are left to the core context. Raises `KeyError` for a
    URL no model uses.
    """
    terms: dict[str, str] = {}
    for type_name, iris in attribute_iris().items():
        if iris["@context"] != url:
            continue
        terms[type_name] = f"{_SDM}dataModel.{_subject(url)}/{type_name}"
        for term, iri in iris.items():
            if term.startswith("@") or iri.startswith(_CORE_PREFIX):
                continue
            terms[term] = iri
    if not terms:
        raise KeyError(f"no model is written with the @context {url}")
    return {"@context": dict(sorted(terms.items()))}


def write_subject_contexts(folder: Path) -> dict[str, Path]:
    """Write one file per subject context into `folder`, plus the `contexts.json` map a
    `ContextStore` (and `drehscheibe broker serve --contexts-dir`) reads. Returns URL → file."""
    folder.mkdir(parents=True, exist_ok=True)
    written: dict[str, Path] = {}
    for url in context_urls():
        file = folder / f"dataModel.{_subject(url)}.jsonld"
        file.write_text(json.dumps(subject_context(url), indent=2) + "\n", encoding="utf-8")
        written[url] = file
    mapping = {url: file.name for url, file in written.items()}
    (folder / "contexts.json").write_text(json.dumps(mapping, indent=2) + "\n", encoding="utf-8")
    return written
