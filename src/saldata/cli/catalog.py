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
from saldata.errors import FAILURE, SaldataError, first_line
from saldata.storage.paths import refuse_inside
from saldata.words import plural

app = typer.Typer(
    help="SQL over an output's catalog (views images, tokens, words, fixations) and its schema.",
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
        str, typer.Argument(help='SQL over the views images, tokens, words, fixations, e.g. "SELECT * FROM words".')
    ],
    format: Annotated[Format, typer.Option("--format", "-f", help="How to print the result.")] = Format.table,
    output: Annotated[
        Path | None,
        typer.Option(
            "--output", "-o", help="Write to this file (outside OUT) instead of stdout (required for parquet)."
        ),
    ] = None,
    max_rows: Annotated[int, typer.Option(help="Rows shown by --format table (others write all).")] = 50,
    storage_option: StorageOptions = None,
) -> None:
    """Run read-only SQL (SELECT) over the catalog. Only committed shards are visible."""
    import duckdb

    from saldata.storage.sql import query as run_query

    if format is Format.parquet and output is None:
        _fail("--format parquet needs --output FILE.")
    try:
        out = location(out, storage_option)
        if output is not None:
            refuse_inside(output, out, "--output", "queries")
        table = run_query(out, sql)
    except duckdb.Error as exc:
        _fail(str(exc))
    except SaldataError as exc:
        fail(exc)
    _write(table, format, output, max_rows)


@app.command(no_args_is_help=True)
def show(out: OutArg, storage_option: StorageOptions = None) -> None:
    """Print each catalog view's columns (with meaning) and row count, and the store's arrays."""
    import duckdb
    from rich.console import Console
    from rich.table import Table

    from saldata.schemas.catalog import TABLES
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
    console = Console()
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
    import pyarrow.parquet as pq

    if format is Format.parquet:
        pq.write_table(table, output)
    elif format is Format.csv:
        if output:
            with open(output, "w", newline="", encoding="utf-8") as f:
                _write_csv(table, f)
        else:
            sys.stdout.flush()
            stream = io.TextIOWrapper(sys.stdout.buffer, encoding="utf-8", newline="", write_through=True)
            try:
                _write_csv(table, stream)
                stream.flush()
            finally:
                stream.detach()  # leave sys.stdout open
    elif format is Format.json:
        text = json.dumps(table.to_pylist(), default=str, ensure_ascii=False, indent=1)
        output.write_text(text + "\n") if output else typer.echo(text)
    else:
        _print_table(table, max_rows, output)


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


def _print_table(table, max_rows: int, output: Path | None) -> None:
    from rich.console import Console
    from rich.table import Table

    view = Table(
        *table.column_names,
        caption=plural(table.num_rows, "row") + (f", first {max_rows} shown" if table.num_rows > max_rows else ""),
    )
    for row in table.slice(0, max_rows).to_pylist():
        view.add_row(*("NULL" if v is None else str(v) for v in row.values()))
    if output:
        with open(output, "w") as f:
            Console(file=f, width=200).print(view)
    else:
        Console().print(view)


def _fail(message: str) -> None:
    typer.secho(f"Error: {message}", fg=typer.colors.RED, err=True)
    raise typer.Exit(code=2)
