"""Named fault points, for the fault-injection tests (tests/faults/) and RELIABILITY.md.

The pipeline calls ``fault_point(NAME)`` at the moments where a crash or a full disk matters
(after the store is created, after each array of a shard is staged, between a shard's files
and its commit, between the moves of a commit, as each journal line is written, as each file
is written aside by ``write_atomic``: ``write-file@FILE_NAME``). Nothing happens unless the
environment variable ``SALDATA_FAULT`` names that point::

    SALDATA_FAULT="commit-move@2=hang"     # at the 3rd file moved by a commit (0-based 2)
    SALDATA_FAULT="store-array@hidden=enospc"
    SALDATA_FAULT="write-file@metrics.parquet=enospc,journal-write@error=enospc"

Actions: ``hang`` writes the file named by ``SALDATA_FAULT_MARKER`` and stops there until the
test kills the whole process session (a kill -9 at exactly that point); ``enospc`` raises the
OSError a full disk raises; ``kill`` SIGKILLs the calling process.
"""

from __future__ import annotations

import errno
import os
import signal
import time

FAULT_ENV = "SALDATA_FAULT"
MARKER_ENV = "SALDATA_FAULT_MARKER"


def _parse(text: str) -> dict[str, str]:
    faults = {}
    for item in filter(None, (part.strip() for part in text.split(","))):
        point, _, action = item.partition("=")
        faults[point] = action or "hang"
    return faults


_FAULTS = _parse(os.environ.get(FAULT_ENV, ""))


def fault_point(name: str, where: object = None, path: object = None) -> None:
    """Trigger the fault the environment asks for at ``name`` (or ``name@where``), if any."""
    if not _FAULTS:
        return
    action = _FAULTS.get(f"{name}@{where}") if where is not None else None
    action = action or _FAULTS.get(name)
    if action == "hang":
        marker = os.environ.get(MARKER_ENV)
        if marker:
            with open(marker, "a") as f:
                f.write(f"{name}@{where} pid {os.getpid()}\n")
        while True:
            time.sleep(3600)
    elif action == "enospc":
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(path) if path else None)
    elif action == "kill":
        os.kill(os.getpid(), signal.SIGKILL)
