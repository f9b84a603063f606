"""What ``evaluate --objects`` prints and plots: grounding by layer for the words that name an object.

Three groups of rows of ``objects.parquet``, heads averaged (``head`` -1):

- ``named``: a word's map against an object the word names (``named``), by layer;
- ``other objects``: the same words' maps (a word that names at least one object of its image)
  against the image's objects they do not name, by layer: how much of the score is the word's
  map being peaked somewhere, whatever the object;
- ``centre bias``: the centre-bias map against the objects of the named pairs, each as often as a
  named pair has it: how much of the score the objects' central place alone gives.

For each group: ``pointing`` (the pointing game's accuracy: the share of ``pointing_hit``) and
``ratio`` (mean of ``mass_in_object / area_fraction``; 1 = chance), with standard errors.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from saldata.schemas.evaluation import HEAD_MEAN, NO_LAYER

MEASURES = ("pointing", "ratio")
LABELS = {"pointing": "pointing accuracy", "ratio": "mass / area (1 = chance)"}


@dataclass(frozen=True, slots=True)
class Line:
    """One group's scores at one layer (``layer`` None: the centre bias): mean and standard error."""

    layer: int | None
    n: int  # (word, object) pairs
    mean: dict[str, float]
    stderr: dict[str, float]


@dataclass(frozen=True, slots=True)
class ObjectSummary:
    named: list[Line]  # by layer
    others: list[Line]  # by layer
    centre: Line
    n_images: int  # images with at least one named pair
    n_words: int  # words naming at least one object (per image)


def summarise_objects(table: pa.Table) -> ObjectSummary:
    """The three groups of the module docstring, from ``objects.parquet``'s rows."""
    col = {name: table.column(name) for name in ("idx", "layer", "head", "word_index", "object_id")}
    col = {name: values.to_numpy() for name, values in col.items()}
    named = table.column("named").to_numpy(zero_copy_only=False).astype(bool)
    hit = table.column("pointing_hit").to_numpy(zero_copy_only=False).astype(np.float64)
    ratio = pc.fill_null(table.column("ratio"), math.nan).to_numpy()
    source = np.asarray(table.column("source").to_pylist(), dtype=object)
    words = (col["head"] == HEAD_MEAN) & (col["layer"] != NO_LAYER)
    pair = words & named
    word_key = col["idx"] * (1 << 32) + col["word_index"]  # one image's word
    naming_words = np.isin(word_key, word_key[pair])
    other = words & ~named & naming_words
    layers = sorted(set(col["layer"][pair].tolist()))

    def line(layer, rows: np.ndarray) -> Line:
        values = {"pointing": hit[rows], "ratio": ratio[rows][~np.isnan(ratio[rows])]}
        mean = {k: float(v.mean()) if len(v) else math.nan for k, v in values.items()}
        stderr = {k: float(v.std(ddof=1) / math.sqrt(len(v))) if len(v) > 1 else math.nan for k, v in values.items()}
        return Line(layer, int(rows.size), mean, stderr)

    by_layer = [line(layer, np.flatnonzero(pair & (col["layer"] == layer))) for layer in layers]
    others = [line(layer, np.flatnonzero(other & (col["layer"] == layer))) for layer in layers]
    # The centre bias on each named pair's object, as often as the pairs of one layer have it.
    centre_rows = {(col["idx"][r], source[r], col["object_id"][r]): r for r in np.flatnonzero(col["layer"] == NO_LAYER)}
    first = np.flatnonzero(pair & (col["layer"] == layers[0])) if layers else np.empty(0, dtype=int)
    centre = line(
        None, np.array([centre_rows[(col["idx"][r], source[r], col["object_id"][r])] for r in first], dtype=int)
    )
    n_images = len(set(col["idx"][first].tolist()))
    n_words = len(set(word_key[first].tolist()))
    return ObjectSummary(by_layer, others, centre, n_images, n_words)
