"""What an output directory holds and, if a run is on it now, how fast it goes."""

from __future__ import annotations

import re
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import pyarrow.compute as pc

from saldata.pipelines.live_progress import RunProgress, latest_progress, read_progress
from saldata.schemas.catalog import STATUS_DONE, STATUS_FAILED
from saldata.storage.catalog import read_table
from saldata.storage.commits import commits_dir, read_commit_log
from saldata.storage.journal import read_journals
from saldata.storage.lock import is_stale, read_lock
from saldata.storage.zarr_store import open_store


@dataclass(frozen=True, slots=True)
class OutputStatus:
    out: Path
    total: int
    done: int
    failed: int
    shards_total: int
    shards_committed: int
    failures: list[tuple[str, int]] = field(default_factory=list)  # (reason, count), most common first
    running: dict | None = None  # the live run's lock, if any
    rate: float | None = None  # images/s of the latest run
    eta_s: float | None = None
    live: RunProgress | None = None  # the running run's counts: images through the model, committed
    last: RunProgress | None = None  # the finished last run's counts, where its record is kept
    interrupted_commits: list[int] = field(default_factory=list)  # finished by the next extract
    unreadable_records: list[int] = field(default_factory=list)  # redone by the next extract

    @property
    def pending(self) -> int:
        return self.total - self.done - self.failed


@dataclass(frozen=True, slots=True)
class FailedImage:
    idx: int
    image_id: str
    source_path: str
    error: str


def failed_images(out: Path) -> list[FailedImage]:
    """Each committed image that failed, in idx order: what ``status --failed`` lists."""
    images = read_table(out, "images")
    rows = images.filter(pc.equal(images["status"], STATUS_FAILED)).sort_by("idx").to_pylist()
    return [FailedImage(r["idx"], r["image_id"], r["source_path"], r["error"] or "unknown") for r in rows]


def failure_reason(error: str, path: str) -> str:
    """The error with the file name taken out, so the same problem on many files groups together."""
    reason = error.replace(path, "").lstrip(": ")
    return re.sub(r"'[^']*\.(jpe?g|png|bmp|webp|tiff?)'", "'<file>'", reason, flags=re.IGNORECASE)


def output_status(out: Path) -> OutputStatus:
    """Counts from the commit records alone: a shard without a complete record is pending."""
    attrs = dict(open_store(out).attrs)
    total, shard_size = int(attrs["n_images"]), int(attrs["shard_size"])
    images = read_table(out, "images").to_pylist()
    done = sum(r["status"] == STATUS_DONE for r in images)
    failed_rows = [r for r in images if r["status"] == STATUS_FAILED]
    reasons = Counter(failure_reason(r["error"] or "unknown", r["source_path"]) for r in failed_rows)
    log = read_commit_log(out) if commits_dir(out).is_dir() else None
    lock = read_lock(out)
    running = lock if lock and not is_stale(lock) else None
    rate = eta = live = last = None
    runs = read_journals(out)
    if running and running.get("run_id"):
        live = read_progress(out, str(running["run_id"]))
    if live:  # the numbers the run's own bar shows
        now = time.time()
        rate, eta = live.rate(now), live.eta_s(now)
    elif runs:  # the last run: the rate its bar ended with, or (older outputs) from its commits
        last = latest_progress(out)
        last = last if last and last.finished else None
        rate = last.rate() if last else _rate(runs[-1])
    return OutputStatus(
        out=out,
        total=total,
        done=done,
        failed=len(failed_rows),
        shards_total=-(-total // shard_size),
        shards_committed=len(log.committed) if log else len(set(r["shard"] for r in images)),
        failures=reasons.most_common(),
        running=running,
        rate=rate,
        eta_s=eta,
        live=live,
        last=last,
        interrupted_commits=sorted(log.pending) if log else [],
        unreadable_records=sorted(log.unreadable) if log else [],
    )


def _rate(events: list[dict]) -> float | None:
    start = next((e["time"] for e in events if e["event"] == "start"), None)
    commits = [e for e in events if e["event"] == "commit"]
    if start is None or not commits:
        return None
    finished = next((e["time"] for e in events if e["event"] == "end"), None)
    elapsed = (finished or time.time()) - start
    images = sum(_count(e, "done") + _count(e, "failed") for e in commits)
    return images / elapsed if elapsed > 0 else None


def _count(event: dict, key: str) -> int:
    value = event.get(key)
    return value if isinstance(value, int) and not isinstance(value, bool) else 0
