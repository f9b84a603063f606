"""Decide what a run must do on an output directory: start fresh, resume, or refuse.

A shard is done when its catalog ``images`` file exists (the commit). Resuming skips those,
redoes every other shard from scratch (overwriting any partial chunks), and, with
``retry_failed``, reprocesses the failed images of committed shards.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pyarrow.compute as pc

from saldata.errors import ConfigError
from saldata.pipelines.plan import Shard, ShardWork
from saldata.schemas.catalog import CATALOG_DIRNAME, STATUS_FAILED
from saldata.storage.catalog import committed_shards, read_table
from saldata.storage.journal import JOURNAL_DIR
from saldata.storage.zarr_store import create_store, open_store, store_path

# Attributes that must match for a rerun to add to an existing output.
GUARDED_ATTRIBUTES = (
    "schema_version",
    "model",
    "prompt",
    "layer",
    "heads",
    "image_size",
    "max_new_tokens",
    "shard_size",
    "dtype",
    "n_images",
    "sources_digest",
)
RUN_CONFIG_FILE = "run.json"


def prepare_output(plan, overwrite: bool) -> set[int]:
    """Create the store, or check an existing one matches this run; returns the committed shards."""
    out = plan.config.out
    if overwrite:
        clear_output(out)
    if not store_path(out).is_dir():
        if committed_shards(out):
            raise ConfigError(f"{out} has a catalog but no features.zarr; pass --overwrite to start over.")
        create_store(out, plan.geometry, plan.config.shard_size, plan.attributes)
        return set()
    existing = dict(open_store(out).attrs)
    differences = [
        f"{key}: {existing.get(key)!r} in the output, {plan.attributes[key]!r} now"
        for key in GUARDED_ATTRIBUTES
        if existing.get(key) != plan.attributes[key]
    ]
    if differences:
        raise ConfigError(
            f"{out} was made by a different run and cannot be resumed with these settings:\n  "
            + "\n  ".join(differences)
            + "\nPass --overwrite to start over, or choose another --out."
        )
    _sweep_partial_files(store_path(out))
    return committed_shards(out)


def select_work(shards: list[Shard], committed: set[int], out: Path, retry_failed: bool) -> list[ShardWork]:
    work = [ShardWork(s) for s in shards if s.index not in committed]
    if retry_failed and committed:
        images = read_table(out, "images")
        failed = images.filter(pc.equal(images["status"], STATUS_FAILED))
        by_shard: dict[int, list[int]] = {}
        for shard_index, idx in zip(failed["shard"].to_pylist(), failed["idx"].to_pylist(), strict=True):
            by_shard.setdefault(shard_index, []).append(idx)
        work += [ShardWork(shards[i], tuple(sorted(by_shard[i]))) for i in sorted(by_shard)]
    return work


def clear_output(out: Path) -> None:
    """Remove what saldata wrote (and nothing else a user keeps beside it)."""
    for name in ("features.zarr", CATALOG_DIRNAME, JOURNAL_DIR):
        shutil.rmtree(Path(out) / name, ignore_errors=True)
    (Path(out) / RUN_CONFIG_FILE).unlink(missing_ok=True)


def _sweep_partial_files(root: Path) -> None:
    """Zarr writes each file aside first; a killed writer leaves the aside copy behind."""
    for path in root.rglob("*.partial"):
        path.unlink(missing_ok=True)
