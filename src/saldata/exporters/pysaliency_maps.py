"""``--format pysaliency``: what pysaliency scores, with no code between saldata and it.

DEST holds, for every done image whose rows (``--rows``, ``analysis/rows.py``) are not empty:

- ``maps/<stem>.npy``: the image's map for one layer, grid, unit and row convention at the
  stored image size (float32, height x width): the unit ``saldata evaluate`` scores
  (``analysis/evaluate.py``: the maps of the image's rows, heads averaged, made a unit,
  upsampled bilinearly, no blur), for ``pysaliency.SaliencyMapModelFromDirectory``;
- ``stimuli/<stem>.<ext>``: the stimulus, at the stored size, so that pysaliency's shape checks
  and fixation coordinates hold: a symlink to the source image where that file already has the
  stored size and no EXIF turn, else ``<stem>.png``, the RGB pixels the model saw (the
  extraction's own decoding and resize);
- ``ground_truth/<stem>.png``: the stored ground-truth saliency map (8-bit grey, stored size),
  for images with ground truth (``images.gt_status = 'ok'``), a second map directory;
- ``stimuli.json``: the stimuli's paths relative to DEST (so DEST may move), split by split
  (sorted), each in idx order: joined to DEST, what ``pysaliency.FileStimuli`` takes;
- ``fixations.npz``: the catalog's fixation points of the images with ground truth, in the
  stimuli's pixels (stored size, 0-based, duplicates kept): ``x``, ``y``, ``t`` (the point's
  order within its subject, ``fixations.fixation_index``: the datasets give no times), ``n``
  (the stimulus, an index into ``stimuli.json``), ``subject`` (-1 where the dataset has none),
  one value per point; and ``with_ground_truth``, one bool per stimulus.

pysaliency finds a stimulus's map by file stem, the stimulus's path with its suffix dropped,
matched from the end: ``<stem>`` is the image's name in every export (``export_name``), its id
without the source file's suffix, '/' made '__' (``COCO_val2014_000000000001``, CAT2000's
``Action__001``, a folder's ``sub/X.jpg`` ``sub__X``). Each split's fixation points wait in
DEST's marker folder until ``fixations.npz`` is assembled from every split in DEST.
"""

from __future__ import annotations

import io
from pathlib import Path, PurePosixPath
from urllib.parse import quote

import numpy as np

from saldata.analysis.evaluate import description_map, layer_maps, on_image
from saldata.analysis.rows import check_convention, image_rows
from saldata.datasets.ground_truth import GT_OK
from saldata.errors import ConfigError
from saldata.exporters.base import Exporter, export_name, json_bytes, npy_bytes
from saldata.exporters.destination import MARKERS_DIRNAME, link_atomic
from saldata.readers.output import GRIDS
from saldata.schemas.evaluation import UNIT_DESCRIPTION
from saldata.storage.commits import write_atomic
from saldata.words import plural

FORMAT = "pysaliency"
MAPS_DIRNAME = "maps"
STIMULI_DIRNAME = "stimuli"
GROUND_TRUTH_DIRNAME = "ground_truth"
STIMULI_FILE = "stimuli.json"
FIXATIONS_FILE = "fixations.npz"
NO_SUBJECT = -1  # fixations.npz's subject where the dataset names none (catalog: null)
EXIF_ORIENTATION = 0x0112
UNITS = {UNIT_DESCRIPTION: description_map}  # units that make one map per image, by --unit name


def source_fits(source_path: str, size: tuple[int, int]) -> bool:
    """Whether the source file, read as pysaliency reads it (no EXIF turn), has ``size`` = (width, height)."""
    from PIL import Image

    try:
        with Image.open(source_path) as image:  # the header only
            return image.size == tuple(size) and image.getexif().get(EXIF_ORIENTATION, 1) == 1
    except Exception as exc:  # whatever Pillow throws on a file it cannot read: the image, not the export
        raise ConfigError(
            f"{source_path}: cannot read the source image ({type(exc).__name__}); --format pysaliency writes the "
            "stimuli, so it needs the images where the extraction read them."
        ) from None


def _fixations_path(dest: Path, split: str) -> Path:
    return dest / MARKERS_DIRNAME / f"fixations-{quote(split, safe='')}.npz"


