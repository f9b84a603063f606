"""The README documents every array, dimension, attribute and column the schemas define."""

from __future__ import annotations

from pathlib import Path

import pytest

from saldata.schemas.catalog import TABLES
from saldata.schemas.store import ARRAYS, ROOT_ATTRIBUTES

README = (Path(__file__).parents[2] / "README.md").read_text()


@pytest.mark.parametrize("spec", ARRAYS, ids=lambda s: s.name)
def test_every_array_is_documented(spec):
    assert f"| `{spec.name}` |" in README
    assert spec.dtype in README
    for dim in spec.dims:
        assert dim in README


@pytest.mark.parametrize("name", ROOT_ATTRIBUTES)
def test_every_root_attribute_is_documented(name):
    assert f"`{name}`" in README


@pytest.mark.parametrize(("table", "column"), [(t.name, c.name) for t in TABLES.values() for c in t.columns])
def test_every_catalog_column_is_documented(table, column):
    assert f"`{column}`" in README


def test_writer_fills_every_root_attribute(tiny_model_dir, tmp_path):
    from saldata.extractors.models import ModelSettings
    from saldata.pipelines.config import ExtractConfig
    from saldata.pipelines.extract import plan_run

    plan = plan_run(ExtractConfig(dataset="demo", out=tmp_path, model=ModelSettings("tiny-random")))
    assert set(plan.attributes) == set(ROOT_ATTRIBUTES)
