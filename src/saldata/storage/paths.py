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
    """ConfigError when ``path`` is ``out``, inside it, or another name for a file or folder of it.

    ``setting`` names the option for the message (``--output``), ``writer`` what never writes
    OUT (``queries``). Symlinks and relative paths are resolved first, so no spelling of a path
    into OUT gets through; a hard link or a bind mount is another path to the same file or
    folder, with nothing to resolve, so those are compared by identity (device and inode).
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
    same = _same_as_in(target, root)
    if same is not None:
        raise ConfigError(
            f"{setting} {path} is {same} under another name (a hard link or a mount); {writer} never write "
            f"{out}: write the result elsewhere."
        )


def _same_as_in(target: Path, root: Path) -> str | None:
    """The file or folder of ``root`` that ``target`` or one of its folders is (same device and inode), if any."""
    wanted = {}  # (device, inode) -> the path of target's it identifies
    for candidate in (target, *target.parents):
        try:
            st = candidate.stat()
        except OSError:  # not there yet: only its folders can be in OUT
            continue
        wanted[(st.st_dev, st.st_ino)] = candidate
    try:
        device = root.stat().st_dev
    except OSError:
        return None
    if not any(dev == device for dev, _ in wanted):  # another device: nothing of OUT can be reached from it
        return None
    files_too = target.exists()  # a new file can only be reached through a folder of OUT
    for folder, dirs, names in os.walk(root):
        for name in (".", *dirs, *(names if files_too else ())):
            try:
                st = os.stat(os.path.join(folder, name), follow_symlinks=False)
            except OSError:
                continue
            if (st.st_dev, st.st_ino) in wanted:
                return os.path.normpath(os.path.join(folder, name))
    return None


def check_output_file(path: Path, out: Path, setting: str, writer: str) -> None:
    """ConfigError unless ``path`` can be a new or replaced file: outside ``out``, not a folder, in a folder that exists."""
    refuse_inside(path, out, setting, writer)
    path = Path(path)
    if path.is_dir():
        raise ConfigError(f"{setting} {path} is a folder; give a file name, e.g. {path / 'result'}.")
    if not path.parent.is_dir():
        raise ConfigError(f"{setting} {path}: the folder {path.parent} does not exist; create it first.")
