"""Read-only SQL over the catalog: DuckDB views ``images``, ``tokens``, ``words``, ``fixations`` over committed shards.

Views read the Parquet files in place (nothing is copied or loaded up front), so a query on
a store of a million images touches only the columns and row groups it needs. A shard that
is still being written has no images file yet and is not in any view. A view with no file
(no committed shard, or an output older than its table) is an empty table of the right columns.

Queries see the views and nothing else. Two locks, each enough for what it covers:

- every statement must parse as a SELECT (``SELECT``, ``WITH``, ``FROM``, ``VALUES``,
  ``DESCRIBE``, ``SUMMARIZE``, ``SHOW``, ``UNPIVOT``); anything else (``COPY``, ``EXPORT``,
  ``ATTACH``, ``INSTALL``/``LOAD``, ``SET``, ``PRAGMA``, ``CALL``, ``CREATE``, ``INSERT``,
  ``EXPLAIN``, ...) is refused before it runs. This is what keeps the committed files
  themselves from being written: DuckDB has no read-only file permission;
- the connection has external access off, with only the committed files allowed, and its
  configuration locked: no other file can be read or written (``read_csv``, ``read_text``,
  ``glob``, ``parquet_metadata``, a file name in ``FROM``), no extension installed or
  loaded, no Python variable scanned, no setting changed.
"""

from __future__ import annotations

import re
from pathlib import Path

import pyarrow as pa

from saldata.errors import ConfigError, NotAnOutputError
from saldata.schemas.catalog import TABLES
from saldata.storage.catalog import catalog_dir, committed_files, read_table
from saldata.storage.location import check_reachable, is_object

VIEWS = ", ".join(TABLES)


class ReadOnlyConnection:
    """A locked-down DuckDB connection whose ``sql`` runs only read-only statements."""

    def __init__(self, con):
        self._con = con

    def sql(self, query: str):
        """The DuckDB relation of the last statement of ``query``, once every statement is allowed."""
        statements = readonly_statements(query)
        for statement in statements[:-1]:  # bound (errors show) but not run: a SELECT changes nothing
            self._con.sql(statement)
        return self._con.sql(statements[-1])

    def close(self) -> None:
        self._con.close()

    def __enter__(self) -> ReadOnlyConnection:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def connect(out: Path) -> ReadOnlyConnection:
    """A read-only connection with the views ``images``, ``tokens``, ``words``, ``fixations`` over ``out``'s catalog."""
    import duckdb

    check_reachable(catalog_dir(out))
    if not catalog_dir(out).is_dir():
        raise NotAnOutputError(f"No catalog at {catalog_dir(out)}: is {out} a saldata extraction output?")
    con = duckdb.connect()
    if is_object(out):
        # DuckDB reads an object store only through its httpfs extension, which cannot be
        # installed offline: the committed files are read through fsspec, and DuckDB scans them
        # as Arrow tables. Nothing else is reachable, as below.
        for name in TABLES:
            con.register(name, read_table(out, name))
        con.execute("SET enable_external_access = false")
        con.execute("SET lock_configuration = true")
        return ReadOnlyConnection(con)
    views, files = {}, []
    for name in TABLES:
        paths = [str(Path(f).resolve()) for f in committed_files(out, name)]
        views[name] = paths
        files += paths
    # Only these files, named one by one (no folder, no glob: uncommitted shards stay out).
    if files:
        con.execute(f"SET allowed_paths = [{', '.join(map(_quote, files))}]")
    for name, paths in views.items():
        if paths:
            con.execute(f"CREATE VIEW {name} AS SELECT * FROM read_parquet([{', '.join(map(_quote, paths))}])")
        else:  # an empty view still has the right columns and types
            con.register(name, TABLES[name].schema.empty_table())
    con.execute("SET enable_external_access = false")
    con.execute("SET lock_configuration = true")
    return ReadOnlyConnection(con)


def readonly_statements(sql: str) -> list:
    """``sql``'s statements, parsed, when each is a SELECT; a one-line ``ConfigError`` naming the first that is not.

    Syntax errors raise DuckDB's ``ParserException``, as running the SQL would.
    """
    import duckdb

    statements = duckdb.extract_statements(sql)
    if not statements:
        raise ConfigError(f"no SQL statement given; use SELECT over {VIEWS}.")
    for statement in statements:
        if statement.type != duckdb.StatementType.SELECT:
            raise ConfigError(
                f"only SELECT queries over {VIEWS} are allowed (got {_kind(statement)}); the catalog is read-only."
            )
    return statements


def query(out: Path, sql: str) -> pa.Table:
    """Run read-only ``sql`` over ``out``'s catalog views; the last statement's result as an Arrow table.

    Refused statements and reads outside the views raise a one-line ``ConfigError``; other
    bad SQL raises DuckDB's own error (``duckdb.Error``).
    """
    import duckdb

    with connect(out) as con:
        try:
            result = con.sql(sql).arrow()
            return result.read_all() if hasattr(result, "read_all") else result  # a reader in DuckDB >= 1.4
        except duckdb.PermissionException as exc:
            reason = str(exc).strip().splitlines()[0]
            raise ConfigError(f"queries read only the views {VIEWS} ({reason}).") from None


def _kind(statement) -> str:
    """What the user wrote (COPY, INSTALL, PIVOT), or DuckDB's statement type after a WITH."""
    word = re.match(r"(?:\s|--[^\n]*(?:\n|$)|/\*.*?\*/|\()*([A-Za-z_]*)", statement.query, re.S).group(1).upper()
    return word if word and word != "WITH" else statement.type.name


def _quote(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"
