"""The run journal only adds timing: a full disk must never stop a run, or its error handler, through it."""

from __future__ import annotations

import json
import os
import subprocess
import sys

from saldata.storage.journal import read_journals

# Writes the events of a short run; the journal's disk fills at the event the test names.
RUN = """
import sys
from saldata.storage.journal import RunJournal
journal = RunJournal(sys.argv[1], "run-1")
print([journal.write(event, shard=0) for event in ("start", "commit", "error", "end")])
"""


def test_a_full_disk_loses_journal_lines_and_nothing_else(tmp_path):
    env = {**os.environ, "SALDATA_FAULT": "journal-write@commit=enospc,journal-write@error=enospc"}
    proc = subprocess.run([sys.executable, "-c", RUN, str(tmp_path)], env=env, capture_output=True, text=True)
    assert proc.returncode == 0 and proc.stderr == "", proc.stderr
    assert json.loads(proc.stdout.replace("True", "true").replace("False", "false")) == [True, False, False, True]
    assert [e["event"] for e in read_journals(tmp_path)[0]] == ["start", "end"]
