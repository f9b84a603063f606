"""What every export does, whatever its format: one base, a hook per step.

A format says which catalog rows it exports (``rows``), which files one image becomes and how to
make each (``image_files``), what its JSON files say of one split (``fragment``), and how those
files are made from every split in DEST (``assemble``; written last, so they only ever list
whole files). The base owns DEST (``destination.py``), the work (one thread per store shard,
committed shards only: the catalog shows no other), resume and progress.
"""

from __future__ import annotations

import io
import itertools
import json
import os
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import ClassVar

import numpy as np

from saldata.errors import ConfigError, SaldataError
from saldata.exporters.destination import (
    SHARD_DONE,
    SHARD_NEW,
    SHARD_PARTIAL,
    SHARED_ATTRIBUTES,
    Manifest,
    ShardMarkers,
    check_destination,
    open_destination,
    read_fragments,
    shard_commits,
    write_fragment,
)
from saldata.faults import fault_point
from saldata.readers.output import Output
from saldata.schemas.catalog import STATUS_DONE
from saldata.storage.commits import write_atomic

FileMaker = Callable[[], bytes]


def export_name(image_id: str, source_path: str) -> str:
    """An image's file name, without extension, in every format: one image, one name in every DEST.

    Its id less the source file's suffix (a folder dataset's id is a relative path, suffix
    included), with '/' made '__': the trainer reads one flat folder per split, and pysaliency
    matches a stimulus to its map by file stem, which a flat name serves as well. So
    ``attention/<split>/<name>.npy`` and ``maps/<name>.npy`` are the same image.
    """
    suffix = PurePosixPath(source_path).suffix
    stem = image_id[: -len(suffix)] if suffix and image_id.endswith(suffix) else image_id
    return stem.replace("/", "__")


@dataclass(frozen=True, slots=True)
class ExportSettings:
    """The export's choices; each format takes the ones that apply to it and refuses the others."""

    layer: int | None = None  # a captured decoder layer (negative counts from the model's end); None: last captured
    splits: tuple[str, ...] | None = None  # None: every split of the output
    grid: str | None = None
    unit: str | None = None
    annotations: bool = False
    require_eos: bool = False  # language-att: an image that did not end with EOS is marked invalid
    rows: str | None = None  # the store rows a map averages (saldata.analysis.rows); None: research


@dataclass(slots=True)
class ExportSummary:
    images: int = 0  # images in the export
    written: int = 0  # images this run wrote files for
    kept: int = 0  # images an earlier run had already written
    notes: list[str] = field(default_factory=list)  # what the format has to tell its user


