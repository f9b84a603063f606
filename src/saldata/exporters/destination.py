"""An export's folder, DEST: kept out of OUT, bound to one set of settings, resumable.

- ``check_destination`` refuses a DEST inside OUT, a folder that holds something other than an
  export, an export made with other settings or from an incompatible extraction, and a split
  already exported from another output (its manifest says which), so a rerun can never mix two
  exports; ``open_destination`` then records the manifest, before any file. Splits of different
  outputs may share a DEST (the trainer reads train and val from one folder; an output holds one
  split).
- Every file is written aside and renamed (``write_atomic``): a killed export leaves whole files,
  and at worst aside files, which the next run removes.
- A shard's marker names the commit it was exported from; it says ``partial`` before the shard's
  first file and ``done`` after its last. A rerun keeps the files of shards whose commit is
  unchanged (writing only those missing), and rewrites every file of a shard recommitted since
  (``saldata extract --retry-failed``), whose rows may have changed.
- A split's fragment keeps what a format's JSON files say of it, so a split exported later
  rewrites them whole from every split in DEST. One export at a time writes a DEST.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path
from urllib.parse import quote

from saldata.errors import ConfigError
from saldata.storage.commits import aside_path, commits_dir, is_aside, read_commit_log, write_atomic
from saldata.storage.paths import refuse_inside

MANIFEST_FILE = "saldata-export.json"
MARKERS_DIRNAME = ".saldata-export"
MANIFEST_VERSION = 1

SHARD_NEW, SHARD_PARTIAL, SHARD_DONE = "new", "partial", "done"


# The store attributes that shape an export's files: splits exported from different outputs into
# one DEST (the trainer reads train and val from one folder) must agree on all of them. (The
# layer exported is a setting; the outputs may have captured others beside it.)
SHARED_ATTRIBUTES = ("schema_version", "model", "prompt", "heads", "image_size")


@dataclass(frozen=True, slots=True)
class Manifest:
    """What DEST was exported from and how: a rerun must match it to resume, a new split to join it."""

    format: str
    settings: dict  # the format's choices that shape its files, by option name (layer, grid, unit)
    extraction: dict  # SHARED_ATTRIBUTES of the outputs exported
    splits: dict  # split -> the output it came from: {"out", "config_digest", "sources_digest"}
    version: int = MANIFEST_VERSION

    def to_json(self) -> bytes:
        return json.dumps(asdict(self), indent=1, sort_keys=True).encode()

    def conflict(self, run: Manifest) -> str | None:
        """How this run differs from the export in DEST in anything that shapes its files; None if it may join."""
        if run.format != self.format:
            return f"--format {self.format} (this run: --format {run.format})"
        for name in sorted(set(self.settings) | set(run.settings)):
            old, new = self.settings.get(name), run.settings.get(name)
            if old != new:
                return f"--{name} {_shown(old)} (this run: --{name} {_shown(new)})"
        for name in SHARED_ATTRIBUTES:
            old, new = self.extraction.get(name), run.extraction.get(name)
            if old != new:
                return f"an extraction of another {name} ({_shown(old)}; this output's: {_shown(new)})"
        for split in sorted(set(self.splits) & set(run.splits)):
            old, new = self.splits[split], run.splits[split]
            if (old["config_digest"], old["sources_digest"]) != (new["config_digest"], new["sources_digest"]):
                return f"split {split} from another extraction ({old['out']}, config_digest {old['config_digest']})"
        return None

    def joined(self, run: Manifest) -> Manifest:
        return Manifest(self.format, self.settings, self.extraction, {**self.splits, **run.splits})


def _shown(value) -> str:
    if value is None:
        return "(default)"
    return ",".join(map(str, value)) if isinstance(value, list | tuple) else str(value)


def check_destination(dest: Path, out: Path, manifest: Manifest) -> Manifest:
    """Check DEST may take this export (see the module's docstring); the manifest DEST will have."""
    refuse_inside(dest, out, "DEST", "exports")
    if dest.exists() and not dest.is_dir():
        raise ConfigError(f"DEST {dest} is a file; give a folder (new or one this export wrote).")
    manifest_path = dest / MANIFEST_FILE
    if manifest_path.is_file():
        try:
            existing = Manifest(**json.loads(manifest_path.read_text()))
        except (OSError, ValueError, TypeError) as exc:
            raise ConfigError(
                f"{manifest_path} cannot be read ({type(exc).__name__}); delete {dest} to export again."
            ) from None
        conflict = existing.conflict(manifest)
        if conflict:
            raise ConfigError(
                f"DEST {dest} holds an export made with {conflict}; export into another folder, or delete {dest} "
                "to redo it."
            )
        return existing.joined(manifest)
    if dest.is_dir() and any(dest.iterdir()):
        raise ConfigError(f"DEST {dest} is not empty and holds no saldata export ({MANIFEST_FILE}); give a new folder.")
    return manifest


def open_destination(dest: Path, manifest: Manifest) -> None:
    """Record ``manifest`` (from ``check_destination``) in DEST before any file, and clear what a killed export left."""
    dest.mkdir(parents=True, exist_ok=True)
    write_atomic(dest / MANIFEST_FILE, manifest.to_json())
    _remove_asides(dest)


def _remove_asides(dest: Path) -> None:
    """Files a killed export was writing: never renamed into place, so never part of the export."""
    for folder, _, names in os.walk(dest):
        for name in names:
            if is_aside(name):
                Path(folder, name).unlink(missing_ok=True)


def shard_commits(out: Path) -> dict[int, str]:
    """Each committed shard's identity: a digest of its files' checksums, which a recommit with other rows changes.

    Outputs older than commit records have none; their shards never change once written.
    """
    if not commits_dir(out).is_dir():
        return {}
    identities = {}
    for shard, record in read_commit_log(out).committed.items():
        files = {rel: None if d is None else [d.size, d.crc32c] for rel, d in record.files.items()}
        identities[shard] = hashlib.sha256(json.dumps(files, sort_keys=True).encode()).hexdigest()[:16]
    return identities


class ShardMarkers:
    """DEST/.saldata-export/<config_digest>/shard-NNNNN.json: the commit an output's shard was
    exported from, and how far it got."""

    def __init__(self, dest: Path, config_digest: str):
        self.folder = dest / MARKERS_DIRNAME / config_digest

    def _path(self, shard: int) -> Path:
        return self.folder / f"shard-{shard:05d}.json"

    def state(self, shard: int, commit: str) -> str:
        """``done``, ``partial`` (files of this commit may exist) or ``new`` (none of this commit's files do)."""
        try:
            marker = json.loads(self._path(shard).read_text())
        except (OSError, ValueError):
            return SHARD_NEW
        if not isinstance(marker, dict) or marker.get("commit") != commit:
            return SHARD_NEW
        return SHARD_DONE if marker.get("state") == SHARD_DONE else SHARD_PARTIAL

    def mark(self, shard: int, commit: str, state: str) -> None:
        write_atomic(self._path(shard), json.dumps({"commit": commit, "state": state}).encode())


def link_atomic(path: Path, target: str) -> bool:
    """Make ``path`` a symlink to ``target`` (made aside, then renamed over); False when it already was."""
    try:
        if os.readlink(path) == target:
            return False
    except OSError:
        pass
    path.parent.mkdir(parents=True, exist_ok=True)
    aside = aside_path(path)
    aside.unlink(missing_ok=True)
    os.symlink(target, aside)
    os.replace(aside, path)
    return True


def _fragment_path(dest: Path, split: str) -> Path:
    return dest / MARKERS_DIRNAME / f"split-{quote(split, safe='')}.json"


def write_fragment(dest: Path, split: str, value) -> None:
    """What a format makes of one split's images for its JSON files, kept until another split joins DEST."""
    write_atomic(_fragment_path(dest, split), json.dumps({"split": split, "value": value}).encode())


def read_fragments(dest: Path) -> dict:
    """Every split's fragment in DEST, by split name (sorted)."""
    fragments = {}
    for path in sorted((dest / MARKERS_DIRNAME).glob("split-*.json")):
        record = json.loads(path.read_text())
        fragments[record["split"]] = record["value"]
    return dict(sorted(fragments.items()))
