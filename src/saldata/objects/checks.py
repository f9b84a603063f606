"""What ``saldata verify`` checks of the object tables: every file against ``commits/objects.json``,
and their rows against the record, each other and the committed images."""

from __future__ import annotations

import pyarrow as pa
import pyarrow.parquet as pq

from saldata.errors import DamageError
from saldata.schemas.catalog import OBJECT_TABLES
from saldata.storage.commits import digest_file
from saldata.storage.location import as_out


def object_problems(out, committed_idx: set[int], quick: bool = False) -> list[str]:
    """Each thing wrong with the object tables, in words; [] when intact or never added."""
    from saldata.objects.table import read_objects_record

    out = as_out(out)
    try:
        record = read_objects_record(out)
    except DamageError as exc:
        return [str(exc)]
    if record is None:
        return []
    problems = []
    for rel, want in sorted(record.files.items()):
        path = out / rel
        if not path.is_file():
            problems.append(f"{rel}: missing")
        elif path.stat().st_size != want.size:
            problems.append(f"{rel}: {path.stat().st_size} bytes, committed with {want.size}")
        elif not quick and digest_file(path) != want:
            problems.append(f"{rel}: checksum differs from the committed one (the file was changed)")
    if quick or problems:
        return problems
    keys = {}
    for name in OBJECT_TABLES:
        rows = []
        for rel in record.files_of(name):
            table = pq.read_table(pa.BufferReader((out / rel).read_bytes()))
            if table.num_rows != record.rows.get(rel):
                problems.append(f"{rel}: {table.num_rows} rows, committed with {record.rows.get(rel)}")
            rows += zip(*(table.column(c).to_pylist() for c in ("idx", "object_id", "source")))
        keys[name] = rows
    if sorted(keys["objects"]) != sorted(keys["object_masks"]):
        problems.append("objects and object_masks do not hold the same objects")
    strays = sorted({idx for idx, *_ in keys["objects"]} - committed_idx)
    if strays:
        problems.append(f"objects: rows of images no committed shard holds (idx {', '.join(map(str, strays[:5]))})")
    return problems
