"""``saldata evaluate --objects``: does each word's map land on the objects of its image, and on the ones it names?

For every committed, done image with objects (``saldata objects`` adds them) and rows under
``--rows``, every word with rows, every chosen layer (and with ``--per-head`` every head): the
word's map, made exactly as ``evaluate`` makes it (``evaluate.image_maps``: the same rows, sum,
upsampling and blur), is scored against every object of the image (``grounding.ground``), and
``naming`` says whether the word names the object. The centre-bias map (``evaluate.centre_map``)
is scored against the same objects (``layer`` -1, ``word_index`` -1), the baseline a word's map
must beat. One dask task per store shard, as ``evaluate``.
"""

from __future__ import annotations

import os
import threading
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa

from saldata.analysis.evaluate import (
    EvalSettings,
    Unscored,
    centre_map,
    checked_layers,
    image_maps,
    settings_record,
    words_with_rows,
)
from saldata.analysis.grounding import Grounding, ImageObjects, ground
from saldata.analysis.naming import names_object, object_names
from saldata.analysis.rows import image_rows
from saldata.errors import ConfigError
from saldata.readers.output import Output
from saldata.schemas.catalog import STATUS_DONE
from saldata.schemas.evaluation import (
    HEAD_MEAN,
    NO_LAYER,
    NO_WORD,
    OBJECT_SCORES,
    UNIT_WORD,
    objects_schema,
)

# One mask decoded at a time: the decoder silences a numpy warning with warnings.catch_warnings, which
# swaps the process's filters and is not thread-safe (two threads' contexts would restore each other's).
_DECODE = threading.Lock()


@dataclass(frozen=True, slots=True)
class ImageWithObjects:
    """One image to score: its rows and its objects (the ``objects`` table's rows, with their names' forms)."""

    idx: int
    image_id: str
    rows: range
    objects: list[dict]  # object_id, source, category, forms (naming.object_names)


def score_objects(output: Output, settings: EvalSettings) -> tuple[pa.Table, Unscored]:
    """Every row of ``objects.parquet`` (module docstring), and what the row convention left unscored."""
    import dask

    layers = checked_layers(output, settings)
    images, images_without_rows = _images_with_objects(output, settings.rows)
    words, words_without_rows = words_with_rows(output, {image.idx: image.rows for image in images})
    shard_size = int(output.attrs["shard_size"])
    by_shard: dict[int, list[ImageWithObjects]] = {}
    for image in images:
        by_shard.setdefault(image.idx // shard_size, []).append(image)
    # The shared Output's catalog caches (object masks) are filled here, once, not by each thread.
    first = images[0].objects[0]
    output.object_mask(images[0].idx, first["object_id"], first["source"])
    tasks = [dask.delayed(shard_object_scores)(output, part, words, layers, settings) for part in by_shard.values()]
    parts = dask.compute(*tasks, scheduler="threads", num_workers=os.cpu_count())
    schema = objects_schema(settings_record(settings, layers))
    table = pa.concat_tables([pa.Table.from_pydict(part, schema=schema) for part in parts])
    return table, Unscored(images_without_rows, words_without_rows)


def shard_object_scores(
    output: Output, images: list[ImageWithObjects], words: dict[int, list[dict]], layers, settings: EvalSettings
) -> dict[str, list]:
    """The columns of ``objects.parquet`` for the images of one shard."""
    array = output.group[f"attn_{settings.grid}"]
    width, height = output.attrs["image_size"]
    size = (height, width)
    columns = _Columns()
    for image in images:
        with _DECODE:
            masks = [output.object_mask(image.idx, o["object_id"], o["source"]) for o in image.objects]
        objects = ImageObjects.of([o["object_id"] for o in image.objects], masks)
        nothing_named = np.zeros(len(image.objects), dtype=bool)
        columns.add(
            image, NO_LAYER, HEAD_MEAN, None, ground(centre_map(size, settings.blur_px), objects), nothing_named
        )
        image_words = words.get(image.idx, [])
        named = {
            w["word_index"]: np.array([names_object(w["word"], o["forms"]) for o in image.objects]) for w in image_words
        }
        for layer, head, _, word, prediction in image_maps(
            output, array, image.idx, image.rows, image_words, layers, settings, size, units=(UNIT_WORD,)
        ):
            columns.add(image, layer, head, word, ground(prediction, objects), named[word["word_index"]])
    return columns.data


class _Columns:
    """The table's columns, grown one scored map (one row per object) at a time."""

    def __init__(self):
        self.data: dict[str, list] = {name: [] for name in OBJECT_SCORES.names}

    def add(self, image: ImageWithObjects, layer: int, head: int, word: dict | None, scores: Grounding, named) -> None:
        n = len(image.objects)
        per_map = {
            "idx": image.idx,
            "image_id": image.image_id,
            "layer": layer,
            "head": head,
            "word_index": NO_WORD if word is None else word["word_index"],
            "word": None if word is None else word["word"],
        }
        for name, value in per_map.items():
            self.data[name].extend([value] * n)
        for name in ("object_id", "source", "category"):
            self.data[name].extend(o[name] for o in image.objects)
        self.data["mass_in_object"].extend(scores.mass_in_object.tolist())
        self.data["area_fraction"].extend(scores.area_fraction.tolist())
        self.data["ratio"].extend(None if np.isnan(r) else r for r in scores.ratio.tolist())
        self.data["pointing_hit"].extend(scores.pointing_hit.tolist())
        self.data["named"].extend(np.asarray(named, dtype=bool).tolist())


def _images_with_objects(output: Output, convention: str) -> tuple[list[ImageWithObjects], int]:
    """Every done image with objects and rows under ``convention``, and how many had objects but no rows."""
    objects = output.objects()
    if objects.num_rows == 0:
        raise ConfigError(
            f"{output.path} has no objects; add them first with saldata objects {output.path} "
            "--coco instances_val2014.json (or --visual-genome DIR), then rerun evaluate --objects."
        )
    by_image: dict[int, list[dict]] = {}
    for o in objects.sort_by([("idx", "ascending"), ("source", "ascending"), ("object_id", "ascending")]).to_pylist():
        forms = object_names(o["source"], o["category"], o["names"], o["synsets"])
        by_image.setdefault(o["idx"], []).append(
            {"object_id": o["object_id"], "source": o["source"], "category": o["category"], "forms": forms}
        )
    done = output.sql(
        f"SELECT idx, image_id, n_tokens, ended_with_eos FROM images WHERE status = '{STATUS_DONE}' ORDER BY idx"
    ).to_pylist()
    images, without_rows = [], 0
    for image in done:
        if image["idx"] not in by_image:
            continue
        rows = image_rows(convention, image["n_tokens"], image["ended_with_eos"])
        if not rows:
            without_rows += 1
            continue
        images.append(ImageWithObjects(image["idx"], image["image_id"], rows, by_image[image["idx"]]))
    if not images:
        raise ConfigError(
            f"{output.path}: none of the {len(by_image)} images with objects is done with a row under --rows "
            f"{convention}, so there is nothing to score."
        )
    return images, without_rows


def write_objects(out: Path, table: pa.Table, run: str | None = None) -> Path:
    """``OUT/eval/objects.parquet`` (``OUT/eval/<run>/`` for a named run), written whole."""
    from saldata.storage.eval_tables import write_eval_table

    return write_eval_table(out, table, run)
