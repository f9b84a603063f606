"""One line for a failed write: which file, what the system said, and, for a full disk, the free space."""

from __future__ import annotations

import errno
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
