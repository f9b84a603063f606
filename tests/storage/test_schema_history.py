"""One schema history: the table in schemas/history.py, the README's table, and the versions in force."""

from __future__ import annotations

import re
from pathlib import Path

from saldata.schemas.catalog import CATALOG_SCHEMA_VERSION
from saldata.schemas.history import SCHEMA_HISTORY
from saldata.schemas.store import STORE_SCHEMA_VERSION

README = Path(__file__).parents[2] / "README.md"


def readme_history() -> list[tuple[int, int, str]]:
    section = README.read_text().split("### Schema history", 1)[1].split("\n\n", 2)[1]
    rows = [line for line in section.splitlines() if re.match(r"\| \d", line)]
    return [(int(a), int(b), text.strip()) for a, b, text in (row.strip("| ").split(" | ", 2) for row in rows)]


def test_readme_table_is_the_code_table():
    assert readme_history() == [(a, b, text) for a, b, text in SCHEMA_HISTORY]


def test_the_newest_row_is_the_version_written():
    assert SCHEMA_HISTORY[-1][:2] == (STORE_SCHEMA_VERSION, CATALOG_SCHEMA_VERSION)
    assert f"### Store schema (`features.zarr`, schema_version {STORE_SCHEMA_VERSION})" in README.read_text()
