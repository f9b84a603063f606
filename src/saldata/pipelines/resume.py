"""Decide what a run must do on an output directory: start fresh, resume, or refuse.

A shard is done when its commit record says so and the files it names are intact. Resuming
finishes commits a killed run left half done, restores store metadata changed since the store's
creation (from the store record), verifies every committed shard, redoes damaged and
uncommitted shards from scratch, and, with ``retry_failed``, reprocesses the failed images of
committed shards. It refuses an output made with other settings or from other source images.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path

import pyarrow.compute as pc

from saldata.errors import ConfigError, StoreError
from saldata.pipelines.plan import Shard, ShardWork
from saldata.schemas.catalog import CATALOG_DIRNAME, STATUS_DONE, STATUS_FAILED
from saldata.schemas.history import newer_than
from saldata.schemas.store import STORE_SCHEMA_VERSION
from saldata.storage.catalog import read_table
from saldata.storage.commits import (
    COMMITS_DIRNAME,
    STAGING_DIRNAME,
    CommitRecord,
    finish_pending,
    read_commit_log,
    sweep_staging,
)
from saldata.storage.journal import JOURNAL_DIR
from saldata.storage.location import as_out, remove_tree
from saldata.storage.store_record import check_metadata, metadata_problems, read_store_record, restore_metadata
from saldata.storage.zarr_store import create_store, open_store, store_in_place, store_path, store_schema_version

# Attributes that must match for a rerun to add to an existing output.
GUARDED_ATTRIBUTES = (
    "schema_version",
    "model",
    "prompt",
    "layers",
    "heads",
    "image_size",
    "max_new_tokens",
    "shard_size",
    "dtype",
    "n_images",
    "sources_digest",
)
RUN_CONFIG_FILE = "run.json"


@dataclass(frozen=True, slots=True)
class OutputState:
    committed: set[int]  # intact committed shards: skipped
    damaged: dict[int, list[str]]  # committed shards whose files or rows are wrong: redone
    finished: list[int]  # half-done commits of a killed run, completed now
    restored: list[str] = field(default_factory=list)  # store metadata files written back from the store record


def check_output(plan) -> None:
    """Refuse an output this run must not add to; reads only (pre-flight runs it before Ray starts)."""
    out = plan.config.out
    # The store as it was created: metadata edited since is restored under the lock, not taken for
    # other settings (a damaged record raises here, naming itself).
    record = read_store_record(out) if store_in_place(out) else None
    version = record.attributes().get("schema_version") if record else store_schema_version(out)
    if version is None:
        # On an object store the store is copied into place from its aside, zarr.json last: a kill
        # in that copy leaves a store without zarr.json, which the aside shows to be ours.
        if store_in_place(out):
            raise StoreError(
                f"{store_path(out)} is not a saldata store (no zarr.json); move it away or pass --overwrite."
            )
        if read_commit_log(out).committed:
            raise StoreError(
                f"{store_path(out)} is missing, but {out} has committed shards; pass --overwrite to start over."
            )
        return
    if version < STORE_SCHEMA_VERSION:
        raise ConfigError(
            f"{out} was written by an older saldata (store schema_version {version}; this one writes "
            f"{STORE_SCHEMA_VERSION}: {newer_than(version)}) and cannot be resumed. Pass --overwrite to "
            "re-extract it, or choose another --out; saldata.open still reads it as it is."
        )
    if record is None:
        check_metadata(out)  # a store of this version without its record: nothing vouches for its metadata
    _refuse_other_settings(out, record.attributes() if record else dict(open_store(out).attrs), plan.attributes)
    _refuse_other_sources(out, plan.shards, read_commit_log(out).committed)


def already_complete(config) -> bool:
    """True only when rerunning ``config`` provably has nothing to do; read-only, and fast.

    Needs neither the model's config nor Ray (a "nothing to do" takes about a second): the
    same command as the last run (its run.json), the same images (listed and hashed as
    pre-flight does), every shard committed, and every file intact. Any doubt answers False, and
    the full path (pre-flight, then the run) decides. A changed source image raises, as there.
    """
    from saldata.pipelines.plan import plan_shards
    from saldata.pipelines.sources import list_sources, sources_digest
    from saldata.pipelines.verify import verify_output
    from saldata.storage.lock import is_stale, read_lock

    out = as_out(config.out)
    try:
        if store_schema_version(out) != STORE_SCHEMA_VERSION or metadata_problems(out):
            return False  # the full path refuses the older output, or restores the metadata
        if not _same_command(json.loads((out / RUN_CONFIG_FILE).read_text()), json.loads(config.to_json())):
            return False
        lock = read_lock(out)
        if lock is not None and not is_stale(lock):
            return False
        attrs = dict(open_store(out).attrs)
        sources = list_sources(config)
        if attrs.get("sources_digest") != sources_digest(sources) or attrs.get("n_images") != len(sources):
            return False
        shards = plan_shards(sources, config.shard_size)
        log = read_commit_log(out)
        if log.pending or log.unreadable or set(log.committed) != {shard.index for shard in shards}:
            return False
    except (OSError, ValueError, KeyError, StoreError):
        return False
    _refuse_other_sources(out, shards, log.committed)
    return verify_output(out).intact


def _same_command(last: dict, now: dict) -> bool:
    """The same settings, wherever the output now lies (an output may be moved)."""
    return {**last, "out": None} == {**now, "out": None}


def prepare_output(plan, overwrite: bool, checked: bool = False) -> OutputState:
    """Create the store, or finish, verify and sweep an existing one. Call only under the output lock.

    ``checked``: ``check_output`` already passed (pre-flight), so the source images are not hashed twice.
    """
    from saldata.pipelines.verify import verify_output

    out = plan.config.out
    if overwrite:
        clear_output(out)
    elif not checked:
        check_output(plan)
    finished = finish_pending(out)
    # Before the sweep: it removes an object store's aside, which tells a store still being copied
    # into place (recreated below) from one whose metadata was changed (restored now).
    restored = restore_metadata(out)
    sweep_staging(out)
    if store_schema_version(out) is None:
        create_store(out, plan.geometry, plan.config.shard_size, plan.attributes)
        return OutputState(set(), {}, finished)
    log = read_commit_log(out)
    report = verify_output(out)
    _remove_stray(out, report.stray)
    return OutputState(set(log.committed) - set(report.damaged), report.damaged, finished, restored)


def _refuse_other_settings(out: Path, existing: dict, wanted: dict) -> None:
    differences = [
        f"{key}: {existing.get(key)!r} in the output, {wanted[key]!r} now"
        for key in GUARDED_ATTRIBUTES
        if existing.get(key) != wanted[key]
    ]
    if differences:
        raise ConfigError(
            f"{out} was made by a different run and cannot be resumed with these settings:\n  "
            + "\n  ".join(differences)
            + "\nPass --overwrite to start over, or choose another --out."
        )


def _refuse_other_sources(out: Path, shards: list[Shard], committed: dict[int, CommitRecord]) -> None:
    """Committed rows must come from the very files this run would read: same path, size, time, content.

    Hashing the committed images costs one read of them (small beside the store), in threads.
    """
    from concurrent.futures import ThreadPoolExecutor

    planned = {shard.start + i: source for shard in shards for i, source in enumerate(shard.sources)}
    entries = [entry for shard in sorted(committed) for entry in committed[shard].sources]
    with ThreadPoolExecutor(HASH_THREADS) as pool:
        for entry, problem in zip(entries, pool.map(lambda e: _source_problem(e, planned.get(e["idx"])), entries)):
            if problem:
                source = planned.get(entry["idx"])
                name = source.image_id if source else entry["path"]
                raise ConfigError(
                    f"{out}: image {entry['idx']} ({name}) {problem}, so this output cannot be resumed from these "
                    "images. Point --data-root at the images it was made from, or pass --overwrite to start over."
                )


HASH_THREADS = 4


def _source_problem(entry: dict, source) -> str | None:
    from saldata.pipelines.preprocess import fingerprint

    path = source.path if source else None
    if path != entry["path"]:
        return f"was read from {entry['path']}, and this run would read {path}"
    if entry.get("status") != STATUS_DONE or entry.get("size") is None:
        return None  # a failed image has nothing committed to protect; --retry-failed may redo it
    try:
        with open(path, "rb") as f:
            now = fingerprint(path, f.read(), os.fstat(f.fileno()))
    except OSError:
        return f"was read from {path}, which can no longer be read"
    if (now["size"], now["mtime_ns"]) != (entry["size"], entry["mtime_ns"]):
        return f"changed since it was committed ({path}: size or modification time differ)"
    if now["blake2b"] != entry["blake2b"]:
        return f"changed since it was committed ({path}: same size and time, other content)"
    return None


def _remove_stray(out: Path, stray: list[str]) -> None:
    """Catalog files no record names would show up in plain Parquet readers: take them out."""
    for rel in stray:
        remove_tree(as_out(out) / rel)


def select_work(shards: list[Shard], state: OutputState, out: Path, retry_failed: bool) -> list[ShardWork]:
    work = [ShardWork(s) for s in shards if s.index not in state.committed]
    if retry_failed and state.committed:
        images = read_table(out, "images", shards=state.committed)  # not the damaged ones: redone whole
        failed = images.filter(pc.equal(images["status"], STATUS_FAILED))
        by_shard: dict[int, list[int]] = {}
        for shard_index, idx in zip(failed["shard"].to_pylist(), failed["idx"].to_pylist(), strict=True):
            if shard_index in state.committed:
                by_shard.setdefault(shard_index, []).append(idx)
        work += [ShardWork(shards[i], tuple(sorted(by_shard[i]))) for i in sorted(by_shard)]
    return work


def clear_output(out: Path) -> None:
    """Remove what saldata wrote (and nothing else a user keeps beside it)."""
    # Records first: once they are gone nothing left behind is believed, wherever a kill lands.
    out = as_out(out)
    for name in (COMMITS_DIRNAME, "features.zarr", CATALOG_DIRNAME, JOURNAL_DIR, STAGING_DIRNAME):
        remove_tree(out / name)
    (out / RUN_CONFIG_FILE).unlink(missing_ok=True)
