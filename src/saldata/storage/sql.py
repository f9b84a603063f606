"""Read-only SQL over the catalog: DuckDB views ``images``, ``tokens``, ``words``, ``fixations`` over committed
shards, and ``objects`` and ``object_masks`` over the files ``commits/objects.json`` names (``saldata objects``).

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

Queries are bounded on purpose (``resource_settings``): DuckDB's memory limit is a share of this
machine's memory, and what does not fit spills into a folder of its own in the system's temp
folder (``TMPDIR``), never the working folder, up to a share of that disk's free space. ``query``
stops a query past its ``timeout``, and on Ctrl-C, by interrupting DuckDB.
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import tempfile
import threading
from pathlib import Path

import pyarrow as pa

from saldata.errors import ConfigError, NotAnOutputError, QueryTimeout
from saldata.schemas.catalog import CATALOG_TABLES, OBJECT_TABLES, TABLES
from saldata.storage.catalog import catalog_dir, committed_files, committed_shards, read_table
from saldata.storage.location import check_reachable, is_object

VIEWS = ", ".join(CATALOG_TABLES)

MEMORY_SHARE = 0.5  # of this machine's memory: DuckDB's own default (80%) leaves little to the rest
SPILL_SHARE = 0.5  # of the free space where spill files go: a query must not fill the disk


class ReadOnlyConnection:
    """A locked-down DuckDB connection whose ``sql`` runs only read-only statements."""

    def __init__(self, con):
        self._con = con

    def sql(self, query: str):
        """The DuckDB relation of ``query``, a single allowed statement."""
        statements = readonly_statements(query)
        if len(statements) > 1:  # only the last one's rows would come back: the others would be lost unseen
            raise ConfigError(
                f"one statement at a time (got {len(statements)}); run each on its own, or join them into one query."
            )
        return self._con.sql(statements[0])

    def interrupt(self) -> None:
        """Stop the statement running now (from another thread)."""
        self._con.interrupt()

    def close(self) -> None:
        self._con.close()

    def __enter__(self) -> ReadOnlyConnection:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def connect(out: Path) -> ReadOnlyConnection:
    """A read-only connection with the views of every catalog table (``VIEWS``) over ``out``'s catalog."""
    import duckdb

    check_reachable(catalog_dir(out))
    if not catalog_dir(out).is_dir() and not committed_shards(out):  # committed: its files are missing, said below
        raise NotAnOutputError(f"No catalog at {catalog_dir(out)}: is {out} a saldata extraction output?")
    con = duckdb.connect(config=resource_settings())
    con.execute("SET enable_progress_bar = false")  # DuckDB draws it on stdout, into the user's results
    if is_object(out):
        # DuckDB reads an object store only through its httpfs extension, which cannot be
        # installed offline: the committed files are read through fsspec, and DuckDB scans them
        # as Arrow tables. Nothing else is reachable, as below.
        from saldata.objects.table import read_object_table

        for name in TABLES:
            con.register(name, read_table(out, name))
        for name in OBJECT_TABLES:
            con.register(name, read_object_table(out, name))
        con.execute("SET enable_external_access = false")
        con.execute("SET lock_configuration = true")
        return ReadOnlyConnection(con)
    from saldata.objects.table import checked_object_files

    views, files = {}, []
    for name in CATALOG_TABLES:
        found = committed_files(out, name) if name in TABLES else checked_object_files(out, name)
        paths = [str(Path(f).resolve()) for f in found]
        views[name] = paths
        files += paths
    # Only these files, named one by one (no folder, no glob: uncommitted shards stay out), each
    # checked against its commit record by committed_files before DuckDB may read it.
    if files:
        con.execute(f"SET allowed_paths = [{', '.join(map(_quote, files))}]")
    for name, paths in views.items():
        if paths:
            con.execute(f"CREATE VIEW {name} AS SELECT * FROM read_parquet([{', '.join(map(_quote, paths))}])")
        else:  # an empty view still has the right columns and types
            con.register(name, CATALOG_TABLES[name].schema.empty_table())
    con.execute("SET enable_external_access = false")
    con.execute("SET lock_configuration = true")
    return ReadOnlyConnection(con)


