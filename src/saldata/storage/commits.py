"""Commit records: the one protocol by which a shard becomes part of an output.

A worker writes every file of a shard (its Zarr shard files, its catalog Parquet files) into
``OUT/staging/shard-NNNNN-<run>/``, mirroring where each file belongs, and computes each file's
size and CRC-32C. Only the driver commits, so a worker whose driver is gone can never commit:

1. write ``OUT/commits/shard-NNNNN.json`` with ``pending`` set (write aside, fsync, rename):
   from this instant the shard IS the new files, whatever happens next;
2. move each staged file over its final path (``os.replace``), delete final files the record
   says are absent (an all-fill Zarr shard is never written);
3. rewrite the record without ``pending`` and remove the staging folder.

A kill between 1 and 3 leaves a pending record; the next ``extract`` (under the output lock)
rolls it forward by redoing steps 2-3, which are idempotent. Readers believe only records
without ``pending``: a shard is either its old committed files or its new ones, never a mix.
Catalog files enter ``catalog/`` only in step 2, and after the shard's Zarr files
(``in_commit_order``), so plain Parquet readers never see a shard that is not committed, nor
rows whose arrays are not yet in place.

On an object store (``storage/location.py``) there is no rename, but a PUT is atomic. The
shard's record is still written last, and once (``_commit_objects``):

1. PUT ``commits/shard-NNNNN.pending.json``, the record with ``pending`` set: the same switch as
   step 1 above (from here the shard IS the staged objects, which stay until step 4);
2. delete the shard's old record, if any (a redone or retried shard), copy each staged object
   over its final key (a server-side copy, Zarr files first and catalog files last), delete
   the keys the record says are absent;
3. PUT ``commits/shard-NNNNN.json``, the record without ``pending``;
4. delete the pending marker, then the staged objects.

A kill anywhere leaves the marker (or the finished record): the next ``extract`` rolls the
marker forward by redoing 2-4 from the staged objects, so a redone shard's committed rows are
never dropped and rebuilt. A shard with a marker is pending, not committed, for every reader.

The store's metadata files belong to no shard; ``commits/store.json`` records them
(``storage/store_record.py``).
"""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import asdict, dataclass, field
from pathlib import Path

from saldata.schemas.catalog import CATALOG_DIRNAME
from saldata.storage.location import as_out, copy_file, is_object, read_many, remove_tree

COMMITS_DIRNAME = "commits"
STAGING_DIRNAME = "staging"
RECORD_VERSION = 1
_BLOCK = 8 << 20


@dataclass(frozen=True, slots=True)
class FileDigest:
    size: int
    crc32c: str


@dataclass(frozen=True, slots=True)
class CommitRecord:
    """What one committed shard is made of.

    ``files`` maps each path (relative to OUT) the shard owns to its digest, or to None where the
    file must not exist (a Zarr shard whose chunks are all fill values is never written).
    ``sources`` fingerprints the shard's images (idx, path, size, mtime_ns, blake2b) so a resume
    can refuse changed inputs.
    """

    shard: int
    start: int
    stop: int
    run_id: str
    config_digest: str
    files: dict[str, FileDigest | None]
    sources: list[dict]
    counts: dict[str, int] = field(default_factory=dict)
    pending: str | None = None  # staging folder (relative to OUT) still to be moved into place
    version: int = RECORD_VERSION

    def to_json(self) -> str:
        return record_json(self)

    @classmethod
    def from_json(cls, text: str) -> CommitRecord:
        return cls(**record_fields(text))


def record_json(record) -> str:
    """A record (a dataclass naming files with their digests) as the JSON every record file holds."""
    return json.dumps(asdict(record), indent=1, sort_keys=True)


def record_fields(text: str, newest: int | None = None) -> dict:
    """A record's fields from ``record_json``'s text, its ``files`` as ``FileDigest`` (None where absent).

    ``newest``: the newest record version this saldata reads; a newer one is refused."""
    data = json.loads(text)
    if newest is not None and data.get("version", 0) > newest:
        raise ValueError(f"record version {data['version']} is newer than this saldata's; upgrade saldata")
    data["files"] = {k: FileDigest(**v) if v is not None else None for k, v in data["files"].items()}
    return data