class PysaliencyExporter(Exporter):
    name = FORMAT

    def __init__(self, output, dest, settings):
        super().__init__(output, dest, settings)
        self.refuse("--annotations", settings.annotations)
        self.grid = settings.grid or GRIDS[0]
        self.unit = settings.unit or UNIT_DESCRIPTION
        self.convention = check_convention(settings.rows)
        if self.grid not in GRIDS:
            raise ConfigError(f"--grid must be one of {', '.join(GRIDS)}, not {self.grid!r}.")
        if self.unit not in UNITS:
            raise ConfigError(f"--unit must be one of {', '.join(UNITS)}, not {self.unit!r}.")
        width, height = output.attrs["image_size"]
        self.size = (int(height), int(width))

    def settings_record(self) -> dict:
        return {"layer": self.layer, "grid": self.grid, "unit": self.unit, "rows": self.convention}

    def image_rows(self, row: dict) -> range:
        """The store rows of ``row``'s map under the export's convention."""
        return image_rows(self.convention, row["n_tokens"], row.get("ended_with_eos"))

    def rows(self) -> list[dict]:
        rows = [row for row in self.done_rows() if self.image_rows(row)]  # a map is made of the image's rows
        seen: dict[str, str] = {}
        for row in rows:
            stem = export_name(row["image_id"], row["source_path"])
            if stem in seen:
                raise ConfigError(
                    f"images {seen[stem]!r} and {row['image_id']!r} would both be {MAPS_DIRNAME}/{stem}.npy; "
                    "pysaliency matches maps to stimuli by file name, so export their splits one at a time (--split)."
                )
            seen[stem] = row["image_id"]
        return rows

    def check_joining(self, rows: list[dict], fragments: dict) -> None:
        """Maps of other splits already in DEST must keep their names: the folder is flat."""
        splits = {row["split"] for row in rows}
        taken = {entry[0]: split for split, entries in fragments.items() if split not in splits for entry in entries}
        for row in rows:
            stem = export_name(row["image_id"], row["source_path"])
            if stem in taken:
                raise ConfigError(
                    f"{MAPS_DIRNAME}/{stem}.npy in {self.dest} is the map of an image of split {taken[stem]}; "
                    f"pysaliency matches maps to stimuli by file name, so export split {row['split']} into another "
                    "folder."
                )

    def stimulus(self, row: dict) -> tuple[str, bool]:
        """The stimulus's path relative to DEST, and whether it is a link to the source (else a PNG to write)."""
        stem = export_name(row["image_id"], row["source_path"])
        height, width = self.size
        if source_fits(row["source_path"], (width, height)):
            return f"{STIMULI_DIRNAME}/{stem}{PurePosixPath(row['source_path']).suffix}", True
        return f"{STIMULI_DIRNAME}/{stem}.png", False

    def image_files(self, output, row: dict) -> dict:
        stem = export_name(row["image_id"], row["source_path"])

        def unit_map() -> bytes:
            maps = layer_maps(output, output.group[f"attn_{self.grid}"], row["idx"], self.image_rows(row), self.layer)
            small = UNITS[self.unit](maps.mean(axis=1))  # heads averaged, as evaluate's head -1
            return npy_bytes(on_image(small, self.size).astype(np.float32))

        def stimulus_png() -> bytes:
            from saldata.pipelines.preprocess import ImageProblem, decode_rgb

            height, width = self.size
            try:
                pixels, _ = decode_rgb(row["source_path"], (width, height))
            except ImageProblem as exc:
                raise ConfigError(f"{row['source_path']}: {exc}; --format pysaliency writes the stimuli") from None
            return png_bytes(pixels)

        def ground_truth() -> bytes:
            return png_bytes(np.asarray(output.group["saliency_map"][row["idx"]], dtype=np.uint8))

        files = {f"{MAPS_DIRNAME}/{stem}.npy": unit_map}
        path, linked = self.stimulus(row)
        if not linked:  # links are made with the JSON files (fragment)
            files[path] = stimulus_png
        if row["gt_status"] == GT_OK:
            files[f"{GROUND_TRUTH_DIRNAME}/{stem}.png"] = ground_truth
        return files

    def fragment(self, rows: list[dict]) -> tuple[dict, list[str]]:
        """Per split: [stem, stimulus path, has ground truth] of each image; its fixation points aside."""
        fragments: dict[str, list] = {}
        written = 0
        for row in rows:
            path, linked = self.stimulus(row)
            if linked:
                link_atomic(self.dest / path, row["source_path"])
            written += not linked
            entry = [export_name(row["image_id"], row["source_path"]), path]
            fragments.setdefault(row["split"], []).append([*entry, row["gt_status"] == GT_OK])
        for split in fragments:
            split_rows = [row for row in rows if row["split"] == split]
            write_atomic(_fixations_path(self.dest, split), self._split_fixations(split_rows))
        notes = []
        left_out = [row for row in self.done_rows() if not self.image_rows(row)]
        if left_out:
            notes.append(
                f"{len(left_out)} done images have no row under --rows {self.convention} (research: tokens 1 on and "
                "the EOS step; all-tokens: every token), so have no map; they are not listed"
            )
        if written:
            height, width = self.size
            notes.append(
                f"{written} stimuli written as {width}x{height} PNGs (the pixels the model saw): their source has "
                "another size or an EXIF turn; the others link to the source"
            )
        return fragments, notes

    def _split_fixations(self, rows: list[dict]) -> bytes:
        """One split's fixation points, ``n`` counted within the split (``assemble`` adds the offset)."""
        position = {row["idx"]: i for i, row in enumerate(rows) if row["gt_status"] == GT_OK}
        table = self.output.sql(
            "SELECT idx, subject, fixation_index, x, y FROM fixations ORDER BY idx, subject, fixation_index"
        )
        wanted = np.array(sorted(position), dtype=np.int64)
        idx = table.column("idx").to_numpy()
        keep = np.isin(idx, wanted)
        n = np.array([position[i] for i in wanted.tolist()], dtype=np.int64)[np.searchsorted(wanted, idx[keep])]
        arrays = {
            "x": table.column("x").to_numpy()[keep].astype(np.float64),
            "y": table.column("y").to_numpy()[keep].astype(np.float64),
            "t": table.column("fixation_index").to_numpy()[keep].astype(np.float64),
            "n": n,
            "subject": table.column("subject").fill_null(NO_SUBJECT).to_numpy()[keep].astype(np.int64),
        }
        return npz_bytes(arrays)

    def assemble(self, fragments: dict) -> tuple[dict[str, bytes], list[str]]:
        stimuli = [path for entries in fragments.values() for _, path, _ in entries]
        with_truth = np.array([truth for entries in fragments.values() for _, _, truth in entries], dtype=bool)
        parts, offset = [], 0
        for split, entries in fragments.items():
            with np.load(_fixations_path(self.dest, split)) as split_points:
                part = {name: split_points[name] for name in ("x", "y", "t", "n", "subject")}
            part["n"] = part["n"] + offset
            parts.append(part)
            offset += len(entries)
        points = {name: np.concatenate([p[name] for p in parts]) for name in ("x", "y", "t", "n", "subject")}
        height, width = self.size
        note = (
            f"{plural(len(stimuli), 'map')} in {self.dest / MAPS_DIRNAME} (layer {self.layer}, {self.grid} grid, {self.unit}, "
            f"{self.convention} rows, {width}x{height}); stimuli at {width}x{height}: {self.dest / STIMULI_FILE}; "
            f"{plural(len(points['x']), 'fixation point')} of {plural(int(with_truth.sum()), 'image')} with ground truth, in the "
            f"stimuli's pixels: {self.dest / FIXATIONS_FILE}; their saliency maps: {self.dest / GROUND_TRUTH_DIRNAME}"
        )
        files = {
            FIXATIONS_FILE: npz_bytes({**points, "with_ground_truth": with_truth}),
            STIMULI_FILE: json_bytes(stimuli),
        }
        return files, [note]


def png_bytes(pixels: np.ndarray) -> bytes:
    """A PNG of ``pixels``, (height, width) grey or (height, width, 3) RGB, uint8."""
    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="PNG")
    return buffer.getvalue()


def npz_bytes(arrays: dict[str, np.ndarray]) -> bytes:
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    return buffer.getvalue()
