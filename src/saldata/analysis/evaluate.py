"""Score captured attention against human attention: ``saldata evaluate``.

For every committed, done image with ground truth, each captured layer's maps become units (the
description's mean map, each word's summed map; head-averaged, or per head), are upsampled to
the stored image size (``metrics.upsample_bilinear``), optionally blurred, and scored with the
saliency benchmark's metrics against the image's fixation points (the catalog's ``fixations``
table), other images' fixation points (``sauc``, ``analysis/shuffled.py``) and its stored saliency
map. A centre-bias map is scored beside them on the same images.
The store rows a unit is made of follow one convention (``analysis/rows.py``; ``--rows``): by
default the research's, rows 1 to n_tokens - 1 and the EOS step, where a word keeps its tokens'
rows but token 0 and the EOS row belongs to the description only. An image with no rows, and a
word with none, are not scored (``Unscored`` counts them).
One dask task per store shard reads that shard's rows and returns its scores.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import pyarrow as pa

from saldata.analysis import metrics
from saldata.analysis.rows import ROWS_RESEARCH, check_convention, image_rows, word_rows
from saldata.analysis.shuffled import ShuffledNegatives
from saldata.datasets.ground_truth import GT_OK
from saldata.errors import ConfigError
from saldata.readers.output import GRIDS, Output
from saldata.schemas.catalog import STATUS_DONE
from saldata.schemas.evaluation import (
    FIXATION_METRICS,
    HEAD_MEAN,
    METRIC_NAMES,
    NO_LAYER,
    NO_WORD,
    SHUFFLED_METRIC,
    UNIT_CENTRE_BIAS,
    UNIT_DESCRIPTION,
    UNIT_WORD,
    metrics_schema,
)

FIXATIONS_SINCE = 4  # the schema version whose catalog first holds fixation points


@dataclass(frozen=True, slots=True)
class EvalSettings:
    layers: tuple[int, ...] | None = None  # decoder layers to score; None: every captured layer
    per_head: bool = False
    grid: str = "highres"
    blur_px: float = 0.0
    rows: str = ROWS_RESEARCH  # the row convention (analysis/rows.py): research or all-tokens

    def __post_init__(self):
        check_convention(self.rows)
        if self.grid not in GRIDS:
            raise ConfigError(f"--grid must be 'highres' or 'base', not {self.grid!r}.")
        if not math.isfinite(self.blur_px) or self.blur_px < 0:
            raise ConfigError(f"--blur must be a number of pixels >= 0, not {self.blur_px}.")


@dataclass(frozen=True, slots=True)
class ImageTruth:
    """What one image's maps are scored against, at the stored image size."""

    idx: int
    image_id: str
    rows: range  # the store rows its units are made of (analysis/rows.py), never empty
    x: np.ndarray  # fixation points, stored-image pixels, 0-based; duplicates kept
    y: np.ndarray
    saliency: np.ndarray | None = None  # (height, width) float64, read by the shard's task (not all at once)
    other_x: np.ndarray | None = None  # sauc's negatives (analysis/shuffled.py), gathered by the shard's task too
    other_y: np.ndarray | None = None


@dataclass(frozen=True, slots=True)
class Undefined:
    """Scores that are null because the metric is undefined for the image (e.g. no fixations)."""

    count: int
    first: str | None


@dataclass(frozen=True, slots=True)
class Unscored:
    """What the row convention leaves without a map: images and words with no rows, so no row in the table."""

    images: int = 0  # done images with ground truth and no rows (e.g. under research: one token and no EOS)
    words: int = 0  # words of scored images made only of rows the convention drops (under research: token 0)


def score(prediction: np.ndarray, truth: ImageTruth, problems: list[str]) -> dict[str, float | None]:
    """Every metric of one map already at the image's size; an undefined one is None, and says why."""
    scores: dict[str, float | None] = {}
    ranked = {"sorted_values": np.sort(prediction, axis=None)}  # one sort for both AUCs
    for name in METRIC_NAMES:
        function = getattr(metrics, name)
        try:
            if name == SHUFFLED_METRIC:
                scores[name] = function(prediction, truth.x, truth.y, truth.other_x, truth.other_y)
            elif name in FIXATION_METRICS:
                scores[name] = function(prediction, truth.x, truth.y, **(ranked if name.startswith("auc") else {}))
            else:
                scores[name] = function(prediction, truth.saliency)
        except metrics.MetricInputError as exc:
            scores[name] = None
            problems.append(f"image {truth.image_id}, {name}: {exc}")
    return scores


