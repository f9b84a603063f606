"""The Parquet catalog: one file per table per shard, written aside and renamed into place.

``catalog/images/shard-NNNNN.parquet`` is renamed last, after the shard's arrays and tokens
are on disk, so its presence is the shard's commit: readers and ``status`` count only what
it says.
"""

from __future__ import annotations

import os
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from saldata.schemas.catalog import CATALOG_DIRNAME, IMAGES, TABLES, TableSpec


def catalog_dir(out: Path) -> Path:
    return Path(out) / CATALOG_DIRNAME


def shard_file(out: Path, table: TableSpec, shard_index: int) -> Path:
    return catalog_dir(out) / table.name / f"shard-{shard_index:05d}.parquet"


def write_table_atomic(rows: list[dict], table: TableSpec, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    arrow = pa.Table.from_pylist(rows, schema=table.schema)
    partial = path.with_name(path.name + ".partial")
    pq.write_table(arrow, partial, compression="zstd")
    with open(partial, "rb") as f:
        os.fsync(f.fileno())
    os.replace(partial, path)


def commit_shard(out: Path, shard_index: int, rows: dict[str, list[dict]]) -> None:
    """Write each table's rows of the shard; the images file goes last: it is the commit marker."""
    for name in sorted(rows, key=lambda n: n == IMAGES.name):
        write_table_atomic(rows[name], TABLES[name], shard_file(out, TABLES[name], shard_index))


def merge_with_committed(out: Path, shard_index: int, rows: dict[str, list[dict]]) -> dict[str, list[dict]]:
    """The shard's committed rows with those of the new images' idx values replaced (a retry)."""
    replaced = {row["idx"] for row in rows[IMAGES.name]}
    merged = {}
    for name, new_rows in rows.items():
        table = TABLES[name]
        old = pq.read_table(shard_file(out, table, shard_index), schema=table.schema).to_pylist()
        kept = [r for r in old if r["idx"] not in replaced] + new_rows
        merged[name] = sorted(kept, key=lambda r: (r["idx"], r.get("position", r.get("word_index", 0))))
    return merged


def committed_shards(out: Path) -> set[int]:
    folder = catalog_dir(out) / IMAGES.name
    return {int(p.stem.split("-")[1]) for p in folder.glob("shard-*.parquet")} if folder.is_dir() else set()


def committed_files(out: Path, name: str) -> list[Path]:
    """A table's files of committed shards only, in shard (so idx) order."""
    committed = committed_shards(out)
    return sorted(
        f for f in (catalog_dir(out) / name).glob("shard-*.parquet") if int(f.stem.split("-")[1]) in committed
    )


def read_table(out: Path, name: str) -> pa.Table:
    """All committed rows of a table, ordered by shard file name (so by idx)."""
    table = TABLES[name]
    files = committed_files(out, name)
    if not files:
        return table.schema.empty_table()
    return pa.concat_tables([pq.read_table(f, schema=table.schema) for f in files])
