"""The ``objects`` and ``object_masks`` tables: committed whole, by one record, ``OUT/commits/objects.json``.

They are derived from the whole output after the extraction, so they belong to no shard. The
project's commit idea holds all the same: each file is written whole (aside, then renamed; on
an object store, one PUT) under a name of its own, ``catalog/<table>/<source>-<crc32c>.parquet``,
so no committed file is ever overwritten; then the record naming every file with its size and
CRC-32C is written (atomically): it is the switch; then the files it no longer names are
removed. A kill before the switch leaves the old record, still true; after it, the new one. A
file left over by a kill is named by no record: saldata's readers never read it, ``saldata
verify`` lists it as stray, and the next ``saldata objects`` (or a resumed extraction) removes it.

Each source has its own files: a run replaces the files of the sources it is given and keeps
the others, so ``--coco`` and ``--visual-genome`` may come together or in successive runs. The
same inputs give the same bytes, hence the same names: a rerun changes nothing.

Readers (``read_object_table``) read exactly the files the record names, each checked against
it first: a file changed, deleted or renamed after its commit is one ``DamageError`` line.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from saldata.errors import DamageError, first_line
from saldata.schemas.catalog import CATALOG_DIRNAME, OBJECT_MASKS, OBJECT_TABLES, OBJECTS
from saldata.storage.commits import (
    FileDigest,
    commits_dir,
    digest_bytes,
    digest_file,
    record_fields,
    record_json,
    write_atomic,
)
from saldata.storage.location import as_out, is_object, read_many, remove_tree

RECORD_FILE = "objects.json"
RECORD_VERSION = 1


@dataclass(frozen=True, slots=True)
class ObjectsRecord:
    """Every committed file of the object tables (relative to OUT) with its digest and its rows, and
    what each source's run placed and rejected (``join.SourceResult``, less its rows)."""

    files: dict[str, FileDigest]
    rows: dict[str, int]
    sources: dict[str, dict]
    version: int = RECORD_VERSION

    def to_json(self) -> str:
        return record_json(self)

    @classmethod
    def from_json(cls, text: str) -> ObjectsRecord:
        return cls(**record_fields(text, RECORD_VERSION))

    def files_of(self, table: str) -> list[str]:
        return sorted(rel for rel in self.files if rel.startswith(f"{CATALOG_DIRNAME}/{table}/"))

    def rows_of(self, table: str) -> int:
        """The committed rows of ``table`` (``objects`` or ``object_masks``), every source's."""
        return sum(self.rows.get(rel, 0) for rel in self.files_of(table))


def objects_record_path(out) -> Path:
    return commits_dir(out) / RECORD_FILE


def read_objects_record(out) -> ObjectsRecord | None:
    """The output's objects record; None where ``saldata objects`` never ran. One line when it cannot be trusted."""
    path = objects_record_path(out)
    try:
        return ObjectsRecord.from_json(path.read_text())
    except FileNotFoundError:
        return None
    except (OSError, ValueError, TypeError, KeyError, AttributeError) as exc:
        raise DamageError(
            f"{path} is unreadable ({type(exc).__name__}: {first_line(exc)}); rerun saldata objects to rebuild "
            "the objects table."
        ) from None


