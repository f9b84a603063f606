"""The store record: every metadata file of the store as saldata wrote it, so no edit of one goes unseen.

Zarr reads a store through its metadata: the root ``zarr.json`` (the root attributes, such as
``layers``, and the consolidated copy of every array's metadata) and each array's ``zarr.json``
(shape, chunks, the codec chain with its transpose order). No shard record names these files, as
they belong to no shard; yet an edit of one makes every reader serve rearranged or mislabelled
maps while every chunk still passes its own checksum. ``OUT/commits/store.json`` names each of
them with its size and CRC-32C, and keeps its text (tens of KB). It is written with the store,
before the store takes its place (so a store in place always has it), and rewritten by whatever
changes metadata later (nothing, today: the store's metadata is final at creation).

``metadata_problems`` compares every file with the record (``saldata verify``, a resume,
``saldata.open``; the files are small, so always, in full). ``restore_metadata`` writes a changed
or missing file back from the record's text: a resume repairs an edit instead of taking it for
other settings. That is safe because the record checks itself: a text that does not match its
own recorded checksum makes the whole record unreadable, so a damaged record is refused, never
used to rewrite anything.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from saldata.errors import DamageError, first_line
from saldata.schemas.store import STORE_DIRNAME, STORE_SCHEMA_VERSION
from saldata.storage.commits import FileDigest, commits_dir, digest_bytes, record_fields, record_json, write_atomic
from saldata.storage.location import as_out, check_reachable, read_many
from saldata.storage.zarr_store import metadata_relpaths, store_in_place, store_schema_version

STORE_RECORD_FILE = "store.json"
STORE_RECORD_VERSION = 1
RECORDED_SINCE = 6  # the store schema_version from which an output has a store record


@dataclass(frozen=True, slots=True)
class StoreRecord:
    """Each metadata file (path relative to OUT) with its digest and its text."""

    files: dict[str, FileDigest]
    texts: dict[str, str]
    version: int = STORE_RECORD_VERSION

    def to_json(self) -> str:
        return record_json(self)

    @classmethod
    def from_json(cls, text: str) -> StoreRecord:
        record = cls(**record_fields(text, STORE_RECORD_VERSION))
        if set(record.texts) != set(record.files):
            raise ValueError("it names other files than it keeps")
        for rel, text in record.texts.items():
            if digest_bytes(text.encode()) != record.files[rel]:
                raise ValueError(f"its copy of {rel} does not match its own checksum")
        return record

    def attributes(self) -> dict:
        """The root attributes the store was created with."""
        return json.loads(self.texts[f"{STORE_DIRNAME}/zarr.json"]).get("attributes", {})


def store_record_path(out: Path) -> Path:
    return commits_dir(out) / STORE_RECORD_FILE


def write_store_record(out: Path, store: Path) -> None:
    """Record the metadata of ``store`` (the new store, before it takes its place under OUT)."""
    rels = metadata_relpaths()
    found = read_many([store / rel for rel in rels])
    files, texts = {}, {}
    for rel, data in zip(rels, found):
        if isinstance(data, Exception):
            raise data
        files[f"{STORE_DIRNAME}/{rel}"] = digest_bytes(data)
        texts[f"{STORE_DIRNAME}/{rel}"] = data.decode()
    write_atomic(store_record_path(out), StoreRecord(files, texts).to_json().encode())


def read_store_record(out: Path) -> StoreRecord | None:
    """The output's store record; None where it has none. Raises one line when it cannot be trusted."""
    path = store_record_path(out)
    try:
        return StoreRecord.from_json(path.read_text())
    except FileNotFoundError:
        return None
    except (OSError, ValueError, TypeError, KeyError, AttributeError) as exc:
        raise DamageError(
            f"{path} is unreadable ({type(exc).__name__}: {first_line(exc)}), so the store's metadata cannot be "
            "checked; restore it, or re-extract with --overwrite."
        ) from None


def metadata_problems(out: Path) -> list[str]:
    """Each metadata file that differs from the store record, named; [] when all match, when no store
    is in place, or for an output older than the record (``RECORDED_SINCE``)."""
    return _compare(as_out(out))[0]


def check_metadata(out: Path) -> None:
    """Raise one line naming the first metadata file that differs from the store record."""
    out = as_out(out)
    problems, record = _compare(out)
    if not problems:
        return
    if record is None:
        raise DamageError(f"{problems[0]}; restore it, or re-extract with --overwrite.")
    more = f" (and {len(problems) - 1} more metadata files)" if len(problems) > 1 else ""
    raise DamageError(
        f"{problems[0]}{more}, so its arrays would be read wrongly; rerun the same saldata extract command to "
        f"restore it as {store_record_path(out)} records it (or re-extract with --overwrite)."
    )


def _compare(out) -> tuple[list[str], StoreRecord | None]:
    check_reachable(out)
    if not store_in_place(out):
        return [], None
    record = read_store_record(out)
    if record is None:
        version = store_schema_version(out)
        if version is not None and not RECORDED_SINCE <= version <= STORE_SCHEMA_VERSION:
            return [], None  # older: nothing was recorded; newer: saldata.open says to upgrade
        return [f"{store_record_path(out)} is missing, so the store's metadata cannot be checked"], None
    rels = sorted(record.files)
    problems = []
    for rel, data in zip(rels, read_many([out / rel for rel in rels])):
        want, path = record.files[rel], out / rel
        if isinstance(data, FileNotFoundError):
            problems.append(f"{path} is missing")
        elif isinstance(data, Exception):
            problems.append(f"{path} cannot be read ({first_line(data)})")
        elif len(data) != want.size:
            problems.append(f"{path} was changed after the store was created ({len(data)} bytes, {want.size} recorded)")
        elif digest_bytes(data) != want:
            problems.append(
                f"{path} was changed after the store was created (its checksum differs from the recorded one)"
            )
    return problems, record


def restore_metadata(out: Path) -> list[str]:
    """Write every metadata file that differs from the store record back from its text (call only under
    the output lock); the paths restored, relative to OUT."""
    out = as_out(out)
    if not store_in_place(out) or (record := read_store_record(out)) is None:
        return []
    rels = sorted(record.files)
    restored = []
    for rel, data in zip(rels, read_many([out / rel for rel in rels])):
        text = record.texts[rel].encode()
        if data != text:
            write_atomic(out / rel, text)
            restored.append(rel)
    return restored
