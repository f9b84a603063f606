"""Where derived files may go: never into the extraction output they are derived from."""

from __future__ import annotations

import os
import re
from pathlib import Path

from saldata.errors import ConfigError


def refuse_url(path, setting: str) -> None:
    """ConfigError for a URL where only a local file is written (``s3://b/x`` would become ``./s3:/b/x``)."""
    if re.match(r"[A-Za-z][A-Za-z0-9+.-]+:/", str(path)):
        raise ConfigError(
            f"{setting} {path} looks like a URL; it is written on this machine only. Give a local path, "
            "then copy the result to the store."
        )


def refuse_inside(path: Path, out: Path, setting: str, writer: str) -> None:
    """ConfigError when ``path`` is ``out``, inside it, or a hard link to a file in it.

    ``setting`` names the option for the message (``--output``), ``writer`` what never writes
    OUT (``queries``). Symlinks and relative paths are resolved first, so no spelling of a path
    into OUT gets through; a hard link is no path, so it is compared by inode.
    """
    from saldata.storage.location import is_object

    refuse_url(path, setting)
    if is_object(out) or is_object(path):
        if str(path) == str(out) or str(path).startswith(str(out).rstrip("/") + "/"):
            raise ConfigError(
                f"{setting} {path} is inside {out}, which {writer} never write; write the result elsewhere."
            )
        return  # a local file and an object store never overlap
    target, root = Path(path).resolve(), Path(out).resolve()
    if target == root or root in target.parents:
        raise ConfigError(f"{setting} {path} is inside {out}, which {writer} never write; write the result elsewhere.")
    try:
        stat = target.stat()
    except OSError:
        return
    if stat.st_nlink > 1 and not target.is_dir() and root.is_dir():
        for folder, _, names in os.walk(root):
            for name in names:
                other = os.stat(os.path.join(folder, name), follow_symlinks=False)
                if (other.st_dev, other.st_ino) == (stat.st_dev, stat.st_ino):
                    raise ConfigError(
                        f"{setting} {path} is a hard link to {os.path.join(folder, name)}; write the result elsewhere."
                    )
