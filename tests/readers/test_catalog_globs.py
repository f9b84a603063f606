"""Plain readers of the catalog: every catalog path the README shows reads exactly one table.

The catalog's four tables are folders side by side (``catalog/<table>/shard-NNNNN.parquet``), so a
glob over all of them (``catalog/*/*.parquet``) makes DuckDB read the four tables as one: a query of
the columns they share (``idx``) or of ``count(*)`` answers over every table's rows, with no error
(asking for any other column fails, naming a file). The README must never show such a glob as a
path to read (it names it only to warn of it).
"""

from __future__ import annotations

import re
from pathlib import Path

import duckdb
import pyarrow.parquet as pq

import saldata
from saldata.schemas.catalog import TABLES

README = (Path(__file__).parents[2] / "README.md").read_text()
CATALOG_PATH = re.compile(r"(?:runs/demo|OUT|my-bucket/demo)/catalog/([^\s'\"`)]*)")


def documented_catalog_paths() -> list[str]:
    """Every path under an output's ``catalog/`` the README shows, relative to ``catalog/``."""
    return sorted({match.group(1) for match in CATALOG_PATH.finditer(README)})


def read(out: Path, rel: str):
    """What a plain reader gets: DuckDB for a Parquet glob, pyarrow for a folder."""
    path = out / "catalog" / rel
    if rel.endswith(".parquet"):
        # materialised by DuckDB: a streamed reader may raise DuckDB's error as pyarrow's OSError
        return duckdb.sql(f"SELECT * FROM read_parquet('{path}')").to_arrow_table()
    return pq.read_table(path)


def table_read(out: Path, rel: str) -> str | None:
    """The one catalog table ``rel`` reads, all its committed rows and nothing else; None otherwise."""
    try:
        got = read(out, rel)
    except duckdb.Error:
        return None
    output = saldata.open(out)
    for name, table in TABLES.items():
        if got.column_names == table.names and got.num_rows == getattr(output, name).num_rows:
            return name
    return None


def test_the_readme_shows_catalog_paths(demo_output):
    paths = documented_catalog_paths()
    assert any(p.endswith("*.parquet") for p in paths), paths  # the DuckDB example
    assert "images" in paths, paths  # pyarrow.parquet.read_table of a table's folder


def test_every_catalog_path_the_readme_shows_reads_exactly_one_table(demo_output):
    for rel in documented_catalog_paths():
        assert table_read(demo_output, rel) is not None, f"README: catalog/{rel} does not read one table"


def test_a_glob_over_the_table_folders_mixes_them_so_the_readme_never_shows_one(demo_output):
    """What the check above catches: DuckDB answers over every table's rows, silently."""
    glob = demo_output / "catalog" / "*" / "*.parquet"
    output = saldata.open(demo_output)
    rows = sum(getattr(output, name).num_rows for name in TABLES)
    assert duckdb.sql(f"SELECT count(*) FROM read_parquet('{glob}')").fetchall() == [(rows,)]
    assert duckdb.sql(f"SELECT count(idx) FROM read_parquet('{glob}')").fetchall() == [(rows,)]
    assert table_read(demo_output, "*/*.parquet") is None
    assert not any(rel.startswith("*") for rel in documented_catalog_paths())
