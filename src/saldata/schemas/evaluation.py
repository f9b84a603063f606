"""``saldata evaluate``'s output: ``OUT/eval/metrics.parquet``, one row per scored map."""

from __future__ import annotations

import pyarrow as pa

from saldata.schemas.catalog import Column, TableSpec

EVAL_DIRNAME = "eval"
METRICS_FILE = "metrics.parquet"
LAYERS_FIGURE = "layers.png"

UNIT_DESCRIPTION = "description"
UNIT_WORD = "word"
UNIT_CENTRE_BIAS = "centre_bias"
HEAD_MEAN = -1
METRIC_NAMES = ("nss", "auc_judd", "cc", "kld", "sim")

METRICS = TableSpec(
    "metrics",
    (
        Column("idx", pa.int64(), "Image row (see images.idx)."),
        Column("image_id", pa.string(), "Image id (images.image_id)."),
        Column("layer", pa.int32(), "Decoder layer of the map; null for the centre-bias baseline.", nullable=True),
        Column("head", pa.int32(), "Attention head, or -1 for the mean over heads."),
        Column(
            "unit",
            pa.string(),
            "'description' (mean of the description's token maps), 'word' (sum of the word's token maps) "
            "or 'centre_bias' (the baseline).",
        ),
        Column("word_index", pa.int32(), "words.word_index for unit 'word', else null.", nullable=True),
        Column("word", pa.string(), "words.word for unit 'word', else null.", nullable=True),
        Column("nss", pa.float64(), "Normalised scanpath saliency over all fixation points.", nullable=True),
        Column("auc_judd", pa.float64(), "ROC area, fixated pixels against all pixels.", nullable=True),
        Column("cc", pa.float64(), "Pearson correlation with the ground-truth saliency map.", nullable=True),
        Column(
            "kld", pa.float64(), "MIT KL divergence of the ground truth from the map (lower is better).", nullable=True
        ),
        Column("sim", pa.float64(), "Histogram intersection with the ground-truth saliency map.", nullable=True),
    ),
    "One row per scored map: image x layer x head x unit (x word).",
)
