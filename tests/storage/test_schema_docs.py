"""The README documents every array, dimension, attribute and column the schemas define, each in its place.

Every fact is read from where it belongs: an array's dtype, shape and fill from that array's row
of the store schema table, a column's type from its row in its own table's Markdown table (under
the ``#### `name` `` heading of the catalog schema section), the dimension names and root
attributes from the sentences that list them. A word that happens to occur elsewhere in the
README proves nothing.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pyarrow as pa
import pytest

from saldata.schemas.catalog import CATALOG_TABLES
from saldata.schemas.store import ARRAYS, ROOT_ATTRIBUTES

README = (Path(__file__).parents[2] / "README.md").read_text()

# How the store table writes each dimension's size: N images, T tokens, D hidden size, H heads,
# the fixed 24x24 base grid, R x C the high-res grid, height x width the stored image size.
DIM_SYMBOLS = {
    "image": "N",
    "token": "T",
    "layer": "L",
    "hidden": "D",
    "hidden_dim": "D",  # the same dimension's name from store schema 3 on
    "head": "H",
    "base_row": "24",
    "base_col": "24",
    "highres_row": "R",
    "highres_col": "C",
    "height": "height",
    "width": "width",
}


def backticked(text: str) -> list[str]:
    return re.findall(r"`([^`]+)`", text)


def markdown_tables(text: str) -> list[tuple[str, list[dict[str, str]]]]:
    """Every Markdown table as (the nearest heading above it, its rows as header -> cell)."""
    tables, heading, block = [], None, []

    def flush():
        if block:
            header, rows = block[0], block[2:]  # block[1] is the | --- | separator
            assert set(block[1]) == {"---"}, f"malformed table under {heading!r}"
            tables.append((heading, [dict(zip(header, row, strict=True)) for row in rows]))
            block.clear()

    for line in text.splitlines():
        if line.startswith("|"):
            block.append([cell.strip() for cell in line.strip().strip("|").split("|")])
            continue
        flush()
        if line.startswith("#"):
            heading = line.lstrip("#").strip()
    flush()
    return tables


def section(text: str, title_prefix: str) -> str:
    """The body of the ``###`` section whose title starts with ``title_prefix`` (up to the next ## or ###)."""
    match = re.search(rf"^### {re.escape(title_prefix)}.*?$(.*?)(?=^##?#? )", text, re.M | re.S)
    assert match, f"README has no '### {title_prefix}' section"
    return match.group(1)


def rows_by_name(rows: list[dict[str, str]], key: str) -> dict[str, dict[str, str]]:
    """Rows keyed by each backticked name in their first cell (one row may document several columns)."""
    named = {}
    for row in rows:
        names = backticked(row[key])
        assert names, f"a row names nothing: {row}"
        for name in names:
            assert name not in named, f"{name} is documented twice"
            named[name] = row
    return named


def store_section() -> str:
    return section(README, "Store schema")


def store_rows() -> dict[str, dict[str, str]]:
    tables = markdown_tables(store_section())
    assert len(tables) == 1, f"the store schema section should hold one table, not {len(tables)}"
    return rows_by_name(tables[0][1], "array")


def catalog_tables() -> dict[str, list[dict[str, str]]]:
    """Each table of the catalog schema section, keyed by the table name its heading names."""
    return {backticked(heading)[0]: rows for heading, rows in markdown_tables(section(README, "Catalog schema"))}


def test_store_table_documents_exactly_the_arrays():
    assert list(store_rows()) == [spec.name for spec in ARRAYS]


@pytest.mark.parametrize("spec", ARRAYS, ids=lambda s: s.name)
def test_every_array_row_gives_its_dtype_shape_and_fill(spec):
    row = store_rows()[spec.name]
    assert row["dtype"] == spec.dtype
    shape = [s.strip() for s in row["shape"].strip("()").split(",") if s.strip()]
    assert shape == [DIM_SYMBOLS[d] for d in spec.dims]
    fill = json.loads(row["fill"])  # as JSON writes it: 0, -1, false, ""
    assert fill == spec.fill_value, (row["fill"], spec.fill_value)
    for kind in (str, bool):  # "" is no 0, and false no 0 either
        assert isinstance(fill, kind) == isinstance(spec.fill_value, kind), (row["fill"], spec.fill_value)


def test_dimension_names_sentence_lists_every_dimension():
    match = re.search(r"Zarr `dimension_names` are `([^`]+)`", store_section())
    assert match, "the store schema section does not list the dimension names"
    documented = [d.strip() for d in match.group(1).split(",")]
    used = list(dict.fromkeys(d for spec in ARRAYS for d in spec.dims))
    assert sorted(documented) == sorted(used) and len(documented) == len(set(documented))


def test_root_attributes_sentence_lists_exactly_the_attributes():
    match = re.search(r"^Root attributes:(.*?)(?:\n\n|\Z)", store_section(), re.M | re.S)
    assert match, "the store schema section has no 'Root attributes:' paragraph"
    documented = [name for name in backticked(match.group(1)) if re.fullmatch(r"[a-z_]+", name)]
    assert sorted(documented) == sorted(ROOT_ATTRIBUTES)


def test_catalog_section_has_one_table_per_catalog_table():
    assert sorted(catalog_tables()) == sorted(CATALOG_TABLES)


@pytest.mark.parametrize("table", CATALOG_TABLES.values(), ids=lambda t: t.name)
def test_every_catalog_table_documents_exactly_its_columns_and_types(table):
    rows = rows_by_name(catalog_tables()[table.name], "column")
    assert sorted(rows) == sorted(table.names), f"{table.name}: documented columns differ from the schema"
    for column in table.columns:
        documented = rows[column.name]["type"]
        assert arrow_type(documented) == column.type, (table.name, column.name, documented, column.type)


def arrow_type(documented: str) -> pa.DataType:
    """A type as the README writes it: an Arrow alias (``int64``), or ``list<alias>``."""
    inner = re.fullmatch(r"list<(\w+)>", documented)
    return pa.list_(pa.type_for_alias(inner.group(1))) if inner else pa.type_for_alias(documented)


def test_writer_fills_every_root_attribute(tiny_model_dir, tmp_path):
    from saldata.extractors.models import ModelSettings
    from saldata.pipelines.config import ExtractConfig
    from saldata.pipelines.extract import plan_run

    plan = plan_run(ExtractConfig(dataset="demo", out=tmp_path, model=ModelSettings("tiny-random")))
    assert set(plan.attributes) == set(ROOT_ATTRIBUTES)