def commits_dir(out: Path) -> Path:
    return as_out(out) / COMMITS_DIRNAME


def record_path(out: Path, shard: int) -> Path:
    return commits_dir(out) / f"shard-{shard:05d}.json"


PENDING_SUFFIX = ".pending.json"


def pending_marker_path(out: Path, shard: int) -> Path:
    """An object store's pending record (step 1 of ``_commit_objects``), beside the shard's record."""
    return commits_dir(out) / f"shard-{shard:05d}{PENDING_SUFFIX}"


def staging_root(out: Path) -> Path:
    return as_out(out) / STAGING_DIRNAME


def staging_dir(out: Path, shard: int, run_id: str) -> Path:
    return staging_root(out) / f"shard-{shard:05d}-{run_id}"


def digest_bytes(data: bytes) -> FileDigest:
    import google_crc32c  # zarr's own dependency, for its crc32c codec

    return FileDigest(len(data), google_crc32c.Checksum(data).hexdigest().decode())


def digest_file(path: Path, sync: bool = False) -> FileDigest:
    """Size and CRC-32C; ``sync`` also flushes the file to disk (before a record may name it)."""
    import google_crc32c  # zarr's own dependency, for its crc32c codec

    if is_object(path):  # one GET: what the store holds is what gets digested
        return digest_bytes(path.read_bytes())
    checksum = google_crc32c.Checksum()
    size = 0
    with open(path, "rb") as f:
        while block := f.read(_BLOCK):
            checksum.update(block)
            size += len(block)
        if sync:
            os.fsync(f.fileno())
    return FileDigest(size, checksum.hexdigest().decode())


def digest_staged(staging: Path, wanted: list[str]) -> dict[str, FileDigest | None]:
    """Digest of each relative path staged under ``staging``; None for those not written."""
    return {rel: digest_file(staging / rel, sync=True) if (staging / rel).is_file() else None for rel in wanted}


# -- reading ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class CommitLog:
    """Every record of an output: committed ones, pending ones, and record files that cannot be read."""

    committed: dict[int, CommitRecord]
    pending: dict[int, CommitRecord]
    unreadable: dict[int, str]  # shard -> why its record file cannot be trusted


def read_commit_log(out: Path) -> CommitLog:
    committed, pending, unreadable = {}, {}, {}
    folder = commits_dir(out)
    paths = []
    for path in sorted(folder.glob("shard-*.json")) if folder.is_dir() else []:
        marker = path.name.endswith(PENDING_SUFFIX)
        try:
            paths.append((int(path.name.removesuffix(PENDING_SUFFIX if marker else ".json")[6:]), marker, path))
        except ValueError:
            continue
    for (shard, marker, path), data in zip(paths, read_many([path for *_, path in paths])):
        try:
            if isinstance(data, FileNotFoundError) and is_object(path):
                continue  # deleted since the listing (a commit finishing now): absent, not damaged
            if isinstance(data, Exception):
                raise data
            record = CommitRecord.from_json(data.decode())
            if record.shard != shard:
                raise ValueError(f"it names shard {record.shard}")
            if marker and not record.pending:
                raise ValueError("a pending marker without its staging folder")
        except (OSError, ValueError, TypeError, KeyError, AttributeError) as exc:
            unreadable[shard] = f"commit record {path} is unreadable ({type(exc).__name__}: {exc})"
            continue
        (pending if record.pending else committed)[shard] = record
    for shard in pending:  # a marker outranks the record it is replacing
        committed.pop(shard, None)
    return CommitLog(committed, pending, unreadable)


# -- writing ---------------------------------------------------------------------------------


ASIDE_SUFFIX = ".tmp"


def aside_path(path: Path) -> Path:
    """Where ``path`` is written before its rename: hidden, and named for the writing process."""
    return path.with_name(f".{path.name}.{os.getpid()}{ASIDE_SUFFIX}")


def is_aside(name: str) -> bool:
    """Whether a file name is one ``aside_path`` makes (found later only where a writer was killed)."""
    return name.startswith(".") and name.endswith(ASIDE_SUFFIX)


