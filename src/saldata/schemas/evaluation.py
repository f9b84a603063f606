"""``saldata evaluate``'s output: ``OUT/eval/metrics.parquet``, one row per scored map.

Its columns never hold a null integer, so pandas reads ``layer``, ``head`` and ``word_index`` as
integers: ``NO_LAYER`` (-1) is the centre bias's layer, ``HEAD_MEAN`` (-1) the mean over heads,
``NO_WORD`` (-1) the word index of a unit that is not a word. Metric names follow pysaliency's
where the definitions agree (``auc`` is its ``AUC``, ``auc_judd`` its ``AUC_Judd``, ``sauc`` its
``sAUC``). The file's schema metadata holds ``saldata.metrics_version`` and ``saldata.evaluation``,
the settings it was scored with (JSON: rows, grid, blur_px, per_head, layers, and saldata_version,
the saldata that scored it). A run named with ``--name`` writes ``OUT/eval/<name>/metrics.parquet``
instead (``storage/eval_tables.py``), and ``catalog query`` shows every table as ``eval.<table>``
(a named run's as ``eval_<name>.<table>``), the default run's metrics also as ``metrics``.
"""

from __future__ import annotations

import json

import pyarrow as pa

from saldata.schemas.catalog import Column, TableSpec

EVAL_DIRNAME = "eval"
METRICS_FILE = "metrics.parquet"
# Every table an evaluation writes, OUT/eval/<name>.parquet (and OUT/eval/<run>/<name>.parquet for a
# run named with --name): metrics (below) and objects (grounding scores, evaluate --objects). info
# lists them and catalog query shows them as views, whichever are present.
EVALUATION_TABLES = ("metrics", "objects")
LAYERS_FIGURE = "layers.png"

UNIT_DESCRIPTION = "description"
UNIT_WORD = "word"
UNIT_CENTRE_BIAS = "centre_bias"
HEAD_MEAN = -1
NO_LAYER = -1  # the layer of the centre-bias baseline, which is no layer's map
NO_WORD = -1  # the word_index of the description and centre-bias units
METRIC_NAMES = ("nss", "auc", "auc_judd", "sauc", "cc", "kld", "sim")
FIXATION_METRICS = ("nss", "auc", "auc_judd")  # scored against the fixation points; the others against the map
SHUFFLED_METRIC = "sauc"  # against the fixation points and other images' (analysis/shuffled.py)
SAUC_OTHER_IMAGES = 100  # how many other images' fixations are an image's sauc negatives, at most
SAUC_SEED = 2028  # seeds the draw of those images; another seed is another sauc, so another METRICS_VERSION

# The layout of metrics.parquet. 1 (no saldata.metrics_version in the file): auc_judd held what
# auc holds now, and layer and word_index were null where they are now -1. 2: auc (pysaliency's
# AUC), auc_judd (pysaliency's AUC_Judd), the -1 sentinels, the settings in the metadata. 3: sauc
# (pysaliency's sAUC; negatives: the fixations of up to 100 other images, drawn with a fixed seed,
# analysis/shuffled.py).
METRICS_VERSION = 3
SETTINGS_KEY = "saldata.evaluation"