def commit_sources(out, results: list, inputs: dict[str, list[str]], before_switch=None) -> ObjectsRecord:
    """Replace the object tables' files of each result's source; keep the other sources'. Call under the lock."""
    out = as_out(out)
    old = read_objects_record(out) or ObjectsRecord({}, {}, {})
    given = {result.source for result in results}
    files = {rel: d for rel, d in old.files.items() if _source_of(rel) not in given}
    rows = {rel: n for rel, n in old.rows.items() if rel in files}
    sources = {s: summary for s, summary in old.sources.items() if s not in given}
    for result in results:
        masks = [{**_key(row), "rle": rle} for row, rle in zip(result.rows, result.rles)]
        for table, table_rows in ((OBJECTS, result.rows), (OBJECT_MASKS, masks)):
            data = _parquet_bytes(table_rows, table)
            digest = digest_bytes(data)
            rel = f"{CATALOG_DIRNAME}/{table.name}/{result.source}-{digest.crc32c}.parquet"
            write_atomic(out / rel, data)  # a name no committed file has, unless it is these very bytes
            files[rel], rows[rel] = digest, len(table_rows)
        sources[result.source] = {
            "inputs": inputs[result.source],
            "placed": len(result.rows),
            "not_in_output": result.not_in_output,
            "n_rejected": result.n_rejected,
            "rejected": result.rejected,
        }
    record = ObjectsRecord(files, rows, dict(sorted(sources.items())))
    if before_switch:
        before_switch()  # the output lock still ours, right before the switch
    write_atomic(objects_record_path(out), record.to_json().encode())
    for rel in unnamed_files(out, record):
        remove_tree(out / rel)
    return record


def unnamed_files(out, record: ObjectsRecord | None) -> list[str]:
    """Files in the object tables' folders that the record does not name (left by a killed run)."""
    out = as_out(out)
    named = set(record.files) if record else set()
    found = []
    for name in OBJECT_TABLES:
        folder = out / CATALOG_DIRNAME / name
        found += [str(p.relative_to(out)) for p in folder.glob("*")] if folder.is_dir() else []
    return sorted(rel for rel in found if rel not in named)


def read_object_table(out, name: str) -> pa.Table:
    """The committed rows of ``objects`` or ``object_masks`` (none: an empty table with the schema),
    each file checked against the record before it is parsed."""
    out, table = as_out(out), OBJECT_TABLES[name]
    record = read_objects_record(out)
    rels = record.files_of(name) if record else []
    if not rels:
        return table.schema.empty_table()
    parts = []
    for rel, data in zip(rels, read_many([out / rel for rel in rels])):
        _check(out / rel, data, record.files[rel])
        parts.append(pq.read_table(pa.BufferReader(data), schema=table.schema))
    return pa.concat_tables(parts)


def checked_object_files(out, name: str) -> list[Path]:
    """The local files of a table the record names, each checked against it (for DuckDB's views)."""
    out = as_out(out)
    record = read_objects_record(out)
    rels = record.files_of(name) if record else []
    for rel in rels:
        path = out / rel
        try:
            found = digest_file(path) if not is_object(path) else digest_bytes(path.read_bytes())
        except OSError as exc:
            found = exc
        _check(path, found, record.files[rel], digested=True)
    return [out / rel for rel in rels]


def _check(path, data, want: FileDigest, digested: bool = False) -> None:
    if isinstance(data, FileNotFoundError):
        raise DamageError(f"{path} is missing although {objects_record_path(_out_of(path))} names it; {_ADVICE}")
    if isinstance(data, Exception):
        raise DamageError(f"{path} cannot be read ({type(data).__name__}: {first_line(data)}); {_ADVICE}")
    if (data if digested else digest_bytes(data)) != want:
        raise DamageError(
            f"{path} does not match its record ({objects_record_path(_out_of(path))}): it changed after saldata "
            f"objects committed it; {_ADVICE}"
        )


_ADVICE = "run saldata verify on the output, then rerun saldata objects to rebuild the objects table."


def _out_of(path):
    return path.parents[2]  # OUT/catalog/<table>/<file>


def _source_of(rel: str) -> str:
    return rel.rsplit("/", 1)[1].rsplit("-", 1)[0]


def _key(row: dict) -> dict:
    return {"idx": row["idx"], "object_id": row["object_id"], "source": row["source"]}


def _parquet_bytes(rows: list[dict], table) -> bytes:
    sink = pa.BufferOutputStream()
    pq.write_table(pa.Table.from_pylist(rows, schema=table.schema), sink, compression="zstd")
    return sink.getvalue().to_pybytes()
