"""Saliency metrics with the saliency benchmark's (pysaliency's) definitions, in numpy.

An attention map is first brought to the stored image size (``upsample_bilinear``, optionally
``blur``), then scored against the image's fixations (``nss``, ``auc``, ``auc_judd``; ``sauc``
against other images' fixations as well) and its stored ground-truth saliency map (``cc``,
``kld``, ``sim``). ``centre_bias`` is the baseline every model should beat.

Fixations are float pixel coordinates ``x`` (column) and ``y`` (row) of the stored image,
0-based; a fixation falls on pixel ``(floor(y), floor(x))`` and duplicates each count. A
fixation off the image, or a NaN, raises ``MetricInputError``: pysaliency would index past the
edge (IndexError) or wrap a negative index round to the far side, and silently clipping here
would hide fixations left in the original image's coordinates. Clip at loading time, where the
clipped points are counted (``saldata.datasets.ground_truth``).
"""

from __future__ import annotations

import numpy as np

from saldata.errors import SaldataError

# MATLAB's eps as the MIT benchmark writes it (rounded), pysaliency's ``MIT_KLDiv`` constant.
KLD_EPSILON = 2.2204e-16
# Centre bias width: sigma as a fraction of the image diagonal, so one constant suits portrait,
# landscape and square images alike (0.15 of a 1024x768 diagonal is 192 px, a quarter of the height).
CENTRE_BIAS_SIGMA_FRACTION = 0.15


class MetricInputError(SaldataError, ValueError):
    """A metric is undefined for these inputs (no fixations, a fixation off the image, ...)."""


# --- Maps onto the image -------------------------------------------------------------------


