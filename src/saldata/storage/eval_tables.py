"""Where ``saldata evaluate``'s tables live, and what each says of how it was made.

``OUT/eval/<table>.parquet`` holds the default run's tables, ``OUT/eval/<run>/<table>.parquet`` a
run named with ``--name``; ``<table>`` is one of ``schemas/evaluation.EVALUATION_TABLES``. Each
file's schema metadata records the settings it was made with (``saldata.evaluation``, JSON) and
its layout's version (``saldata.<table>_version``). The files are written whole
(``write_atomic``), so one that exists is complete.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from saldata.errors import first_line
from saldata.schemas.evaluation import EVAL_DIRNAME, EVALUATION_TABLES, SETTINGS_KEY
from saldata.storage.location import as_out


@dataclass(frozen=True, slots=True)
class EvalTable:
    """One evaluation table found in an output."""

    run: str | None  # None: the default run (OUT/eval/); else the run's --name
    table: str  # a name of EVALUATION_TABLES
    path: Path


@dataclass(frozen=True, slots=True)
class TableRecord:
    """What a table's file says of itself: rows, layout version and settings; ``error`` when unreadable."""

    rows: int | None = None
    version: str | None = None
    settings: dict | None = None  # None: the file records none (written before they were recorded)
    error: str | None = None


def eval_dir(out: Path, run: str | None = None) -> Path:
    """``OUT/eval``, or ``OUT/eval/<run>`` for a named run."""
    folder = as_out(out) / EVAL_DIRNAME
    return folder if run is None else folder / run


def table_path(out: Path, table: str, run: str | None = None) -> Path:
    return eval_dir(out, run) / f"{table}.parquet"


def find_eval_tables(out: Path) -> list[EvalTable]:
    """Every evaluation table of ``out``: the default run's first, then each named run's, by name."""
    root = eval_dir(out)
    if not root.is_dir():
        return []
    found = [EvalTable(None, t, table_path(out, t)) for t in EVALUATION_TABLES if table_path(out, t).is_file()]
    for folder in sorted(p for p in root.iterdir() if p.is_dir()):
        found += [
            EvalTable(folder.name, t, table_path(out, t, folder.name))
            for t in EVALUATION_TABLES
            if table_path(out, t, folder.name).is_file()
        ]
    return found


def read_record(path: Path) -> TableRecord:
    """A table's rows, version and settings from its Parquet footer alone (no row is read)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        with path.open("rb") as f:
            meta = pq.read_metadata(f)
    except (OSError, pa.ArrowException) as exc:
        return TableRecord(error=f"{path} cannot be read ({type(exc).__name__}: {first_line(exc)})")
    fields = {k.decode(): v.decode() for k, v in (meta.metadata or {}).items()}
    table = fields.get("saldata.table", path.stem)
    try:
        settings = json.loads(fields[SETTINGS_KEY]) if SETTINGS_KEY in fields else None
    except ValueError:
        settings = None
    return TableRecord(meta.num_rows, fields.get(f"saldata.{table}_version"), settings)
