"""Where ``saldata evaluate``'s tables live, and what each says of how it was made.

``OUT/eval/<table>.parquet`` holds the default run's tables, ``OUT/eval/<run>/<table>.parquet`` a
run named with ``--name``; ``<table>`` is one of ``schemas/evaluation.EVALUATION_TABLES``. Each
file's schema metadata records the settings it was made with (``saldata.evaluation``, JSON) and
its layout's version (``saldata.<table>_version``). The files are written whole
(``write_atomic``), so one that exists is complete.

A table is replaced only by a run with the same settings (``check_replace``): results made
otherwise are never lost to a rerun unless the user says so (``--overwrite``), or kept beside
it under another name (``--name``).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path

from saldata.errors import ConfigError, first_line
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


# A run's name is a folder under OUT/eval and, in catalog query, the SQL schema eval_<name>: a plain
# lower-case token (DuckDB folds identifiers' case, so Blur8 and blur8 would be one schema).
RUN_NAME = re.compile(r"[a-z][a-z0-9_]{0,63}")
PROVENANCE = ("saldata_version",)  # recorded with the settings, but who scored is not how


def check_run_name(name: str | None) -> str | None:
    """``name`` when it may name a run (None: the default run); a one-line ConfigError otherwise."""
    if name is not None and not RUN_NAME.fullmatch(name):
        raise ConfigError(
            f"--name {name!r} is not a plain name: use up to 64 lower-case letters, digits and _, starting with a "
            "letter (e.g. blur8); it names the folder OUT/eval/NAME and the SQL schema eval_NAME."
        )
    return name


def sql_schema(run: str | None) -> str:
    """The DuckDB schema of a run's tables in ``catalog query``: ``eval``, or ``eval_<name>``."""
    return EVAL_DIRNAME if run is None else f"{EVAL_DIRNAME}_{run}"


def check_replace(path: Path, settings: dict, overwrite: bool = False) -> None:
    """Refuse, in one line, to replace the table at ``path`` by one made with other ``settings``.

    The same settings (saldata's version aside) may replace it: a rerun of the same command. A
    table that records no settings, or cannot be read, is never replaced unasked either."""
    if overwrite or not path.is_file():
        return
    record = read_record(path)
    advice = "pass --name NAME to write the new results beside it, or --overwrite to replace it."
    if record.error:
        raise ConfigError(f"{record.error}; {advice}")
    if record.settings is None:
        raise ConfigError(f"{path} records no settings (written by an older saldata); {advice}")
    differ = settings_differences(record.settings, settings)
    if differ:
        raise ConfigError(f"{path} was made with other settings ({'; '.join(differ)}); {advice}")


def settings_differences(old: dict, new: dict) -> list[str]:
    """'KEY OLD there, NEW now' for each setting both records hold that differs (provenance aside)."""
    keys = sorted((old.keys() & new.keys()) - set(PROVENANCE))
    return [f"{k} {json.dumps(old[k])} there, {json.dumps(new[k])} now" for k in keys if old[k] != new[k]]


def eval_dir(out: Path, run: str | None = None) -> Path:
    """``OUT/eval``, or ``OUT/eval/<run>`` for a named run."""
    folder = as_out(out) / EVAL_DIRNAME
    return folder if run is None else folder / run


def table_path(out: Path, table: str, run: str | None = None) -> Path:
    return eval_dir(out, run) / f"{table}.parquet"


def write_eval_table(out: Path, table, run: str | None = None) -> Path:
    """Write ``table`` (an Arrow table whose schema metadata names it: ``saldata.table``) as its run's file,
    replaced whole (``write_atomic``): a rerun never leaves half a file."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from saldata.storage.commits import write_atomic

    target = table_path(out, table.schema.metadata[b"saldata.table"].decode(), run)
    sink = pa.BufferOutputStream()
    pq.write_table(table, sink)
    write_atomic(target, sink.getvalue().to_pybytes())
    return target


def find_eval_tables(out: Path) -> list[EvalTable]:
    """Every evaluation table of ``out``: the default run's first, then each named run's, by name."""
    root = eval_dir(out)
    if not root.is_dir():
        return []
    found = [EvalTable(None, t, table_path(out, t)) for t in EVALUATION_TABLES if table_path(out, t).is_file()]
    for folder in sorted(p for p in root.iterdir() if p.is_dir() and RUN_NAME.fullmatch(p.name)):
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
    return table_record(meta.metadata, meta.num_rows, path.stem)


def table_record(metadata: dict | None, rows: int, name: str) -> TableRecord:
    """What a table's Parquet schema ``metadata`` (bytes keys and values) says of it; ``name``: its table,
    where the metadata names none. Settings that are not JSON read as none recorded."""
    fields = {k.decode(): v.decode() for k, v in (metadata or {}).items()}
    table = fields.get("saldata.table", name)
    try:
        settings = json.loads(fields[SETTINGS_KEY]) if SETTINGS_KEY in fields else None
    except ValueError:
        settings = None
    return TableRecord(rows, fields.get(f"saldata.{table}_version"), settings)
