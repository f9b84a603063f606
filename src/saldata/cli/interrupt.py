"""Ctrl-C and SIGTERM during a run: one line, exit 130 / 143, and no Ray process left behind."""

from __future__ import annotations

from pathlib import Path

from saldata.pipelines.signals import Interrupted, catch_signals, hold_signals
from saldata.words import plural

__all__ = ["Interrupted", "catch_signals", "hold_signals", "interrupted_line", "stop_local_ray"]


def stop_local_ray() -> None:
    import sys

    if "ray" in sys.modules:
        import ray

        if ray.is_initialized():
            ray.shutdown()


def interrupted_line(out: Path) -> str:
    from saldata.storage.catalog import committed_shards
    from saldata.storage.zarr_store import open_store, store_path

    if not store_path(out).is_dir():
        return "interrupted before any shard was committed; rerun the same command to start"
    attrs = open_store(out).attrs
    total = -(-int(attrs["n_images"]) // int(attrs["shard_size"]))
    return f"interrupted: {len(committed_shards(out))} of {plural(total, 'shard')} committed; rerun the same command to resume"
