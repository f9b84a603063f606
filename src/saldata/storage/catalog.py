"""The Parquet catalog: one file per table per shard, ``catalog/<table>/shard-NNNNN.parquet``.

Files are written into the shard's staging folder and enter ``catalog/`` only when the shard
commits (``storage/commits.py``), so a plain ``pyarrow.parquet.read_table(OUT/catalog/images)``
sees committed rows only. saldata's own readers go further and read exactly the files the
commit records name: a shard committed before its catalog had a table (``fixations`` came with
catalog schema 4) has no file of that table, and reads as no rows of it.
"""

from __future__ import annotations

import os
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from saldata.errors import StoreError
from saldata.schemas.catalog import CATALOG_DIRNAME, IMAGES, TABLES, TableSpec
from saldata.storage.location import as_out, is_object, read_many


def catalog_dir(out: Path) -> Path:
    return as_out(out) / CATALOG_DIRNAME


def shard_relpath(table: TableSpec, shard_index: int) -> str:
    """Where a table's file of a shard lives, relative to OUT (and to a staging folder)."""
    return f"{CATALOG_DIRNAME}/{table.name}/shard-{shard_index:05d}.parquet"


def shard_file(out: Path, table: TableSpec, shard_index: int) -> Path:
    return as_out(out) / shard_relpath(table, shard_index)


def write_table(rows: list[dict], table: TableSpec, path: Path) -> None:
    """Write and fsync (the commit that follows must not point at data still in the page cache).

    An object is written whole, by one PUT."""
    data = pa.Table.from_pylist(rows, schema=table.schema)
    if is_object(path):
        sink = pa.BufferOutputStream()
        pq.write_table(data, sink, compression="zstd")
        path.write_bytes(sink.getvalue().to_pybytes())
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(data, path, compression="zstd")
    with open(path, "rb") as f:
        os.fsync(f.fileno())


def stage_tables(staging: Path, shard_index: int, rows: dict[str, list[dict]]) -> list[str]:
    """Write each table's rows of the shard under ``staging``; returns their relative paths."""
    written = []
    for name, table_rows in rows.items():
        rel = shard_relpath(TABLES[name], shard_index)
        write_table(table_rows, TABLES[name], as_out(staging) / rel)
        written.append(rel)
    return written


def merge_with_committed(out: Path, shard_index: int, rows: dict[str, list[dict]]) -> dict[str, list[dict]]:
    """The shard's committed rows with those of the new images' idx values replaced (a retry)."""
    replaced = {row["idx"] for row in rows[IMAGES.name]}
    named = _committed(out).get(shard_index)
    merged = {}
    for name, new_rows in rows.items():
        table = TABLES[name]
        has_file = _has_file(out, table, shard_index, named)
        old = read_file(shard_file(out, table, shard_index), table).to_pylist() if has_file else []
        kept = [r for r in old if r["idx"] not in replaced] + new_rows
        # a stable sort: fixations, keyed by idx alone, keep their file order within an image
        merged[name] = sorted(kept, key=lambda r: (r["idx"], r.get("position", r.get("word_index", 0))))
    return merged


def committed_shards(out: Path) -> set[int]:
    """Shards whose commit record says they are complete."""
    return set(_committed(out))


def committed_files(out: Path, name: str) -> list[Path]:
    """A table's files of committed shards only, in shard (so idx) order."""
    table = TABLES[name]
    return [
        shard_file(out, table, s) for s, named in sorted(_committed(out).items()) if _has_file(out, table, s, named)
    ]


def read_file(path: Path, table: TableSpec, data: bytes | Exception | None = None) -> pa.Table:
    """One catalog file as a table; ``data``: its bytes (or why they could not be read), fetched already."""
    try:
        if isinstance(data, Exception):
            raise data
        if data is None and is_object(path):
            data = path.read_bytes()  # one GET, through fsspec
        return pq.read_table(path if data is None else pa.BufferReader(data), schema=table.schema)
    except FileNotFoundError:
        raise StoreError(
            f"{path} is missing although its shard is committed; run saldata verify on the output."
        ) from None
    except (pa.ArrowException, OSError) as exc:
        raise StoreError(
            f"{path} cannot be read ({type(exc).__name__}: {str(exc).splitlines()[0]}); "
            "run saldata verify on the output, then rerun the extraction to redo the damaged shard."
        ) from None


def read_table(out: Path, name: str) -> pa.Table:
    """All committed rows of a table, ordered by shard (so by idx)."""
    table = TABLES[name]
    files = committed_files(out, name)
    if not files:
        return table.schema.empty_table()
    fetched = read_many(files) if is_object(out) else [None] * len(files)  # objects: all at once
    return pa.concat_tables([read_file(f, table, data) for f, data in zip(files, fetched)])


def _committed(out: Path) -> dict[int, set[str] | None]:
    """Committed shards, each with the files (relative to OUT) its record names; None without records."""
    from saldata.storage.commits import commits_dir, read_commit_log

    if commits_dir(out).is_dir():
        committed = read_commit_log(out).committed
        return {s: {rel for rel, digest in r.files.items() if digest is not None} for s, r in committed.items()}
    return dict.fromkeys(_legacy_committed(out))


def _has_file(out: Path, table: TableSpec, shard: int, named: set[str] | None) -> bool:
    """Whether a committed shard has a file of ``table``: its record names one, or, in an output
    without records, the output has the table at all (the tables of its catalog version)."""
    if named is None:
        return (catalog_dir(out) / table.name).is_dir()
    return shard_relpath(table, shard) in named


def _legacy_committed(out: Path) -> list[int]:
    """Outputs of store schema 2 and older had no records: an images file was the commit."""
    folder = catalog_dir(out) / IMAGES.name
    if not folder.is_dir():
        return []
    from saldata.storage.zarr_store import store_schema_version

    if (store_schema_version(out) or 0) >= 3:
        return []  # a current output whose first commit has not landed yet
    return sorted(int(p.stem.split("-")[1]) for p in folder.glob("shard-*.parquet"))
