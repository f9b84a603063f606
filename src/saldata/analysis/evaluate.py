"""Score captured attention against human attention: ``saldata evaluate``.

For every committed, done image with ground truth, each captured layer's maps become units (the
description's mean map, each word's summed map; head-averaged, or per head), are upsampled to
the stored image size (``metrics.upsample_bilinear``), optionally blurred, and scored with the
saliency benchmark's metrics against the image's fixation points (the catalog's ``fixations``
table) and its stored saliency map. A centre-bias map is scored beside them on the same images.
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
from saldata.datasets.ground_truth import GT_OK
from saldata.errors import ConfigError, StoreError
from saldata.readers.output import GRIDS, Output
from saldata.schemas.catalog import STATUS_DONE
from saldata.schemas.evaluation import (
    EVAL_DIRNAME,
    HEAD_MEAN,
    METRIC_NAMES,
    METRICS,
    METRICS_FILE,
    UNIT_CENTRE_BIAS,
    UNIT_DESCRIPTION,
    UNIT_WORD,
)
from saldata.storage.location import as_out

FIXATIONS_SINCE = 4  # the schema version whose catalog first holds fixation points


@dataclass(frozen=True, slots=True)
class EvalSettings:
    layers: tuple[int, ...] | None = None  # decoder layers to score; None: every captured layer
    per_head: bool = False
    grid: str = "highres"
    blur_px: float = 0.0

    def __post_init__(self):
        if self.grid not in GRIDS:
            raise ConfigError(f"--grid must be 'highres' or 'base', not {self.grid!r}.")
        if not math.isfinite(self.blur_px) or self.blur_px < 0:
            raise ConfigError(f"--blur must be a number of pixels >= 0, not {self.blur_px}.")


@dataclass(frozen=True, slots=True)
class ImageTruth:
    """What one image's maps are scored against, at the stored image size."""

    idx: int
    image_id: str
    n_tokens: int
    x: np.ndarray  # fixation points, stored-image pixels, 0-based; duplicates kept
    y: np.ndarray
    saliency: np.ndarray | None = None  # (height, width) float64, read by the shard's task (not all at once)


@dataclass(frozen=True, slots=True)
class Undefined:
    """Scores that are null because the metric is undefined for the image (e.g. no fixations)."""

    count: int
    first: str | None


def score(prediction: np.ndarray, truth: ImageTruth, problems: list[str]) -> dict[str, float | None]:
    """Every metric of one map already at the image's size; an undefined one is None, and says why."""
    scores: dict[str, float | None] = {}
    for name in METRIC_NAMES:
        function = getattr(metrics, name)
        try:
            if name in ("nss", "auc_judd"):
                scores[name] = function(prediction, truth.x, truth.y)
            else:
                scores[name] = function(prediction, truth.saliency)
        except metrics.MetricInputError as exc:
            scores[name] = None
            problems.append(f"image {truth.image_id}, {name}: {exc}")
    return scores


def layer_maps(output: Output, array, idx: int, n_tokens: int, layer: int) -> np.ndarray:
    """One image's token maps at one layer, float64 (n, heads, rows, cols): what its units are made of."""
    return np.asarray(output.layers.rows(array, idx, n_tokens, layer), dtype=np.float64)


def description_map(per_token: np.ndarray) -> np.ndarray:
    """The ``description`` unit: the mean of the image's token maps (n, rows, cols)."""
    return per_token.mean(axis=0)


def on_image(small: np.ndarray, size: tuple[int, int], blur_px: float = 0.0) -> np.ndarray:
    """A unit's map at the stored image size (height, width): upsampled, then blurred if asked."""
    return metrics.blur(metrics.upsample_bilinear(small, size), blur_px)


def unit_maps(maps: np.ndarray, words: list[dict], per_head: bool):
    """(head, unit, word, map) for one layer's token maps ``maps`` (n, heads, rows, cols)."""
    heads = [(HEAD_MEAN, maps.mean(axis=1))]
    if per_head:
        heads += [(h, maps[:, h]) for h in range(maps.shape[1])]
    for head, per_token in heads:
        yield head, UNIT_DESCRIPTION, None, description_map(per_token)
        for w in words:
            yield head, UNIT_WORD, w, per_token[w["first_position"] : w["last_position"] + 1].sum(axis=0)