def layer_maps(output: Output, array, idx: int, rows: range, layer: int) -> np.ndarray:
    """One image's maps of store rows ``rows`` at one layer, float64 (len(rows), heads, grid rows, grid cols)."""
    return np.asarray(output.layers.rows(array, idx, rows.stop, layer), dtype=np.float64)[rows.start :]


def description_map(per_row: np.ndarray) -> np.ndarray:
    """The ``description`` unit: the mean of the maps of the image's rows (n, grid rows, grid cols)."""
    return per_row.mean(axis=0)


def on_image(small: np.ndarray, size: tuple[int, int], blur_px: float = 0.0) -> np.ndarray:
    """A unit's map at the stored image size (height, width): upsampled, then blurred if asked."""
    return metrics.blur(metrics.upsample_bilinear(small, size), blur_px)


def unit_maps(maps: np.ndarray, rows: range, words: list[dict], per_head: bool):
    """(head, unit, word, map) for one layer's maps ``maps`` of store rows ``rows`` (len(rows), heads, ...).

    A word's map is the sum of the maps of its rows (``word_rows``); ``words`` must all have rows.
    """
    heads = [(HEAD_MEAN, maps.mean(axis=1))]
    if per_head:
        heads += [(h, maps[:, h]) for h in range(maps.shape[1])]
    for head, per_row in heads:
        yield head, UNIT_DESCRIPTION, None, description_map(per_row)
        for w in words:
            kept = word_rows(rows, w["first_position"], w["last_position"])
            yield head, UNIT_WORD, w, per_row[kept.start - rows.start : kept.stop - rows.start].sum(axis=0)


def centre_map(size: tuple[int, int], blur_px: float = 0.0) -> np.ndarray:
    """The centre-bias baseline at the stored image size, blurred as the units' maps are."""
    return metrics.blur(metrics.centre_bias(*size), blur_px)


def image_maps(output: Output, array, idx: int, rows: range, words: list[dict], layers, settings, size, units=None):
    """(layer, head, unit, word, map at ``size``) of one image: the maps every score of ``evaluate`` is
    computed on (``metrics.parquet`` and, with ``--objects``, ``objects.parquet``). ``units``: the units to
    make (default all: description and words), chosen before upsampling."""
    for layer in layers:
        maps = layer_maps(output, array, idx, rows, layer)
        for head, unit, word, small in unit_maps(maps, rows, words, settings.per_head):
            if units is None or unit in units:
                yield layer, head, unit, word, on_image(small, size, settings.blur_px)


def shard_scores(
    path: Path,
    truths: list[ImageTruth],
    words: dict[int, list[dict]],
    layers: tuple[int, ...],
    settings: EvalSettings,
    negatives: ShuffledNegatives,
) -> tuple[list[dict], list[str]]:
    """Rows of ``metrics.parquet`` for the images of one shard, and why any score is null."""
    output = Output(path)
    array = output.group[f"attn_{settings.grid}"]
    rows, problems = [], []
    for truth in truths:
        # Read here, one image at a time: a dataset's saliency maps at once would not fit in memory.
        saliency = np.asarray(output.group["saliency_map"][truth.idx], dtype=np.float64)
        other_x, other_y = negatives.points(truth.idx)
        truth = replace(truth, saliency=saliency, other_x=other_x, other_y=other_y)
        size = truth.saliency.shape
        centre = centre_map(size, settings.blur_px)
        rows.append(_row(truth, NO_LAYER, HEAD_MEAN, UNIT_CENTRE_BIAS, None, score(centre, truth, problems)))
        unit_words = words.get(truth.idx, [])
        for layer, head, unit, word, prediction in image_maps(
            output, array, truth.idx, truth.rows, unit_words, layers, settings, size
        ):
            rows.append(_row(truth, layer, head, unit, word, score(prediction, truth, problems)))
    return rows, problems


