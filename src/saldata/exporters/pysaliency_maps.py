"""``--format pysaliency``: one saliency map per image, laid out for ``pysaliency.SaliencyMapModelFromDirectory``.

``maps/<stem>.npy`` holds an image's map for one layer, grid and unit at the stored image size
(float32, height x width): the unit that ``saldata evaluate`` scores (``analysis/evaluate.py``:
head-averaged token maps made a unit, upsampled bilinearly, no blur). pysaliency finds a
stimulus's map by file stem, the stimulus's path with its suffix dropped, matched from the end:
``<stem>`` is the image id without the source file's suffix (``COCO_val2014_000000000001``,
CAT2000's ``Action/001``). ``stimuli.json`` lists the source images of the maps, what
``pysaliency.FileStimuli`` takes. An image without generated tokens has no map and is left out of both.
"""

from __future__ import annotations

from pathlib import PurePosixPath

import numpy as np

from saldata.analysis.evaluate import description_map, layer_maps, on_image
from saldata.errors import ConfigError
from saldata.exporters.base import Exporter, json_bytes, npy_bytes
from saldata.readers.output import GRIDS
from saldata.schemas.evaluation import UNIT_DESCRIPTION

FORMAT = "pysaliency"
MAPS_DIRNAME = "maps"
STIMULI_FILE = "stimuli.json"
UNITS = {UNIT_DESCRIPTION: description_map}  # units that make one map per image, by --unit name


def map_stem(image_id: str, source_path: str) -> str:
    """The map's path under ``maps/`` without ``.npy``: the id, less the source's suffix where the id has it
    (folder ids are relative paths, suffix included)."""
    suffix = PurePosixPath(source_path).suffix
    return image_id[: -len(suffix)] if suffix and image_id.endswith(suffix) else image_id


class PysaliencyExporter(Exporter):
    name = FORMAT

    def __init__(self, output, dest, settings):
        super().__init__(output, dest, settings)
        self.refuse("--annotations", settings.annotations)
        self.grid = settings.grid or GRIDS[0]
        self.unit = settings.unit or UNIT_DESCRIPTION
        if self.grid not in GRIDS:
            raise ConfigError(f"--grid must be one of {', '.join(GRIDS)}, not {self.grid!r}.")
        if self.unit not in UNITS:
            raise ConfigError(f"--unit must be one of {', '.join(UNITS)}, not {self.unit!r}.")
        width, height = output.attrs["image_size"]
        self.size = (int(height), int(width))

    def settings_record(self) -> dict:
        return {"layer": self.layer, "grid": self.grid, "unit": self.unit}

    def rows(self) -> list[dict]:
        rows = self.done_rows("n_tokens > 0")  # a map is made of the description's tokens
        seen: dict[str, str] = {}
        for row in rows:
            stem = map_stem(row["image_id"], row["source_path"])
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
        taken = {stem: split for split, entries in fragments.items() if split not in splits for stem, _ in entries}
        for row in rows:
            stem = map_stem(row["image_id"], row["source_path"])
            if stem in taken:
                raise ConfigError(
                    f"{MAPS_DIRNAME}/{stem}.npy in {self.dest} is the map of an image of split {taken[stem]}; "
                    f"pysaliency matches maps to stimuli by file name, so export split {row['split']} into another "
                    "folder."
                )

    def image_files(self, output, row: dict) -> dict:
        def make() -> bytes:
            maps = layer_maps(output, output.group[f"attn_{self.grid}"], row["idx"], row["n_tokens"], self.layer)
            small = UNITS[self.unit](maps.mean(axis=1))  # heads averaged, as evaluate's head -1
            return npy_bytes(on_image(small, self.size).astype(np.float32))

        return {f"{MAPS_DIRNAME}/{map_stem(row['image_id'], row['source_path'])}.npy": make}

    def fragment(self, rows: list[dict]) -> tuple[dict, list[str]]:
        fragments: dict[str, list] = {}
        for row in rows:
            fragments.setdefault(row["split"], []).append(
                [map_stem(row["image_id"], row["source_path"]), row["source_path"]]
            )
        notes = []
        left_out = self.done_rows("n_tokens = 0")
        if left_out:
            notes.append(f"{len(left_out)} done images generated no token, so have no map; they are not listed")
        height, width = self.size
        resized = sum((row["orig_width"], row["orig_height"]) != (width, height) for row in rows)
        if resized:
            notes.append(
                f"{resized} stimuli are not {width}x{height}, the size of their maps: pysaliency reads fixations "
                "in each stimulus's own pixels, so score these with fixations in the stored frame (the catalog's "
                "fixations.x, .y) or with stimuli resized to it"
            )
        return fragments, notes

    def assemble(self, fragments: dict) -> tuple[dict[str, bytes], list[str]]:
        stimuli = [source for entries in fragments.values() for _, source in entries]
        height, width = self.size
        note = (
            f"{len(stimuli)} maps in {self.dest / MAPS_DIRNAME} (layer {self.layer}, {self.grid} grid, {self.unit}, "
            f"{width}x{height}); stimuli: {self.dest / STIMULI_FILE}"
        )
        return {STIMULI_FILE: json_bytes(stimuli)}, [note]
