"""How far a running extraction is: one record the driver updates and both the bar and ``status`` read.

Images are counted as the model finishes them (from the first image on, not only when a shard
commits), and committed images separately. Rate and ETA are computed here, by the one formula
both readers use, so the bar and ``saldata status`` always agree.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path

from saldata.storage.journal import JOURNAL_DIR
from saldata.storage.location import as_out, is_object

# The driver rewrites the record at most this often; status may read it this much behind.
WRITE_EVERY_S = 1.0


@dataclass(frozen=True, slots=True)
class RunProgress:
    run_id: str
    started: float  # wall-clock time the model was ready (before that: the run's start)
    total: int  # images this run processes
    processed: int = 0  # images the model has finished (failed ones too), this run
    committed: int = 0  # images in shards this run has committed
    updated: float = 0.0  # wall-clock time of the counts above
    model_ready: bool = False  # the model actors answer: images are being counted
    finished: bool = False  # the run is over: its rate stays the one it ended with

    def counts(self) -> tuple:
        return self.processed, self.committed, self.model_ready

    def elapsed_s(self, now: float | None = None) -> float:
        """Seconds since the model was ready: to the last count once finished, else to ``now``."""
        return (self.updated if self.finished else (now or time.time())) - self.started

    def rate(self, now: float | None = None) -> float | None:
        """Images per second through the model since it was ready (None before the first image)."""
        elapsed = self.elapsed_s(now)
        return self.processed / elapsed if self.processed and elapsed > 0 else None

    def eta_s(self, now: float | None = None) -> float | None:
        rate = self.rate(now)
        return (self.total - self.processed) / rate if rate else None

    def counted(self, processed: int | None = None, committed: int | None = None) -> RunProgress:
        """Counts only ever go up: a restarted model actor starts its own count at zero."""
        now = time.time()
        ready = self.model_ready or processed is not None
        started = self.started if self.model_ready or not ready else now
        processed = max(self.processed, min(self.total, processed or 0))
        committed = max(self.committed, committed or 0)
        return replace(
            self,
            processed=max(processed, committed),
            committed=committed,
            updated=now,
            started=started,
            model_ready=ready,
        )


def format_eta(seconds: float | None) -> str:
    """One way of writing an ETA, for the bar and for ``status``."""
    if seconds is None:
        return "unknown"
    seconds = round(seconds)
    return f"{seconds // 3600}:{seconds % 3600 // 60:02d}:{seconds % 60:02d}"


def rate_text(progress: RunProgress, now: float | None = None) -> str:
    """The rate as the bar and ``status`` both write it."""
    if not progress.model_ready:
        return "loading the model..."
    if progress.finished and progress.processed == 1:  # a run of one image: its time, not a throughput
        return f"1 image in {progress.elapsed_s(now):.2f} s"
    rate = progress.rate(now)
    return f"{rate:.2f} images/s" if rate else "first image..."


def progress_path(out: Path, run_id: str) -> Path:
    return as_out(out) / JOURNAL_DIR / f"{run_id}.progress.json"


def write_progress(out: Path, progress: RunProgress) -> None:
    """Replace the record (no fsync: it only describes a live run, and a torn one is simply not read)."""
    path = progress_path(out, progress.run_id)
    if is_object(path):
        path.write_text(json.dumps(asdict(progress)))
        return
    aside = path.with_name(f".{path.name}.tmp")
    path.parent.mkdir(parents=True, exist_ok=True)
    aside.write_text(json.dumps(asdict(progress)))
    os.replace(aside, path)


def latest_progress(out: Path) -> RunProgress | None:
    """The most recent run's record (run ids begin with their start time)."""
    paths = sorted((as_out(out) / JOURNAL_DIR).glob("*.progress.json"))
    return read_progress(out, paths[-1].name.removesuffix(".progress.json")) if paths else None


def read_progress(out: Path, run_id: str) -> RunProgress | None:
    try:
        fields = json.loads(progress_path(out, run_id).read_text())
        return RunProgress(**fields)
    except (OSError, ValueError, TypeError):  # absent (not started yet) or not ours: no live counts
        return None


class ProgressRecorder:
    """The driver's side: takes counts as they come, writes the record at most every WRITE_EVERY_S."""

    def __init__(self, out: Path, run_id: str, total: int, on_change=None):
        self.out = out
        self.progress = RunProgress(run_id, time.time(), total, updated=time.time())
        self.on_change = on_change
        self._written = 0.0
        self._save(force=True)

    def finish(self) -> None:
        self.progress = replace(self.progress.counted(), finished=True)
        if self.on_change:
            self.on_change(self.progress)
        self._save(force=True)

    def update(self, processed: int | None = None, committed: int | None = None) -> None:
        before = self.progress
        self.progress = before.counted(processed, committed)
        changed = self.progress.counts() != before.counts()
        if changed and self.on_change:
            self.on_change(self.progress)
        self._save(force=committed is not None)

    def _save(self, force: bool) -> None:
        if force or time.monotonic() - self._written >= WRITE_EVERY_S:
            try:
                write_progress(self.out, self.progress)
            except OSError:  # progress is for people watching; a failed write must not stop the run
                return
            self._written = time.monotonic()
