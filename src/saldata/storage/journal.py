"""Append-only run journal: when each run started and when it committed each shard.

Commits themselves live in the catalog; the journal adds timing so ``status`` can report
throughput and ETA, and so a rerun's work can be audited (which shards each run processed).
"""

from __future__ import annotations

import json
import time
from pathlib import Path

from saldata.faults import fault_point
from saldata.storage.location import as_out, is_object
from saldata.storage.os_errors import DISK_FULL

JOURNAL_DIR = "journal"


def journal_path(out: Path, run_id: str) -> Path:
    return as_out(out) / JOURNAL_DIR / f"{run_id}.jsonl"


class RunJournal:
    def __init__(self, out: Path, run_id: str):
        self.path = journal_path(out, run_id)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lines: list[str] = []  # an object cannot be appended to: it is rewritten whole

    def write(self, event: str, **fields) -> bool:
        """Append one event; False when a full disk kept it out.

        The journal only adds timing and reports, so a full disk must not stop a run through it
        (the run meets the full disk where it matters, at its next shard or commit), nor turn the
        error handler that records a failure into a second failure.
        """
        line = json.dumps({"event": event, "time": time.time(), **fields}) + "\n"
        try:
            fault_point("journal-write", event, self.path)
            if is_object(self.path):
                self._lines.append(line)
                self.path.write_text("".join(self._lines))
                return True
            with open(self.path, "a") as f:
                f.write(line)
                f.flush()
        except OSError as exc:
            if exc.errno not in DISK_FULL:
                raise
            return False
        return True


def read_journals(out: Path) -> list[list[dict]]:
    """Every run's events, oldest run first."""
    folder = as_out(out) / JOURNAL_DIR
    runs = []
    for path in sorted(folder.glob("*.jsonl")) if folder.is_dir() else []:
        events = []
        try:
            text = path.read_bytes().decode("utf-8", errors="replace")
        except OSError:  # unreadable: the journal only adds timing, so go on without it
            continue
        for line in text.splitlines():
            try:
                event = json.loads(line)
            except json.JSONDecodeError:  # a line cut by kill -9, or a damaged file
                continue
            if isinstance(event, dict) and isinstance(event.get("event"), str) and _is_number(event.get("time")):
                events.append(event)
        if events:
            runs.append(events)
    return runs


def _is_number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)