def shard_scores(
    path: Path, truths: list[ImageTruth], words: dict[int, list[dict]], layers: tuple[int, ...], settings: EvalSettings
) -> tuple[list[dict], list[str]]:
    """Rows of ``metrics.parquet`` for the images of one shard, and why any score is null."""
    output = Output(path)
    array = output.group[f"attn_{settings.grid}"]
    rows, problems = [], []
    for truth in truths:
        # Read here, one image at a time: a dataset's saliency maps at once would not fit in memory.
        truth = replace(truth, saliency=np.asarray(output.group["saliency_map"][truth.idx], dtype=np.float64))
        size = truth.saliency.shape
        centre = metrics.blur(metrics.centre_bias(*size), settings.blur_px)
        rows.append(_row(truth, None, HEAD_MEAN, UNIT_CENTRE_BIAS, None, score(centre, truth, problems)))
        for layer in layers:
            maps = layer_maps(output, array, truth.idx, truth.n_tokens, layer)
            for head, unit, word, small in unit_maps(maps, words.get(truth.idx, []), settings.per_head):
                prediction = on_image(small, size, settings.blur_px)
                rows.append(_row(truth, layer, head, unit, word, score(prediction, truth, problems)))
    return rows, problems


def _row(truth: ImageTruth, layer, head: int, unit: str, word: dict | None, scores: dict) -> dict:
    return {
        "idx": truth.idx,
        "image_id": truth.image_id,
        "layer": layer,
        "head": head,
        "unit": unit,
        "word_index": None if word is None else word["word_index"],
        "word": None if word is None else word["word"],
        **scores,
    }


def evaluate(output: Output, settings: EvalSettings) -> tuple[pa.Table, Undefined]:
    """Score every committed, done image with ground truth; one dask task per store shard."""
    import dask

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
    truths = _image_truths(output)
    words = _words_by_image(output)
    shard_size = int(output.attrs["shard_size"])
    by_shard: dict[int, list[ImageTruth]] = {}
    for truth in truths:
        by_shard.setdefault(truth.idx // shard_size, []).append(truth)
    tasks = [dask.delayed(shard_scores)(output.path, part, words, layers, settings) for part in by_shard.values()]
    results = dask.compute(*tasks, scheduler="threads", num_workers=os.cpu_count()) if tasks else []
    rows = [row for part_rows, _ in results for row in part_rows]
    problems = [p for _, part_problems in results for p in part_problems]
    table = pa.Table.from_pylist(rows, schema=METRICS.schema)
    return table, Undefined(len(problems), problems[0] if problems else None)


def _chosen_layers(output: Output, settings: EvalSettings) -> tuple[int, ...]:
    if settings.layers is None:
        return output.layers.layers
    return tuple(sorted({output.layers.resolve(layer) for layer in settings.layers}))


def _image_truths(output: Output) -> list[ImageTruth]:
    """Ground truth of every done image that has it: fixation points from the catalog, the stored saliency map."""
    if output.attrs["schema_version"] < FIXATIONS_SINCE:
        raise StoreError(
            f"{output.path} (schema_version {output.attrs['schema_version']}) has no fixations table; re-extract it "
            "with this saldata (--overwrite) to evaluate it."
        )
    images = output.sql(
        f"SELECT idx, image_id, n_tokens FROM images WHERE status = '{STATUS_DONE}' AND gt_status = '{GT_OK}' "
        "AND n_tokens > 0 ORDER BY idx"
    ).to_pylist()
    if not images:
        raise StoreError(
            f"{output.path}: no done image has ground truth (images.gt_status = 'ok'), so there is nothing to score; "
            "evaluate needs a dataset with fixations and saliency maps (saldata datasets lists them)."
        )
    points = output.sql("SELECT idx, x, y FROM fixations ORDER BY idx, subject, fixation_index")
    idx = points.column("idx").to_numpy()
    x, y = points.column("x").to_numpy(), points.column("y").to_numpy()
    truths = []
    for image in images:
        lo, hi = np.searchsorted(idx, image["idx"], "left"), np.searchsorted(idx, image["idx"], "right")
        truths.append(ImageTruth(image["idx"], image["image_id"], image["n_tokens"], x[lo:hi], y[lo:hi]))
    return truths


def _words_by_image(output: Output) -> dict[int, list[dict]]:
    words: dict[int, list[dict]] = {}
    query = "SELECT idx, word_index, word, first_position, last_position FROM words ORDER BY idx, word_index"
    for w in output.sql(query).to_pylist():
        words.setdefault(w["idx"], []).append(w)
    return words


def write_metrics(out: Path, table: pa.Table) -> Path:
    """``OUT/eval/metrics.parquet``, replaced whole (``write_atomic``): a rerun never leaves half a file."""
    import pyarrow.parquet as pq

    from saldata.storage.commits import write_atomic

    target = as_out(out) / EVAL_DIRNAME / METRICS_FILE
    sink = pa.BufferOutputStream()
    pq.write_table(table, sink)
    write_atomic(target, sink.getvalue().to_pybytes())
    return target


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
    groups: dict[int | None, list[int]] = {}
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
