"""``saldata catalog query|show``: SQL over an output's catalog, and what it holds."""

from __future__ import annotations

import enum
import sys
from pathlib import Path
from typing import Annotated

import typer

from saldata.errors import SaldataError

app = typer.Typer(
    help="SQL over an output's catalog (views images, tokens, words) and its schema.",
    no_args_is_help=True,
)

OutArg = Annotated[Path, typer.Argument(help="An extraction output directory.")]


class Format(str, enum.Enum):
    table = "table"
    csv = "csv"
    json = "json"
    parquet = "parquet"


@app.command(no_args_is_help=True)
def query(
    out: OutArg,
    sql: Annotated[str, typer.Argument(help='SQL over the views images, tokens, words, e.g. "SELECT * FROM words".')],
    format: Annotated[Format, typer.Option("--format", "-f", help="How to print the result.")] = Format.table,
    output: Annotated[
        Path | None, typer.Option("--output", "-o", help="Write to this file instead of stdout (required for parquet).")
    ] = None,
    max_rows: Annotated[int, typer.Option(help="Rows shown by --format table (others write all).")] = 50,
) -> None:
    """Run SQL over the catalog. Only committed shards are visible."""
    import duckdb

    from saldata.storage.sql import connect

    try:
        con = connect(out)
        result = con.sql(sql)
        if result is None:
            _fail("the statement returned no rows; use SELECT.")
        table = result.arrow()
        if hasattr(table, "read_all"):  # newer DuckDB returns a record batch reader
            table = table.read_all()
    except duckdb.Error as exc:
        _fail(str(exc))
    except SaldataError as exc:
        _fail(str(exc))
    if format is Format.parquet and output is None:
        _fail("--format parquet needs --output FILE.")
    _write(table, format, output, max_rows)


@app.command(no_args_is_help=True)
def show(out: OutArg) -> None:
    """Print each catalog view's columns (with meaning) and row count, and the store's arrays."""
    from rich.console import Console
    from rich.table import Table

    from saldata.schemas.catalog import TABLES
    from saldata.schemas.store import ARRAY_SPECS
    from saldata.storage.sql import connect
    from saldata.storage.zarr_store import open_store

    try:
        con = connect(out)
        group = open_store(out)
    except SaldataError as exc:
        _fail(str(exc))
    console = Console()
    for name, spec in TABLES.items():
        count = con.sql(f"SELECT count(*) FROM {name}").fetchall()[0][0]
        view = Table(title=f"{name}: {count} rows  ({spec.doc})", title_justify="left")
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
    import pyarrow.csv as pcsv
    import pyarrow.parquet as pq

    if format is Format.parquet:
        pq.write_table(table, output)
    elif format is Format.csv:
        if output:
            pcsv.write_csv(table, output)
        else:
            pcsv.write_csv(table, sys.stdout.buffer)
    elif format is Format.json:
        import json

        text = json.dumps(table.to_pylist(), default=str, ensure_ascii=False, indent=1)
        output.write_text(text + "\n") if output else typer.echo(text)
    else:
        _print_table(table, max_rows, output)


def _print_table(table, max_rows: int, output: Path | None) -> None:
    from rich.console import Console
    from rich.table import Table

    view = Table(
        *table.column_names,
        caption=f"{table.num_rows} rows" + (f", first {max_rows} shown" if table.num_rows > max_rows else ""),
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
