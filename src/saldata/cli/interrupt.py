"""Ctrl-C and SIGTERM during a run: one line, exit 130 / 143, and no Ray process left behind."""

from __future__ import annotations

import signal
from pathlib import Path


class Interrupted(BaseException):
    """Raised in the main thread by SIGINT or SIGTERM (a BaseException, like KeyboardInterrupt)."""

    def __init__(self, signum: int):
        super().__init__(signal.Signals(signum).name)
        self.signum = signum

    @property
    def exit_code(self) -> int:
        return 128 + self.signum


def _raise(signum, frame) -> None:
    raise Interrupted(signum)


def catch_signals() -> None:
    """Route SIGINT and SIGTERM to ``Interrupted``; call again after ``ray.init``, which sets its own."""
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, _raise)


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
    return f"interrupted: {len(committed_shards(out))} of {total} shards committed; rerun the same command to resume"