def _row(truth: ImageTruth, layer: int, head: int, unit: str, word: dict | None, scores: dict) -> dict:
    return {
        "idx": truth.idx,
        "image_id": truth.image_id,
        "layer": layer,
        "head": head,
        "unit": unit,
        "word_index": NO_WORD if word is None else word["word_index"],
        "word": None if word is None else word["word"],
        **scores,
    }


def evaluate(output: Output, settings: EvalSettings) -> tuple[pa.Table, Undefined, Unscored]:
    """Score every committed, done image with ground truth and rows; one dask task per store shard."""
    import dask

    layers = checked_layers(output, settings)
    truths, images_without_rows, negatives = _image_truths(output, settings.rows)
    words, words_without_rows = words_with_rows(output, {truth.idx: truth.rows for truth in truths})
    shard_size = int(output.attrs["shard_size"])
    by_shard: dict[int, list[ImageTruth]] = {}
    for truth in truths:
        by_shard.setdefault(truth.idx // shard_size, []).append(truth)
    tasks = [
        dask.delayed(shard_scores)(output.path, part, words, layers, settings, negatives) for part in by_shard.values()
    ]
    results = dask.compute(*tasks, scheduler="threads", num_workers=os.cpu_count()) if tasks else []
    rows = [row for part_rows, _ in results for row in part_rows]
    problems = [p for _, part_problems in results for p in part_problems]
    record = settings_record(settings, layers)
    table = pa.Table.from_pylist(rows, schema=metrics_schema(record))
    return (
        table,
        Undefined(len(problems), problems[0] if problems else None),
        Unscored(images_without_rows, words_without_rows),
    )


def settings_record(settings: EvalSettings, layers: tuple[int, ...]) -> dict:
    """What ``metrics.parquet`` records of how it was scored (its schema metadata, ``saldata.evaluation``)."""
    from saldata import __version__

    return {
        "rows": settings.rows,
        "grid": settings.grid,
        "blur_px": settings.blur_px,
        "per_head": settings.per_head,
        "layers": list(layers),
        "saldata_version": __version__,
    }


def planned_record(output: Output, settings: EvalSettings) -> dict:
    """The record ``evaluate`` will write, known before any scoring (to refuse a replacement first)."""
    return settings_record(settings, _chosen_layers(output, settings))


def checked_layers(output: Output, settings: EvalSettings) -> tuple[int, ...]:
    """The layers ``settings`` chooses, after checking the output can give what they ask."""
    layers = _chosen_layers(output, settings)
    if settings.per_head and output.attrs.get("heads") == "mean":
        raise ConfigError(
            f"{output.path} stored the heads' mean (--heads mean); --per-head needs an extraction with --heads all."
        )
    width, height = output.attrs["image_size"]
    if settings.blur_px > max(width, height):  # wider blurs are a flat map (and a kernel too large to build)
        raise ConfigError(
            f"--blur {settings.blur_px:.0f} px is wider than the {width}x{height} images; give at most {max(width, height)}."
        )
    return layers


def _chosen_layers(output: Output, settings: EvalSettings) -> tuple[int, ...]:
    if settings.layers is None:
        return output.layers.layers
    return tuple(sorted({output.layers.resolve(layer) for layer in settings.layers}))


def _image_truths(output: Output, convention: str) -> tuple[list[ImageTruth], int, ShuffledNegatives]:
    """Ground truth of every done image that has it and has rows under ``convention`` (fixation points from
    the catalog; the stored saliency map is read later, by the shard's task), how many had no rows, and the
    pool of sauc's negatives (every done image with ground truth, rows or not).
    Its refusals are usage errors (ConfigError): the output is intact, only not one evaluate can score."""
    if output.attrs["schema_version"] < FIXATIONS_SINCE:
        raise ConfigError(
            f"{output.path} (schema_version {output.attrs['schema_version']}) has no fixations table; re-extract it "
            "with this saldata (--overwrite) to evaluate it."
        )
    images = output.sql(
        f"SELECT idx, image_id, n_tokens, ended_with_eos FROM images WHERE status = '{STATUS_DONE}' "
        f"AND gt_status = '{GT_OK}' ORDER BY idx"
    ).to_pylist()
    if not images:
        raise ConfigError(
            f"{output.path}: no done image has ground truth (images.gt_status = 'ok'), so there is nothing to score; "
            "evaluate needs a dataset with fixations and saliency maps (saldata datasets lists them)."
        )
    points = output.sql("SELECT idx, x, y FROM fixations ORDER BY idx, subject, fixation_index")
    idx = points.column("idx").to_numpy()
    x, y = points.column("x").to_numpy(), points.column("y").to_numpy()
    truths = []
    for image in images:
        rows = image_rows(convention, image["n_tokens"], image["ended_with_eos"])
        if not rows:
            continue
        lo, hi = np.searchsorted(idx, image["idx"], "left"), np.searchsorted(idx, image["idx"], "right")
        truths.append(ImageTruth(image["idx"], image["image_id"], rows, x[lo:hi], y[lo:hi]))
    if not truths:
        raise ConfigError(
            f"{output.path}: none of the {len(images)} done images with ground truth has a row under --rows "
            f"{convention} (research: tokens 1 on and the EOS step; all-tokens: every token), so there is nothing "
            "to score."
        )
    negatives = ShuffledNegatives.of(idx, x, y, [image["idx"] for image in images])
    return truths, len(images) - len(truths), negatives


def words_with_rows(output: Output, rows_of: dict[int, range]) -> tuple[dict[int, list[dict]], int]:
    """The words of each image of ``rows_of`` (idx -> its rows) that keep at least one row, and how many of
    those images' words keep none."""
    words: dict[int, list[dict]] = {}
    dropped = 0
    query = "SELECT idx, word_index, word, first_position, last_position FROM words ORDER BY idx, word_index"
    for w in output.sql(query).to_pylist():
        if w["idx"] not in rows_of:
            continue
        if word_rows(rows_of[w["idx"]], w["first_position"], w["last_position"]):
            words.setdefault(w["idx"], []).append(w)
        else:
            dropped += 1
    return words, dropped


def write_metrics(out: Path, table: pa.Table, run: str | None = None) -> Path:
    """``OUT/eval/metrics.parquet`` (``OUT/eval/<run>/`` for a named run), written whole."""
    from saldata.storage.eval_tables import write_eval_table

    return write_eval_table(out, table, run)


@dataclass(frozen=True, slots=True)
class Level:
    """One line of the summary: a layer's description maps (head mean), or the centre bias."""

    layer: int | None  # None: the centre bias
    n_images: int
    mean: dict[str, float]
    stderr: dict[str, float]


BEST_BY = "nss"  # the benchmark's headline metric names the best layer


def summarise(table: pa.Table) -> tuple[list[Level], Level]:
    """Mean and standard error of each metric by layer (description maps, heads averaged), and the centre bias."""
    columns = table.to_pydict()
    groups: dict[int | None, list[int]] = {}  # by layer; None: the centre bias
    for i, (unit, head, layer) in enumerate(zip(columns["unit"], columns["head"], columns["layer"])):
        if head == HEAD_MEAN and unit in (UNIT_DESCRIPTION, UNIT_CENTRE_BIAS):
            groups.setdefault(layer if unit == UNIT_DESCRIPTION else None, []).append(i)

    def level(layer, rows: list[int]) -> Level:
        mean, stderr = {}, {}
        for name in METRIC_NAMES:
            values = np.array([columns[name][i] for i in rows if columns[name][i] is not None], np.float64)
            mean[name] = float(values.mean()) if len(values) else math.nan
            stderr[name] = float(values.std(ddof=1) / math.sqrt(len(values))) if len(values) > 1 else math.nan
        return Level(layer, len(rows), mean, stderr)

    layers = [level(layer, rows) for layer, rows in sorted((k, v) for k, v in groups.items() if k is not None)]
    return layers, level(None, groups.get(None, []))


def best_layer(layers: list[Level]) -> Level | None:
    scored = [level for level in layers if not math.isnan(level.mean[BEST_BY])]
    return max(scored, key=lambda level: level.mean[BEST_BY]) if scored else None
