"""``saldata catalog query|show``: SQL over an output's catalog, and what it holds."""

from __future__ import annotations

import csv
import enum
import io
import json
import sys
from pathlib import Path
from typing import Annotated

import typer

from saldata.cli.failure import fail
from saldata.cli.locations import OutArg, StorageOptions, location
from saldata.errors import FAILURE, QueryTimeout, SaldataError, first_line
from saldata.storage.os_errors import write_failure
from saldata.storage.paths import check_output_file
from saldata.words import plural

DEFAULT_TIMEOUT_S = 600.0  # a query longer than this is more likely a mistake than a wish; --timeout 0 lifts it

app = typer.Typer(
    help="SQL over an output's catalog (views images, tokens, words, fixations, objects, object_masks) and its schema.",
    no_args_is_help=True,
)


class Format(str, enum.Enum):
    table = "table"
    csv = "csv"
    json = "json"
    parquet = "parquet"


@app.command(no_args_is_help=True)
def query(
    out: OutArg,
    sql: Annotated[
        str,
        typer.Argument(
            help="One SQL query over the views images, tokens, words, fixations, objects, object_masks, "
            'e.g. "SELECT * FROM words".'
        ),
    ],
    format: Annotated[Format, typer.Option("--format", "-f", help="How to print the result.")] = Format.table,
    output: Annotated[
        Path | None,
        typer.Option(
            "--output", "-o", help="Write to this file (outside OUT) instead of stdout (required for parquet)."
        ),
    ] = None,
    max_rows: Annotated[int, typer.Option(help="Rows shown by --format table (others write all).")] = 50,
    timeout: Annotated[
        float, typer.Option(help="Stop the query after this many seconds (0: no limit).", min=0)
    ] = DEFAULT_TIMEOUT_S,
    storage_option: StorageOptions = None,
) -> None:
    """Run one read-only SQL query (SELECT) over the catalog. Only committed shards are visible.

    DuckDB runs it with at most half of this machine's memory; what does not fit spills into the
    system's temp folder (TMPDIR), up to half of its free space. Ctrl-C stops it.
    """
    import duckdb

    from saldata.storage.sql import query as run_query

    if format is Format.parquet and output is None:
        fail("--format parquet needs --output FILE.")
    try:
        out = location(out, storage_option)
        if output is not None:
            check_output_file(output, out, "--output", "queries")
        table = run_query(out, sql, timeout=timeout)
    except KeyboardInterrupt:
        typer.echo("interrupted: the query was stopped; nothing was written", err=True)
        raise typer.Exit(code=130) from None
    except QueryTimeout as exc:
        fail(exc)
    except duckdb.OutOfMemoryException as exc:
        fail(
            f"{first_line(exc)}: the query needs more than the memory DuckDB is given (half of this machine's) and "
            "its spill space (half the free space of the temp folder); select less, or set TMPDIR to a larger disk.",
            code=FAILURE,
        )
    except duckdb.Error as exc:
        fail(str(exc))
    except SaldataError as exc:
        fail(exc)
    try:
        _write(table, format, output, max_rows)
    except OSError as exc:  # a full disk, a read-only folder: the output is never touched
        fail(write_failure(exc, output), code=FAILURE)


