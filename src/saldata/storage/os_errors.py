"""One line for a failed write: which file, what the system said, and, for a full disk, the free space.

``explain`` words a failure inside an extraction (the caller says what became of the run);
``write_failure`` words a failed write of a file derived from an output (an export, evaluate's
and stats' files, ``catalog query -o``, ``show -o``), which never touches what is committed.
"""

from __future__ import annotations

import errno
import os
import shutil
from pathlib import Path


def explain(exc: OSError, out: Path) -> str:
    """``exc`` in words: the file it names (or ``out``), the reason, and what is left on that disk."""
    where = exc.filename2 or exc.filename or out  # a failed rename names its source first
    reason = exc.strerror or str(exc) or type(exc).__name__
    text = f"{where}: {reason}"
    if exc.errno in (errno.ENOSPC, errno.EDQUOT):
        text += f" ({_free_space(Path(out))} free on the disk of {out})"
    return text


DISK_FULL = (errno.ENOSPC, errno.EDQUOT)

_REASONS = {
    errno.EROFS: "the file system is read-only",
    errno.EACCES: "permission denied",
    errno.EPERM: "operation not permitted",
    errno.EISDIR: "it is a folder",
    errno.ENOENT: "its folder does not exist",
}


_SAFE = "nothing committed was lost"  # derived files are written beside the committed ones, never over them


def write_failure(exc: OSError, target: Path) -> str:
    """``exc``, raised writing ``target`` (or a file it names), as one line that says the output is unharmed."""
    where = exc.filename2 or exc.filename or target  # a failed rename names its source first
    if exc.errno in DISK_FULL:
        what = "no space left" if exc.errno == errno.ENOSPC else "disk quota exceeded"
        return f"{what} on {_mount_point(Path(where))} writing {where} ({_free_space(Path(where))} free); {_SAFE}"
    reason = _REASONS.get(exc.errno) or exc.strerror or str(exc) or type(exc).__name__
    return f"cannot write {where}: {reason}; {_SAFE}"


def _mount_point(path: Path) -> Path:
    """The mount point of the disk ``path`` is on (what ``df`` names), or its nearest existing folder."""
    path = Path(os.path.abspath(path))
    while not path.exists() and path != path.parent:
        path = path.parent
    while not os.path.ismount(path) and path != path.parent:
        path = path.parent
    return path


def _free_space(path: Path) -> str:
    while not path.exists() and path != path.parent:
        path = path.parent
    try:
        return human_bytes(shutil.disk_usage(path).free)
    except OSError:
        return "unknown"


def human_bytes(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if n < 1024 or unit == "TiB":
            return f"{n:.1f} {unit}" if unit != "B" else f"{int(n)} B"
        n /= 1024
    raise AssertionError