def resource_settings() -> dict:
    """DuckDB's memory limit and spill folder, set on purpose (see the module's docstring)."""
    import psutil

    spill = Path(tempfile.gettempdir()) / f"saldata-sql-{os.getpid()}-{threading.get_ident()}"
    free = psutil.disk_usage(spill.parent).free
    return {
        "memory_limit": f"{int(MEMORY_SHARE * psutil.virtual_memory().total) // 2**20}MiB",
        "temp_directory": str(spill),  # DuckDB makes it when it first spills, and removes it on close
        "max_temp_directory_size": f"{int(SPILL_SHARE * free) // 2**20}MiB",
    }


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


def query(out: Path, sql: str, timeout: float | None = None) -> pa.Table:
    """Run read-only ``sql`` (one statement) over ``out``'s catalog views; its result as an Arrow table.

    Refused statements and reads outside the views raise a one-line ``ConfigError``; a query
    still running after ``timeout`` seconds (None or 0: no limit) is stopped and raises
    ``QueryTimeout``; Ctrl-C stops it too (``KeyboardInterrupt``); other bad SQL raises DuckDB's
    own error (``duckdb.Error``).
    """
    import duckdb

    with connect(out) as con:
        try:
            return _bounded(con, lambda: _as_table(con.sql(sql).arrow()), timeout)
        except duckdb.PermissionException as exc:
            reason = str(exc).strip().splitlines()[0]
            raise ConfigError(f"queries read only the views {VIEWS} ({reason}).") from None


def _as_table(result) -> pa.Table:
    return result.read_all() if hasattr(result, "read_all") else result  # a reader in DuckDB >= 1.4


def _bounded(con: ReadOnlyConnection, run, timeout: float | None):
    """``run()``'s result, run in a thread so that this one can stop it: past ``timeout``, or on Ctrl-C.

    DuckDB does not look at Python's signals while it works, so the query runs aside while this
    thread waits; Ctrl-C, caught here while it waits, and the timeout both call DuckDB's
    ``interrupt``, which stops the work within moments and leaves the connection usable (a
    ``KeyboardInterrupt`` raised into the wait would leave the query running, and its connection
    busy, on Python 3.11).
    """
    outcome: dict = {}
    done = threading.Event()
    stopped: list[str] = []

    def work() -> None:
        try:
            outcome["value"] = run()
        except BaseException as exc:  # handed to the caller's thread
            outcome["error"] = exc
        finally:
            done.set()

    def stop(why: str) -> None:
        if not stopped:
            stopped.append(why)
            con.interrupt()

    threading.Thread(target=work, name="saldata-sql", daemon=True).start()
    with _on_ctrl_c(lambda: stop("ctrl-c")):
        if not done.wait(timeout or None):
            stop("timeout")
        done.wait()
    if stopped and "value" not in outcome:
        if stopped[0] == "ctrl-c":
            raise KeyboardInterrupt
        raise QueryTimeout(
            f"the query ran past --timeout {timeout:g} s and was stopped; give a longer one (0: no limit), "
            "or select less."
        )
    if "error" in outcome:
        raise outcome.pop("error")
    return outcome["value"]


@contextlib.contextmanager
def _on_ctrl_c(action):
    """Call ``action`` on SIGINT instead of raising ``KeyboardInterrupt`` (in the main thread; elsewhere
    Python delivers no signal)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGINT, lambda signum, frame: action())
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


def _kind(statement) -> str:
    """What the user wrote (COPY, INSTALL, PIVOT), or DuckDB's statement type after a WITH."""
    word = re.match(r"(?:\s|--[^\n]*(?:\n|$)|/\*.*?\*/|\()*([A-Za-z_]*)", statement.query, re.S).group(1).upper()
    return word if word and word != "WITH" else statement.type.name


def _quote(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"