class Exporter:
    """Base of the formats. Subclasses set ``name`` and implement the hooks below."""

    name: ClassVar[str]

    def __init__(self, output: Output, dest: Path, settings: ExportSettings):
        self.output = output
        self.dest = Path(dest)
        self.settings = settings
        self.layer = output.layers.resolve(settings.layer)  # an uncaptured layer fails here, with the list
        self._files_written = itertools.count()

    # -- the hooks -------------------------------------------------------------------------
    def settings_record(self) -> dict:
        """The choices that shape this format's files, by option name: DEST is bound to them."""
        raise NotImplementedError

    def rows(self) -> list[dict]:
        """The catalog rows (``images``) of the images to export, in idx order."""
        raise NotImplementedError

    def image_files(self, output: Output, row: dict) -> dict[str, FileMaker]:
        """Each file (relative to DEST) one image becomes, with what makes its bytes."""
        raise NotImplementedError

    def check_joining(self, rows: list[dict], fragments: dict) -> None:
        """Refuse (ConfigError) rows that would clash with the other splits in DEST (their fragments)."""

    def fragment(self, rows: list[dict]) -> tuple[dict, list[str]]:
        """What the JSON files say of each split of ``rows`` (JSON values, by split), and notes on this run."""
        raise NotImplementedError

    def assemble(self, fragments: dict) -> tuple[dict[str, bytes], list[str]]:
        """The JSON files (relative path -> bytes) made from every split's fragment in DEST, and notes on DEST."""
        raise NotImplementedError

    # -- shared by the formats -------------------------------------------------------------
    def done_rows(self, condition: str = "TRUE") -> list[dict]:
        """Done images of the chosen splits meeting ``condition`` (SQL on ``images``), in idx order."""
        splits = self.settings.splits
        if splits:
            present = set(self.output.splits())
            missing = [s for s in splits if s not in present]
            if missing:
                raise ConfigError(
                    f"--split {missing[0]}: this output has no committed image of that split "
                    f"(it has {', '.join(sorted(present)) or 'none'})."
                )
        where = f"status = '{STATUS_DONE}' AND ({condition})"
        if splits:
            where += " AND split IN (" + ", ".join("'" + s.replace("'", "''") + "'" for s in splits) + ")"
        return self.output.sql(f"SELECT * FROM images WHERE {where} ORDER BY idx").to_pylist()

    def refuse(self, option: str, given: object) -> None:
        """A setting that does not apply to this format is an error, not something silently ignored."""
        if given:
            raise ConfigError(f"{option} does not apply to --format {self.name}; leave it out.")

    # -- the run ---------------------------------------------------------------------------
    def manifest(self, rows: list[dict]) -> Manifest:
        attrs = self.output.attrs
        source = {"out": str(self.output.path), "config_digest": attrs["config_digest"]}
        source["sources_digest"] = attrs["sources_digest"]
        splits = {split: source for split in sorted({row["split"] for row in rows})}
        record = {"settings": self.settings_record(), "extraction": {k: attrs.get(k) for k in SHARED_ATTRIBUTES}}
        record = json.loads(json.dumps(record))  # as it reads back from DEST
        return Manifest(self.name, record["settings"], record["extraction"], splits)

    def run(
        self, on_total: Callable[[int], None] = lambda n: None, on_image: Callable[[], None] = lambda: None
    ) -> ExportSummary:
        """Export every row not exported yet (one thread per store shard), then the JSON files of every split."""
        rows = self.rows()
        manifest = check_destination(self.dest, self.output.path, self.manifest(rows))
        self.check_joining(rows, read_fragments(self.dest))
        open_destination(self.dest, manifest)
        commits = shard_commits(self.output.path)
        markers = ShardMarkers(self.dest, self.output.attrs["config_digest"])
        by_shard: dict[int, list[dict]] = {}
        for row in rows:
            by_shard.setdefault(row["shard"], []).append(row)
        summary = ExportSummary(images=len(rows))
        on_total(len(rows))
        work = []
        for shard, shard_rows in sorted(by_shard.items()):
            commit = commits.get(shard, "")
            # Files of this commit are kept (a file deleted since is written again); a new commit's are redone.
            work.append((shard, shard_rows, commit, markers.state(shard, commit) != SHARD_NEW))
        try:
            self._export_shards(work, markers, summary, on_image)
            fragments, notes = self.fragment(rows)
            for split, value in fragments.items():
                write_fragment(self.dest, split, value)
            files, dest_notes = self.assemble(read_fragments(self.dest))
            for rel, data in files.items():
                write_atomic(self.dest / rel, data)
        except SaldataError as exc:  # a damaged chunk, an unreadable source image: say what was done
            kept = f", {summary.kept} there already" if summary.kept else ""
            raise type(exc)(
                f"{str(exc).rstrip('.')}; the export stopped with {summary.written} images written into "
                f"{self.dest}{kept} (whole files: once repaired, the same command finishes it)"
            ) from None
        summary.notes = dest_notes + notes
        return summary

    def _export_shards(self, work: list, markers: ShardMarkers, summary: ExportSummary, on_image) -> None:
        """Each shard's images, one thread per shard; ``summary`` counts them as they are written."""
        if not work:
            return
        stop, tally = threading.Event(), threading.Lock()

        def count(wrote: bool) -> None:
            with tally:
                summary.written, summary.kept = summary.written + wrote, summary.kept + (not wrote)
            on_image()

        workers = max(1, min(len(work), os.cpu_count() or 1))
        with ThreadPoolExecutor(workers, thread_name_prefix="saldata-export") as pool:
            tasks = [pool.submit(self._export_shard, markers, *item, stop, count) for item in work]
            try:
                for task in as_completed(tasks):
                    task.result()
            except BaseException:
                stop.set()  # the other shards stop at their next image; their files so far are whole
                pool.shutdown(wait=True, cancel_futures=True)
                raise

    def _export_shard(
        self, markers: ShardMarkers, shard: int, rows: list[dict], commit: str, resume: bool, stop, count
    ) -> None:
        """Write one shard's images (the files a partial run left are kept); ``count(wrote)`` after each image."""
        output = Output(self.output.path)  # a store handle of this thread's own
        markers.mark(shard, commit, SHARD_PARTIAL)
        for row in rows:
            if stop.is_set():
                return
            wrote = False
            for rel, make in self.image_files(output, row).items():
                path = self.dest / rel
                if resume and path.exists():  # renamed into place whole, so complete
                    continue
                write_atomic(path, make())
                fault_point("export-file", next(self._files_written), path)
                wrote = True
            count(wrote)
        markers.mark(shard, commit, SHARD_DONE)


def npy_bytes(value) -> bytes:
    """``np.save``'s bytes of an array, or of a dict of arrays (pickled: what ``np.load(...).item()`` reads)."""
    buffer = io.BytesIO()
    np.save(buffer, value, allow_pickle=isinstance(value, dict))
    return buffer.getvalue()


def json_bytes(value) -> bytes:
    return json.dumps(value, ensure_ascii=False, indent=1).encode()
