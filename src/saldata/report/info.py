"""What an output is, in one place: ``saldata info OUT`` prints it, the HTML report's overview shows it.

``describe`` reads the store's root attributes (``schemas/store.ROOT_ATTRIBUTES``), the committed
catalog (counts from ``pipelines/status.output_status``, the same as ``saldata status``), the
evaluation tables' own metadata and the sizes of the files; it writes nothing, and gives a dict of
plain values, so ``--format json`` is that dict.
"""

from __future__ import annotations

import contextlib
import re
from collections import Counter
from pathlib import Path

from saldata.readers.output import Output
from saldata.schemas.catalog import CATALOG_DIRNAME, OBJECTS
from saldata.schemas.store import STORE_DIRNAME

# A model fetched from the Hub lives at .../models--ORG--NAME/snapshots/<commit>: that commit is its revision.
HUB_SNAPSHOT = re.compile(r"/models--[^/]+/snapshots/([0-9a-f]{40})(?:/|$)")


def describe(output: Output | Path | str, storage_options: dict | None = None) -> dict:
    """Everything ``saldata info`` prints about ``output`` (an ``Output``, a folder or a URL)."""
    from saldata.pipelines.status import output_status

    if not isinstance(output, Output):
        output = Output(output, storage_options)
    out, attrs = output.path, output.attrs
    status = output_status(out)
    splits = Counter((r["dataset"], r["split"]) for r in output.images.select(["dataset", "split"]).to_pylist())
    return {
        "out": str(out),
        "model": {
            "name": attrs.get("model"),
            "path": attrs.get("model_path"),
            "revision": hub_revision(attrs.get("model_path")),
        },
        "prompt": {"id": attrs.get("prompt_id"), "text": attrs.get("prompt")},
        "datasets": [{"dataset": d, "split": s, "images": n} for (d, s), n in sorted(splits.items())],
        "image_size": list(attrs.get("image_size", [])),
        "layers": list(output.layers.layers),
        "n_decoder_layers": output.layers.n_decoder_layers,
        "heads": {"captured": attrs.get("heads"), "stored": stored_heads(output)},
        "grids": {"base": attrs.get("base_grid"), "highres": attrs.get("highres_grid")},
        "dtype": attrs.get("dtype"),
        "max_new_tokens": attrs.get("max_new_tokens"),
        "shard_size": attrs.get("shard_size"),
        "created": attrs.get("created"),
        "schema": {"store": attrs.get("schema_version"), "catalog": catalog_version(out, attrs)},
        "versions": {
            "written": {"saldata": attrs.get("saldata_version"), "transformers": attrs.get("transformers_version")},
            "running": running_versions(),
        },
        "images": {
            "total": status.total,
            "done": status.done,
            "failed": status.failed,
            "pending": status.pending,
            "failed_by_reason": [{"reason": reason, "count": n} for reason, n in status.failures],
        },
        "shards": {"committed": status.shards_committed, "total": status.shards_total},
        "bytes": sizes(out),
        "evaluation": evaluation(out),
        "objects": objects(out),
    }


def hub_revision(model_path: str | None) -> str | None:
    """The Hub commit a model was read from, where its path is a Hugging Face cache snapshot."""
    found = HUB_SNAPSHOT.search(str(model_path or "").replace("\\", "/"))
    return found.group(1) if found else None


def stored_heads(output: Output) -> int | None:
    """Heads on the stored attention's ``head`` axis (1 where the run kept the mean)."""
    array = output.group["attn_base"]
    dims = tuple(array.metadata.dimension_names or ())
    return int(array.shape[dims.index("head")]) if "head" in dims else None


def catalog_version(out: Path, attrs: dict) -> int | None:
    """The catalog schema its first committed images file says it was written with (its footer, one
    file read however many shards); for an output with no committed file yet, or one that cannot be
    read, the version that goes with its store's (schemas/history.py)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from saldata.schemas.catalog import IMAGES
    from saldata.schemas.history import SCHEMA_HISTORY
    from saldata.storage.catalog import committed_shards, shard_file
    from saldata.storage.location import read_many

    shards = committed_shards(out)
    if shards:
        data = read_many([shard_file(out, IMAGES, min(shards))])[0]
        metadata = {}
        # a damaged file: verify names it; the version is only a label here
        with contextlib.suppress(pa.ArrowException):
            if isinstance(data, bytes):
                metadata = pq.read_schema(pa.BufferReader(data)).metadata or {}
        version = metadata.get(b"saldata.schema_version", b"").decode()
        if version.isdigit():
            return int(version)
    return next((catalog for store, catalog, _ in SCHEMA_HISTORY if store == attrs.get("schema_version")), None)


def running_versions() -> dict:
    """This saldata's version and the installed transformers' (read without importing it: seconds saved)."""
    from importlib.metadata import PackageNotFoundError, version

    from saldata import __version__

    try:
        transformers = version("transformers")
    except PackageNotFoundError:
        transformers = None
    return {"saldata": __version__, "transformers": transformers}


def sizes(out: Path) -> dict:
    from saldata.storage.location import tree_bytes

    return {
        "store": tree_bytes(out / STORE_DIRNAME),
        "catalog": tree_bytes(out / CATALOG_DIRNAME),
        "total": tree_bytes(out),
    }


def evaluation(out: Path) -> list[dict]:
    """Each evaluation table: where it is, its rows, and the settings its metadata records."""
    from saldata.storage.eval_tables import find_eval_tables, read_record

    found = []
    for table in find_eval_tables(out):
        record = read_record(table.path)
        found.append(
            {
                "run": table.run,
                "table": table.table,
                "path": str(table.path.relative_to(out)),
                "rows": record.rows,
                "version": record.version,
                "settings": record.settings,
                **({"error": record.error} if record.error else {}),
            }
        )
    return found


def objects(out: Path) -> dict:
    """Whether ``saldata objects`` added object annotations: the rows of the catalog's ``objects``
    table and, per source, its input files and what was placed and rejected (``commits/objects.json``)."""
    from saldata.errors import DamageError
    from saldata.objects.table import read_objects_record

    try:
        record = read_objects_record(out)
    except DamageError as exc:  # info still describes the rest; verify and saldata objects say what to do
        return {"added": True, "rows": None, "sources": {}, "error": str(exc)}
    if record is None:
        return {"added": False, "rows": None, "sources": {}}
    rows = record.rows_of(OBJECTS.name)
    sources = {
        name: {key: result.get(key) for key in ("inputs", "placed", "n_rejected", "not_in_output")}
        for name, result in sorted(record.sources.items())
    }
    return {"added": True, "rows": rows, "sources": sources}