METRICS = TableSpec(
    "metrics",
    (
        Column("idx", pa.int64(), "Image row (see images.idx)."),
        Column("image_id", pa.string(), "Image id (images.image_id)."),
        Column("layer", pa.int32(), "Decoder layer of the map; -1 for the centre-bias baseline."),
        Column("head", pa.int32(), "Attention head, or -1 for the mean over heads."),
        Column(
            "unit",
            pa.string(),
            "'description' (mean of the description's token maps), 'word' (sum of the word's token maps) "
            "or 'centre_bias' (the baseline).",
        ),
        Column("word_index", pa.int32(), "words.word_index for unit 'word', else -1."),
        Column("word", pa.string(), "words.word for unit 'word', else null.", nullable=True),
        Column("nss", pa.float64(), "Normalised scanpath saliency over all fixation points.", nullable=True),
        Column(
            "auc",
            pa.float64(),
            "ROC area, fixated pixels against all pixels, every value a threshold (pysaliency's AUC).",
            nullable=True,
        ),
        Column(
            "auc_judd",
            pa.float64(),
            "ROC area, fixated pixels against unfixated pixels, thresholds at the fixated values "
            "(pysaliency's AUC_Judd without its random jitter).",
            nullable=True,
        ),
        Column(
            "sauc",
            pa.float64(),
            f"Shuffled AUC: fixated pixels against the pixels other images' fixations fall on (up to "
            f"{SAUC_OTHER_IMAGES} other images, drawn with a fixed seed; pysaliency's sAUC). Null when no other "
            "image has fixations.",
            nullable=True,
        ),
        Column("cc", pa.float64(), "Pearson correlation with the ground-truth saliency map.", nullable=True),
        Column(
            "kld", pa.float64(), "MIT KL divergence of the ground truth from the map (lower is better).", nullable=True
        ),
        Column("sim", pa.float64(), "Histogram intersection with the ground-truth saliency map.", nullable=True),
    ),
    "One row per scored map: image x layer x head x unit (x word).",
)


def evaluation_schema(table: TableSpec, version: int, settings: dict) -> pa.Schema:
    """An evaluation table's Arrow schema, its metadata naming it (``saldata.table``), its layout's version
    (``saldata.<table>_version``) and the evaluation's ``settings`` (``storage/eval_tables.py`` reads them)."""
    metadata = {
        "saldata.table": table.name,
        f"saldata.{table.name}_version": str(version),
        SETTINGS_KEY: json.dumps(settings, sort_keys=True),
    }
    return table.schema.with_metadata(metadata)


def metrics_schema(settings: dict) -> pa.Schema:
    return evaluation_schema(METRICS, METRICS_VERSION, settings)


# ``saldata evaluate --objects``: OUT/eval/objects.parquet, grounding scores (analysis/grounding.py).
OBJECTS_FILE = "objects.parquet"
OBJECTS_FIGURE = "objects.png"
OBJECTS_VERSION = 1  # the layout of objects.parquet
POINTING_TOLERANCE_PX = 15.0  # the pointing game's: a maximum this close to an object hits it

OBJECT_SCORES = TableSpec(
    "objects",
    (
        Column("idx", pa.int64(), "Image row (see images.idx)."),
        Column("image_id", pa.string(), "Image id (images.image_id)."),
        Column("layer", pa.int32(), "Decoder layer of the word's map; -1 for the centre-bias baseline."),
        Column("head", pa.int32(), "Attention head, or -1 for the mean over heads."),
        Column("word_index", pa.int32(), "words.word_index of the word whose map is scored; -1 for the centre bias."),
        Column("word", pa.string(), "words.word; null for the centre bias.", nullable=True),
        Column("object_id", pa.int64(), "The object (objects.object_id: COCO's annotation id, VG's object_id)."),
        Column(
            "source", pa.string(), "'coco' or 'visual_genome' (objects.source): with idx and object_id, the object."
        ),
        Column("category", pa.string(), "objects.category.", nullable=True),
        Column("mass_in_object", pa.float64(), "Share of the map's mass on the object's mask (VG: its box)."),
        Column("area_fraction", pa.float64(), "Share of the image's pixels the mask covers."),
        Column(
            "ratio",
            pa.float64(),
            "mass_in_object / area_fraction: 1 for a map that prefers no pixel (chance), above 1 where the "
            "map concentrates on the object.",
            nullable=True,
        ),
        Column(
            "pointing_hit",
            pa.bool_(),
            f"The map's maximum lies on the object or within {POINTING_TOLERANCE_PX:g} px of it (the pointing game).",
        ),
        Column(
            "named",
            pa.bool_(),
            "The word names the object (analysis/naming.py: its singular, lower-cased, against the COCO category "
            "and its synonyms, or the VG names and synset lemmas); false for the centre bias.",
        ),
    ),
    "One row per word map x object of its image: image x layer x head x word x object; and the centre bias x object.",
)


def objects_schema(settings: dict) -> pa.Schema:
    return evaluation_schema(OBJECT_SCORES, OBJECTS_VERSION, settings)