def _source_positions(in_size: int, out_size: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per output index along one axis: the two source indices and the weight of the second."""
    # Half-pixel centres (align_corners=False): output centre i + 0.5 maps to source
    # (i + 0.5) * in/out, i.e. index (i + 0.5) * in/out - 0.5; below 0 is held at the first pixel.
    source = np.maximum((np.arange(out_size) + 0.5) * (in_size / out_size) - 0.5, 0.0)
    low = np.minimum(np.floor(source).astype(np.intp), in_size - 1)
    high = np.minimum(low + 1, in_size - 1)
    return low, high, source - low


def upsample_bilinear(map2d: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Resize ``map2d`` (rows, cols) to ``size`` = (height, width), float64.

    Bilinear with half-pixel centres and no antialiasing: the same numbers as
    ``torch.nn.functional.interpolate(mode="bilinear", align_corners=False)``.
    """
    values = _as_map(map2d, "map2d")
    height, width = size
    if height < 1 or width < 1:
        raise MetricInputError(f"upsample_bilinear: size must be positive, got {size}")
    row_low, row_high, row_weight = _source_positions(values.shape[0], height)
    col_low, col_high, col_weight = _source_positions(values.shape[1], width)
    # Separable: interpolate between rows, then between columns of the result.
    rows = values[row_low] * (1 - row_weight)[:, None] + values[row_high] * row_weight[:, None]
    return rows[:, col_low] * (1 - col_weight) + rows[:, col_high] * col_weight


def blur(saliency_map: np.ndarray, sigma_px: float) -> np.ndarray:
    """Gaussian blur with standard deviation ``sigma_px`` pixels; 0 returns the map unchanged.

    Boundary: mirror reflection about the image edge (scipy's ``mode="reflect"``, kernel cut at
    4 sigma). Zero padding would darken the borders, an artificial centre bias that would
    inflate every score; reflection keeps the map's total mass and its edge values.
    """
    values = _as_map(saliency_map, "saliency_map")
    if not np.isfinite(sigma_px) or sigma_px < 0:
        raise MetricInputError(f"blur: sigma_px must be a finite number >= 0, got {sigma_px}")
    if sigma_px == 0:
        return values.copy()
    from scipy.ndimage import gaussian_filter

    return gaussian_filter(values, sigma=float(sigma_px), mode="reflect", truncate=4.0)


def centre_bias(height: int, width: int) -> np.ndarray:
    """An isotropic Gaussian centred on the image, (height, width) float64, peak value 1.

    Sigma is ``CENTRE_BIAS_SIGMA_FRACTION`` of the diagonal. The centre is the middle of the
    pixel grid, ((height - 1) / 2, (width - 1) / 2) in pixel indices, so the map is symmetric
    under flipping either axis.
    """
    if height < 1 or width < 1:
        raise MetricInputError(f"centre_bias: height and width must be positive, got {height}x{width}")
    sigma = CENTRE_BIAS_SIGMA_FRACTION * float(np.hypot(height, width))
    rows = (np.arange(height) - (height - 1) / 2) ** 2
    cols = (np.arange(width) - (width - 1) / 2) ** 2
    return np.exp(-(rows[:, None] + cols[None, :]) / (2 * sigma**2))


# --- Scores against fixations ---------------------------------------------------------------


def nss(saliency_map: np.ndarray, x: np.ndarray, y: np.ndarray) -> float:
    """Normalised scanpath saliency: the map's z-score (over all pixels), averaged over fixations.

    A constant map scores 0.0, as in pysaliency (it subtracts the mean and skips the division
    when the std is 0): it says nothing about where people look, which is chance level. The test
    for constant is exact equality of all pixels, so rounding in the mean cannot turn a flat
    map into a tiny nonzero std and a meaningless ratio.
    """
    values = _as_map(saliency_map, "saliency_map")
    rows, cols = _fixation_pixels(values.shape, x, y)
    if values.min() == values.max():
        return 0.0
    return float(np.mean((values[rows, cols] - values.mean()) / values.std()))


def auc(saliency_map: np.ndarray, x: np.ndarray, y: np.ndarray, sorted_values: np.ndarray | None = None) -> float:
    """Area under the ROC curve: fixated pixels as positives, all pixels as negatives (pysaliency's ``AUC``).

    Every saliency value is a threshold and the curve is integrated with the trapezoid rule,
    which is pysaliency's ``general_roc(positives, all_pixels, judd=0)`` (its ``AUC`` with
    ``nonfixations="uniform", thresholds="all"``, the defaults). That area equals the probability
    that a fixated pixel outranks a random pixel, ties counted half, which is how it is computed
    here. A constant map therefore scores 0.5. ``sorted_values``: the map's values sorted
    (``np.sort(map, axis=None)``), where the caller has them already (``auc_judd`` takes them too).
    """
    values = _as_map(saliency_map, "saliency_map")
    rows, cols = _fixation_pixels(values.shape, x, y)
    every = _sorted(values, sorted_values)
    positives = values[rows, cols]
    below = np.searchsorted(every, positives, side="left")
    at_or_below = np.searchsorted(every, positives, side="right")
    return float(np.mean(below + 0.5 * (at_or_below - below)) / every.size)


def auc_judd(saliency_map: np.ndarray, x: np.ndarray, y: np.ndarray, sorted_values: np.ndarray | None = None) -> float:
    """AUC-Judd as pysaliency's ``AUC_Judd(..., jitter=False)`` computes it.

    Positives: the map's value at every fixation (duplicates each count). Negatives: every pixel
    that no fixation falls on (``nonfixations="unfixated"``). Thresholds: the positives' values
    only (``thresholds="fixations"``), between one above the largest value and the smallest
    value, so the curve runs from (0, 0) to (1, 1); at each threshold t the point is (share of
    negatives >= t, share of positives >= t), and the curve is integrated with the trapezoid
    rule. A constant map scores 0.5. pysaliency's default ``jitter=True`` first adds Gaussian
    noise of standard deviation 1e-7 to the map to break ties at random; that noise is left out
    here, so the score is deterministic (the noise only reorders values that tie or lie within a
    few 1e-7 of each other). An image whose every pixel is fixated has no negatives: undefined.
    ``sorted_values`` as for ``auc``.
    """
    values = _as_map(saliency_map, "saliency_map")
    rows, cols = _fixation_pixels(values.shape, x, y)
    every = _sorted(values, sorted_values)
    positives = np.sort(values[rows, cols])
    fixated = np.sort(values.ravel()[np.unique(rows * values.shape[1] + cols)])  # each fixated pixel once
    n_negatives = every.size - fixated.size
    if n_negatives == 0:
        raise MetricInputError("auc_judd: every pixel is fixated, so no pixel is a negative")
    # The largest and smallest of positives and negatives together are the map's own.
    thresholds = np.concatenate([[every[-1] + 1], positives[::-1], [every[0]]])
    # Negatives at or above t: the map's pixels at or above t, less the fixated ones.
    at_or_above = (every.size - np.searchsorted(every, thresholds, "left")) - (
        fixated.size - np.searchsorted(fixated, thresholds, "left")
    )
    hits = np.concatenate([[0.0], (positives.size - np.searchsorted(positives, thresholds, "left")) / positives.size])
    false = np.concatenate([[0.0], at_or_above / n_negatives])
    return float(np.sum(np.diff(false) * (hits[1:] + hits[:-1]) / 2))


def sauc(saliency_map: np.ndarray, x: np.ndarray, y: np.ndarray, other_x: np.ndarray, other_y: np.ndarray) -> float:
    """Shuffled AUC (pysaliency's ``sAUC``: its ``AUC`` with ``nonfixations="shuffled"``).

    Positives: the map at this image's fixations; negatives: the map at ``other_x``, ``other_y``,
    the fixations of other images placed on this image (``analysis/shuffled.py`` picks them).
    Per positive, the share of negatives below it, ties counted half (pysaliency's
    ``general_rocs_per_positive``), averaged over this image's fixations. The negatives carry the
    centre bias all fixations share, so a map scores above 0.5 only by what it predicts of this
    image beyond that bias: a constant map scores 0.5, and so does any map when this image's
    fixations are where the other images' are. Other images' points fall on pixel
    ``(floor(y), floor(x))`` like the positives (pysaliency truncates: the same for points >= 0).
    """
    values = _as_map(saliency_map, "saliency_map")
    rows, cols = _fixation_pixels(values.shape, x, y)
    if np.size(other_x) == 0:
        raise MetricInputError("sauc: no other image of the output has fixations, so there is no negative")
    other_rows, other_cols = _fixation_pixels(values.shape, other_x, other_y)
    negatives = np.sort(values[other_rows, other_cols])
    positives = values[rows, cols]
    below = np.searchsorted(negatives, positives, side="left")
    at_or_below = np.searchsorted(negatives, positives, side="right")
    return float(np.mean(below + 0.5 * (at_or_below - below)) / negatives.size)


def _sorted(values: np.ndarray, sorted_values: np.ndarray | None) -> np.ndarray:
    if sorted_values is None:
        return np.sort(values, axis=None)
    if sorted_values.size != values.size:
        raise MetricInputError(f"sorted_values holds {sorted_values.size} values for a map of {values.size}")
    return sorted_values


def _fixation_pixels(shape: tuple[int, int], x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(rows, cols) indices of the fixations: (floor(y), floor(x)), after checking they are on the image."""
    x = np.asarray(x, dtype=np.float64).ravel()
    y = np.asarray(y, dtype=np.float64).ravel()
    if x.shape != y.shape:
        raise MetricInputError(f"x and y hold different numbers of fixations: {x.size} and {y.size}")
    if x.size == 0:
        raise MetricInputError("no fixations: NSS and AUC need at least one")
    if not (np.isfinite(x).all() and np.isfinite(y).all()):
        raise MetricInputError("a fixation coordinate is NaN or infinite")
    height, width = shape
    off = (x < 0) | (x >= width) | (y < 0) | (y >= height)
    if off.any():
        first = int(np.argmax(off))
        raise MetricInputError(
            f"{int(off.sum())} fixation(s) off the {width}x{height} image, first at x={x[first]}, y={y[first]}; "
            "fixations must be in the stored image's pixel coordinates (clip them when loading)"
        )
    return np.floor(y).astype(np.intp), np.floor(x).astype(np.intp)


# --- Scores against the ground-truth saliency map -------------------------------------------


def cc(saliency_map: np.ndarray, ground_truth: np.ndarray) -> float:
    """Pearson correlation of the two maps over all pixels.

    A constant prediction scores 0.0 (pysaliency's rule: no linear relation to anything). A
    constant ground truth raises ``MetricInputError``: the correlation is undefined (pysaliency
    returns NaN with a warning) and the image has no saliency to compare with.
    """
    prediction, truth = _as_pair(saliency_map, ground_truth)
    if truth.min() == truth.max():
        raise MetricInputError("cc: the ground-truth saliency map is constant, so the correlation is undefined")
    if prediction.min() == prediction.max():
        return 0.0
    prediction = prediction - prediction.mean()
    truth = truth - truth.mean()
    return float(np.sum(prediction * truth) / np.sqrt(np.sum(prediction**2) * np.sum(truth**2)))


def kld(saliency_map: np.ndarray, ground_truth: np.ndarray) -> float:
    """MIT benchmark KL divergence of the ground truth from the prediction (lower is better).

    Both maps become densities (``to_density``); then sum(g * log(eps + g / (p + eps))) with
    g the ground truth, p the prediction and eps ``KLD_EPSILON``, as pysaliency's ``MIT_KLDiv``
    (prediction first). Pixels where g is 0 add nothing.
    """
    prediction, truth = (to_density(m) for m in _as_pair(saliency_map, ground_truth))
    return float(np.sum(truth * np.log(KLD_EPSILON + truth / (prediction + KLD_EPSILON))))


def sim(saliency_map: np.ndarray, ground_truth: np.ndarray) -> float:
    """Similarity: the histogram intersection sum(min(p, g)) of the two maps as densities, in [0, 1]."""
    prediction, truth = (to_density(m) for m in _as_pair(saliency_map, ground_truth))
    return float(np.sum(np.minimum(prediction, truth)))


def to_density(values: np.ndarray) -> np.ndarray:
    """The map as a density summing to 1, as pysaliency converts saliency maps.

    A map with negative values is first shifted so its minimum is 0; a map summing to 0 becomes
    uniform (it prefers no pixel).
    """
    if values.min() < 0:
        values = values - values.min()
    total = values.sum()
    if total == 0:
        return np.full(values.shape, 1.0 / values.size)
    return values / total


# --- Input checks -------------------------------------------------------------------------


def _as_map(values: np.ndarray, name: str) -> np.ndarray:
    """``values`` as a finite 2-D float64 array, or a MetricInputError saying what is wrong."""
    array = np.asarray(values, dtype=np.float64)
    if array.ndim != 2 or array.size == 0:
        raise MetricInputError(f"{name} must be a non-empty 2-D map, got shape {array.shape}")
    if not np.isfinite(array).all():
        raise MetricInputError(f"{name} holds NaN or infinite values")
    return array


def _as_pair(saliency_map: np.ndarray, ground_truth: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    prediction = _as_map(saliency_map, "saliency_map")
    truth = _as_map(ground_truth, "ground_truth")
    if prediction.shape != truth.shape:
        raise MetricInputError(
            f"saliency_map {prediction.shape} and ground_truth {truth.shape} differ in shape; upsample the map first"
        )
    return prediction, truth
