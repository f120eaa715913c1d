"""The subset contexts the project can preload offline agree with the official ones."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from models import default_registry
from models._contexts import context_urls, subject_context, write_subject_contexts
from ngsi import Context, ContextStore


@pytest.fixture(scope="module")
def official(shared_dir: Path) -> ContextStore:
    preload = {
        info.context_url: shared_dir / "sdm" / info.repository / "context.jsonld"
        for info in default_registry
    }
    return ContextStore(preload=preload, allow_network=False)


@pytest.mark.parametrize("url", context_urls())
def test_every_term_expands_as_the_official_context_says(url: str, official: ContextStore) -> None:
    ours = Context.from_entries([subject_context(url)["@context"]])
    theirs = official.resolve(url)
    terms = subject_context(url)["@context"]
    assert len(terms) > 5
    for term in terms:
        assert ours.expand_term(term) == theirs.expand_term(term), term
        assert theirs.defines(term), f"{term} is not in the official {url}"


def test_entity_types_are_defined(official: ContextStore) -> None:
    for info in default_registry:
        ours = Context.from_entries([subject_context(info.context_url)["@context"]])
        expected = official.resolve(info.context_url).expand_type(info.type_name)
        assert ours.expand_type(info.type_name) == expected


def test_written_folder_is_a_preload_map(tmp_path: Path) -> None:
    written = write_subject_contexts(tmp_path)
    assert set(written) == set(context_urls())
    mapping = json.loads((tmp_path / "contexts.json").read_text())
    store = ContextStore(preload_dirs=[tmp_path], allow_network=False)
    for url, name in mapping.items():
        assert (tmp_path / name).is_file()
        assert store.resolve(url).expand_term("name") == "https://smartdatamodels.org/name"


def test_unknown_url_is_refused() -> None:
    with pytest.raises(KeyError, match="no model"):
        subject_context("https://example.org/context.jsonld")