@app.command(no_args_is_help=True)
def show(out: OutArg, storage_option: StorageOptions = None) -> None:
    """Print each catalog view's columns (with meaning) and row count, and the store's arrays."""
    import duckdb
    from rich.table import Table

    from saldata.cli.report import report_console
    from saldata.schemas.catalog import CATALOG_TABLES as TABLES
    from saldata.schemas.store import ARRAY_SPECS
    from saldata.storage.sql import connect
    from saldata.storage.zarr_store import open_store

    try:
        out = location(out, storage_option)
        con = connect(out)
        group = open_store(out)
        counts = {name: con.sql(f"SELECT count(*) FROM {name}").fetchall()[0][0] for name in TABLES}
    except SaldataError as exc:
        fail(exc)
    except duckdb.Error as exc:
        fail(f"{first_line(exc)}; run saldata verify {out} to see what is damaged.", code=FAILURE)
    console = report_console()
    for name, spec in TABLES.items():
        count = counts[name]
        view = Table(title=f"{name}: {plural(count, 'row')}  ({spec.doc})", title_justify="left")
        for header in ("column", "type", "meaning"):
            view.add_column(header)
        for column in spec.columns:
            view.add_row(column.name, str(column.type), column.doc)
        console.print(view)
    arrays = Table(title=f"store {out / 'features.zarr'}", title_justify="left")
    for header in ("array", "shape", "dims", "dtype"):
        arrays.add_column(header)
    for name, array in sorted(group.arrays()):
        dims = ARRAY_SPECS[name].dims if name in ARRAY_SPECS else array.metadata.dimension_names
        arrays.add_row(name, str(array.shape), ", ".join(dims or ()), str(array.dtype))
    console.print(arrays)


def _write(table, format: Format, output: Path | None, max_rows: int) -> None:
    if output is not None:  # written aside and renamed: a failed write leaves no part of a file
        from saldata.storage.commits import write_atomic

        write_atomic(output, _rendered(table, format, max_rows))
    elif format is Format.csv:
        sys.stdout.flush()
        stream = io.TextIOWrapper(sys.stdout.buffer, encoding="utf-8", newline="", write_through=True)
        try:
            _write_csv(table, stream)
            stream.flush()
        finally:
            stream.detach()  # leave sys.stdout open
    elif format is Format.json:
        typer.echo(_json(table))
    else:
        _print_table(table, max_rows, None)


def _rendered(table, format: Format, max_rows: int) -> bytes:
    """The bytes of ``--output``'s file."""
    if format is Format.parquet:
        import pyarrow as pa
        import pyarrow.parquet as pq

        sink = pa.BufferOutputStream()
        pq.write_table(table, sink)
        return sink.getvalue().to_pybytes()
    text = io.StringIO(newline="")
    if format is Format.csv:
        _write_csv(table, text)
    elif format is Format.json:
        text.write(_json(table) + "\n")
    else:
        _print_table(table, max_rows, text)
    return text.getvalue().encode("utf-8")


def _json(table) -> str:
    return json.dumps(table.to_pylist(), default=str, ensure_ascii=False, indent=1)


def _write_csv(table, stream) -> None:
    """RFC 4180 with minimal quoting: a value is quoted only when it holds a comma, quote or line break.

    Values are Arrow's text for their type (what pyarrow's CSV writer prints); lists and structs,
    which Arrow cannot print as text, are JSON. NULL is an empty field.
    """
    writer = csv.writer(stream, lineterminator="\n")  # QUOTE_MINIMAL
    writer.writerow(table.column_names)
    for batch in table.to_batches(max_chunksize=16384):
        writer.writerows(zip(*(_as_text(column) for column in batch.columns)))


def _as_text(column) -> list:
    import pyarrow as pa
    import pyarrow.compute as pc

    try:
        return pc.cast(column, pa.string()).to_pylist()
    except (pa.ArrowNotImplementedError, pa.ArrowInvalid):
        return [None if v is None else json.dumps(v, default=str, ensure_ascii=False) for v in column.to_pylist()]


def _print_table(table, max_rows: int, output: io.StringIO | None) -> None:
    from rich.table import Table

    from saldata.cli.report import report_console

    view = Table(
        *table.column_names,
        caption=plural(table.num_rows, "row") + (f", first {max_rows} shown" if table.num_rows > max_rows else ""),
    )
    for row in table.slice(0, max_rows).to_pylist():
        view.add_row(*("NULL" if v is None else str(v) for v in row.values()))
    if output is not None:
        report_console(output).print(view)
    else:
        report_console().print(view)