def write_atomic(path: Path, data: bytes) -> None:
    """Write aside, fsync, rename, fsync the folder: the file is either old or new, never partial.

    An object is written by one PUT, which is atomic by itself."""
    if is_object(path):
        path.write_bytes(data)
        return
    from saldata.faults import fault_point

    path.parent.mkdir(parents=True, exist_ok=True)
    aside = aside_path(path)
    try:
        with open(aside, "wb") as f:
            fault_point("write-file", path.name)
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(aside, path)
    except BaseException as exc:
        aside.unlink(missing_ok=True)
        if isinstance(exc, OSError) and exc.filename is None:  # a failed write or fsync names no file: say which
            exc.filename = str(path)
        raise
    fsync_dir(path.parent)


def fsync_dir(folder: Path) -> None:
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def commit(out: Path, record: CommitRecord, before_switch=None) -> None:
    """Make ``record`` (whose files sit in ``record.pending``) the shard's truth, then move them in.

    ``before_switch`` runs just before the switch (the output lock's ownership check).
    """
    if is_object(out):
        _commit_objects(out, record, before_switch)
        return
    if before_switch:
        before_switch()
    write_atomic(record_path(out, record.shard), record.to_json().encode())
    roll_forward(out, record)


def _commit_objects(out, record: CommitRecord, before_switch=None) -> None:
    """The object-store protocol (module docstring): marker, files in, record last and once, clean-up."""
    if before_switch:
        before_switch()
    pending_marker_path(out, record.shard).write_bytes(record.to_json().encode())
    _roll_forward_objects(out, record, before_switch)


def _roll_forward_objects(out, record: CommitRecord, before_switch=None) -> None:
    """Steps 2-4 of the object-store protocol; safe to repeat from its marker after a kill inside them."""
    from saldata.faults import fault_point

    record_path(out, record.shard).unlink(missing_ok=True)
    staged = out / record.pending
    for moved, (rel, digest) in enumerate(in_commit_order(record.files)):
        if digest is None:
            (out / rel).unlink(missing_ok=True)
        else:
            copy_file(staged / rel, out / rel)
        fault_point("commit-move", moved)
    if before_switch:
        before_switch()  # the record is what readers believe: checked again right before it
    done = CommitRecord(**{**_fields(record), "pending": None})
    record_path(out, record.shard).write_bytes(done.to_json().encode())
    pending_marker_path(out, record.shard).unlink(missing_ok=True)
    remove_tree(staged)


def in_commit_order(files: dict[str, FileDigest | None]) -> list[tuple[str, FileDigest | None]]:
    """A shard's files in the order a commit moves them: Zarr files first, catalog files last, so
    plain Parquet readers, which know no records, see a shard's rows only once its arrays are in place."""
    return sorted(files.items(), key=lambda item: (item[0].startswith(f"{CATALOG_DIRNAME}/"), item[0]))


def roll_forward(out: Path, record: CommitRecord) -> None:
    """Steps 2-3 of the protocol; safe to repeat after a kill at any point inside them."""
    from saldata.faults import fault_point

    out = as_out(out)
    staged = out / record.pending if record.pending else None
    for moved, (rel, digest) in enumerate(in_commit_order(record.files)):
        final = out / rel
        if digest is None:
            final.unlink(missing_ok=True)
        elif staged is not None and (staged / rel).is_file():
            final.parent.mkdir(parents=True, exist_ok=True)
            os.replace(staged / rel, final)
        fault_point("commit-move", moved)
    done = CommitRecord(**{**_fields(record), "pending": None})
    write_atomic(record_path(out, record.shard), done.to_json().encode())
    if staged is not None:
        shutil.rmtree(staged, ignore_errors=True)


def finish_pending(out: Path) -> list[int]:
    """Roll every pending record forward (call only while holding the output lock)."""
    log = read_commit_log(out)
    for record in log.pending.values():
        if is_object(out):
            _roll_forward_objects(as_out(out), record)
        else:
            roll_forward(out, record)
    return sorted(log.pending)


def sweep_staging(out: Path, keep: set[str] = frozenset()) -> None:
    """Remove staged files no record points to (a worker killed before its shard's commit)."""
    out = as_out(out)
    root = staging_root(out)
    for folder in root.iterdir() if root.is_dir() else []:
        if str(folder.relative_to(out)) not in keep:
            remove_tree(folder)


def _fields(record: CommitRecord) -> dict:
    return {name: getattr(record, name) for name in CommitRecord.__slots__}
