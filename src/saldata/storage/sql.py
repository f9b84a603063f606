"""SQL over the catalog: a DuckDB connection with one view per table, committed shards only.

Views read the Parquet files in place (nothing is copied or loaded up front), so a query on
a store of a million images touches only the columns and row groups it needs. A shard that
is still being written has no images file yet and is not in any view.
"""

from __future__ import annotations

from pathlib import Path

from saldata.errors import StoreError
from saldata.schemas.catalog import TABLES
from saldata.storage.catalog import catalog_dir, committed_files


def connect(out: Path):
    """A DuckDB connection with the views ``images``, ``tokens`` and ``words`` over ``out``'s catalog."""
    import duckdb

    if not catalog_dir(out).is_dir():
        raise StoreError(f"No catalog at {catalog_dir(out)}: is {out} a saldata extraction output?")
    con = duckdb.connect()
    for name, spec in TABLES.items():
        files = committed_files(out, name)
        if files:
            listed = ", ".join(_quote(str(f)) for f in files)
            con.execute(f"CREATE VIEW {name} AS SELECT * FROM read_parquet([{listed}])")
        else:  # an empty view still has the right columns and types
            con.register(name, spec.schema.empty_table())
    return con


def _quote(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"
