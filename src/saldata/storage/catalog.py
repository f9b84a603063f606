"""The Parquet catalog: one file per table per shard, ``catalog/<table>/shard-NNNNN.parquet``.

Files are written into the shard's staging folder and enter ``catalog/`` only when the shard
commits (``storage/commits.py``), so a plain ``pyarrow.parquet.read_table(OUT/catalog/images)``
sees committed rows only. saldata's own readers go further and read exactly the files the
commit records name: a shard committed before its catalog had a table (``fixations`` came with
catalog schema 4) has no file of that table, and reads as no rows of it. And they read a file
only when it is what its record says (size and CRC-32C): one changed, deleted or renamed after
its commit is refused with one ``DamageError`` line naming it, on a disk as on an object store.
A catalog file is small, so the check costs little; Zarr chunks carry checksums of their own.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, NamedTuple

import pyarrow as pa
import pyarrow.parquet as pq

from saldata.errors import DamageError, first_line
from saldata.schemas.catalog import CATALOG_DIRNAME, IMAGES, TABLES, TableSpec
from saldata.storage.location import as_out, is_object, read_many

if TYPE_CHECKING:
    from saldata.storage.commits import FileDigest


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


class CommittedFile(NamedTuple):
    """A catalog file of a committed shard, and what its commit record says it is."""

    path: Path
    shard: int
    digest: FileDigest | None  # None in an output older than commit records: nothing to check against


def committed_files(out: Path, name: str) -> list[Path]:
    """A table's files of committed shards only, in shard (so idx) order, each checked against its
    record (``_check_file``) before the caller may read it."""

    def check(files: list[CommittedFile]) -> list[Path]:
        for file in files:
            _check_file(out, file)
        return [file.path for file in files]

    return _read_checked(out, name, check)


def read_file(path: Path, table: TableSpec, data: bytes | Exception | None = None) -> pa.Table:
    """One catalog file as a table; ``data``: its bytes (or why they could not be read), fetched already."""
    try:
        if isinstance(data, Exception):
            raise data
        if data is None and is_object(path):
            data = path.read_bytes()  # one GET, through fsspec
        return pq.read_table(path if data is None else pa.BufferReader(data), schema=table.schema)
    except (pa.ArrowException, OSError) as exc:
        raise _unreadable(path, exc) from None


def read_table(out: Path, name: str, shards: set[int] | None = None) -> pa.Table:
    """All committed rows of a table (of ``shards`` only, if given), ordered by shard (so by idx).

    Each file is read once, whole (they are small; an object store's all at once), and its bytes
    are checked against its record before they are parsed."""
    table = TABLES[name]

    def read(files: list[CommittedFile]) -> pa.Table:
        files = [f for f in files if shards is None or f.shard in shards]
        if not files:
            return table.schema.empty_table()
        fetched = read_many([f.path for f in files])
        for file, data in zip(files, fetched):
            if not isinstance(data, Exception):
                _check_bytes(out, file, data)
        return pa.concat_tables([read_file(f.path, table, data) for f, data in zip(files, fetched)])

    return _read_checked(out, name, read)


def _read_checked(out: Path, name: str, read):
    """``read`` over a table's committed files; once more when a file is not what its record said
    and the records changed meanwhile: a commit of that shard (``--retry-failed``) landed between
    the reading of the records and of the file, which is not damage."""
    files = _table_files(out, name)
    try:
        return read(files)
    except DamageError:
        again = _table_files(out, name)
        if again == files:
            raise
        return read(again)


def _check_file(out: Path, file: CommittedFile) -> None:
    """A one-line ``DamageError`` unless ``file`` is what its record says.

    A local file that passed is not read again while it stays the same file, unchanged (same
    inode, size, modification and change times), so queries after the first cost a stat each."""
    if file.digest is None:
        return
    if is_object(file.path):
        data = read_many([file.path])[0]
        if isinstance(data, Exception):
            raise _unreadable(file.path, data)
        _check_bytes(out, file, data)
        return
    from saldata.storage.commits import digest_file

    try:
        stat = os.stat(file.path)
        seen = (str(file.path), stat.st_dev, stat.st_ino, stat.st_size, stat.st_mtime_ns, stat.st_ctime_ns)
        if _PASSED.get(seen) == file.digest:
            return
        same = stat.st_size == file.digest.size and digest_file(file.path) == file.digest
    except OSError as exc:
        raise _unreadable(file.path, exc) from None
    if not same:
        raise _changed(out, file)
    _PASSED[seen] = file.digest


_PASSED: dict[tuple, FileDigest] = {}  # local files that matched their record, as they were then


def _unreadable(path: Path, exc: BaseException) -> DamageError:
    """The one line for a committed catalog file that cannot be read, the same on a disk and an object store."""
    if isinstance(exc, FileNotFoundError):
        return DamageError(f"{path} is missing although its shard is committed; run saldata verify on the output.")
    return DamageError(
        f"{path} cannot be read ({type(exc).__name__}: {first_line(exc)}); "
        "run saldata verify on the output, then rerun the extraction to redo the damaged shard."
    )


def _check_bytes(out: Path, file: CommittedFile, data: bytes) -> None:
    if file.digest is None:
        return
    import google_crc32c  # zarr's own dependency, as in commits.digest_file

    if len(data) != file.digest.size or google_crc32c.Checksum(data).hexdigest().decode() != file.digest.crc32c:
        raise _changed(out, file)


def _changed(out: Path, file: CommittedFile) -> DamageError:
    from saldata.storage.commits import record_path

    record = record_path(out, file.shard).relative_to(as_out(out))
    return DamageError(
        f"{file.path} does not match its commit record ({record}): it changed after its shard was committed; "
        "run saldata verify on the output, then rerun the extraction to redo the damaged shard."
    )


def _table_files(out: Path, name: str) -> list[CommittedFile]:
    """A table's files of committed shards, in shard order, with their recorded digests."""
    table = TABLES[name]
    return [
        CommittedFile(shard_file(out, table, s), s, named.get(shard_relpath(table, s)) if named is not None else None)
        for s, named in sorted(_committed(out).items())
        if _has_file(out, table, s, named)
    ]


def _committed(out: Path) -> dict[int, dict[str, FileDigest] | None]:
    """Committed shards, each with the files (relative to OUT) its record names and their digests; None without records."""
    from saldata.storage.commits import commits_dir, read_commit_log

    if commits_dir(out).is_dir():
        committed = read_commit_log(out).committed
        return {s: {rel: digest for rel, digest in r.files.items() if digest is not None} for s, r in committed.items()}
    return dict.fromkeys(_legacy_committed(out))


def _has_file(out: Path, table: TableSpec, shard: int, named: dict | None) -> bool:
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
