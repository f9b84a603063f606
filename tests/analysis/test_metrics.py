"""Saliency metrics on maps with known answers, worked out by hand in the comments."""

from __future__ import annotations

import math

import numpy as np
import pytest

from saldata.analysis.metrics import (
    CENTRE_BIAS_SIGMA_FRACTION,
    KLD_EPSILON,
    MetricInputError,
    auc,
    auc_judd,
    blur,
    cc,
    centre_bias,
    kld,
    nss,
    sim,
    upsample_bilinear,
)

SQRT14 = math.sqrt(14)


@pytest.fixture
def one_hot_3x5():
    """A 3x5 map, 1 at row 0, column 2, else 0: mean 1/15, std sqrt(1/15 * 14/15) = sqrt(14)/15.

    z-scores: the hot pixel (1 - 1/15) / (sqrt(14)/15) = sqrt(14); every other pixel -1/sqrt(14).
    """
    values = np.zeros((3, 5))
    values[0, 2] = 1.0
    return values


# --- Upsampling and blur --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("source", "target"),
    [
        ((3, 5), (7, 11)),
        ((24, 24), (336, 448)),
        ((7, 3), (100, 37)),
        ((5, 4), (5, 4)),
        ((6, 9), (4, 5)),
        ((1, 1), (3, 3)),
    ],
)
def test_upsample_matches_torch_interpolate(source, target):
    torch = pytest.importorskip("torch")
    values = np.random.default_rng(sum(source + target)).random(source)
    expected = torch.nn.functional.interpolate(
        torch.from_numpy(values)[None, None], size=target, mode="bilinear", align_corners=False
    )[0, 0].numpy()
    np.testing.assert_allclose(upsample_bilinear(values, target), expected, rtol=0, atol=1e-6)


def test_upsample_uses_half_pixel_centres():
    # 2 -> 4 columns: output centres 0.5, 1.5, 2.5, 3.5 map to source indices (i + 0.5) / 2 - 0.5 =
    # -0.25 (held at 0), 0.25, 0.75, 1.25 (held at 1): values 0, 0.25, 0.75, 1. With align_corners=True
    # it would be 0, 1/3, 2/3, 1.
    np.testing.assert_allclose(upsample_bilinear(np.array([[0.0, 1.0]]), (1, 4)), [[0, 0.25, 0.75, 1]])


def test_upsample_keeps_rows_and_columns_apart():
    # A map varying only down the rows stays constant along each row after resizing to a non-square size.
    values = np.array([[0.0, 0.0, 0.0], [1.0, 1.0, 1.0]])
    out = upsample_bilinear(values, (4, 9))
    assert out.shape == (4, 9)
    np.testing.assert_allclose(out, np.repeat([[0.0], [0.25], [0.75], [1.0]], 9, axis=1))


def test_blur_with_sigma_zero_is_identity():
    values = np.random.default_rng(0).random((6, 7))
    out = blur(values, 0)
    np.testing.assert_array_equal(out, values)
    assert out is not values


def test_blur_is_a_sampled_gaussian_that_keeps_mass():
    impulse = np.zeros((41, 41))
    impulse[20, 20] = 1.0
    out = blur(impulse, 2.0)
    # Separable sampled Gaussian: out[20, 20 + k] / out[20, 20] = exp(-k^2 / (2 * 2^2)).
    k = np.arange(6)
    np.testing.assert_allclose(out[20, 20 + k] / out[20, 20], np.exp(-(k**2) / 8.0), rtol=1e-12)
    np.testing.assert_allclose(out[20 + k, 20], out[20, 20 + k], rtol=1e-12)
    assert out.sum() == pytest.approx(1.0, abs=1e-12)


def test_blur_reflects_at_the_border():
    # Reflection keeps a constant map constant; zero padding would darken the edges.
    np.testing.assert_allclose(blur(np.full((5, 9), 3.0), 4.0), 3.0, rtol=1e-12)
    edge = np.zeros((10, 10))
    edge[0, 0] = 1.0
    assert blur(edge, 1.5).sum() == pytest.approx(1.0, abs=1e-12)  # mass at a corner stays in the image


def test_blur_rejects_negative_sigma():
    with pytest.raises(MetricInputError, match="sigma_px"):
        blur(np.ones((3, 3)), -1.0)


# --- Centre bias ----------------------------------------------------------------------------


@pytest.mark.parametrize(("height", "width"), [(5, 7), (40, 9), (6, 8)])
def test_centre_bias_is_symmetric_and_peaked_at_the_centre(height, width):
    bias = centre_bias(height, width)
    assert bias.shape == (height, width)
    np.testing.assert_allclose(bias, np.flip(bias, axis=0), rtol=1e-15)
    np.testing.assert_allclose(bias, np.flip(bias, axis=1), rtol=1e-15)
    peak_rows = [(height - 1) // 2, height // 2]
    peak_cols = [(width - 1) // 2, width // 2]
    assert bias[np.ix_(peak_rows, peak_cols)] == pytest.approx(bias.max())
    if height % 2 and width % 2:
        assert bias[height // 2, width // 2] == 1.0


def test_centre_bias_is_isotropic_with_the_documented_width():
    # 40x9: diagonal sqrt(40^2 + 9^2) = 41, sigma = 0.15 * 41 = 6.15 px, centre (19.5, 4).
    bias = centre_bias(40, 9)
    sigma = CENTRE_BIAS_SIGMA_FRACTION * 41
    rows, cols = np.mgrid[0:40, 0:9]
    squared_distance = (rows - 19.5) ** 2 + (cols - 4.0) ** 2
    np.testing.assert_allclose(-2 * np.log(bias) * sigma**2, squared_distance, rtol=1e-12, atol=1e-12)


# --- NSS -----------------------------------------------------------------------------------


def test_nss_hand_computed(one_hot_3x5):
    # Hot pixel z = sqrt(14); a fixation at (x=2.9, y=0.9) floors onto it (rounding would not).
    assert nss(one_hot_3x5, np.array([2.9]), np.array([0.9])) == pytest.approx(SQRT14, rel=1e-12)
    # Duplicates all count: (2 sqrt(14) - 1/sqrt(14)) / 3 = 27 / (3 sqrt(14)) = 9 / sqrt(14).
    x, y = np.array([2.0, 2.5, 0.0]), np.array([0.0, 0.5, 1.0])
    assert nss(one_hot_3x5, x, y) == pytest.approx(9 / SQRT14, rel=1e-12)


def test_x_is_column_and_y_is_row(one_hot_3x5):
    # On a 3x5 image the hot pixel is x=2 (column), y=0 (row); swapping x and y lands on the
    # cold pixel (row 2, column 0), which is on the image too, so only the order tells them apart.
    x, y = np.array([2.2]), np.array([0.4])
    assert nss(one_hot_3x5, x, y) == pytest.approx(SQRT14, rel=1e-12)
    assert nss(one_hot_3x5, y, x) == pytest.approx(-1 / SQRT14, rel=1e-12)
    # AUC: the hot pixel outranks 14 of 15 pixels and ties itself: (14 + 0.5) / 15.
    assert auc(one_hot_3x5, x, y) == pytest.approx(14.5 / 15, rel=1e-12)
    # Swapped, a 0 ties 14 pixels and outranks none: 7 / 15.
    assert auc(one_hot_3x5, y, x) == pytest.approx(7 / 15, rel=1e-12)


def test_nss_of_a_constant_map_is_zero():
    assert nss(np.full((4, 6), 0.3), np.array([1.0, 5.5]), np.array([0.0, 3.9])) == 0.0


# --- AUC -----------------------------------------------------------------------------------


def test_auc_hand_computed_with_ties():
    # Map [[1, 2, 2], [3, 4, 4]] (2x3); fixations on the 2 at (row 0, col 1) and the 4 at (row 1, col 2).
    # Negatives are all 6 pixels. Thresholds 4, 3, 2, 1 give ROC points (FP, TP):
    # (0, 0), (2/6, 1/2), (3/6, 1/2), (5/6, 1), (1, 1). Trapezoids:
    # 2/6 * 1/4 + 1/6 * 1/2 + 2/6 * 3/4 + 1/6 * 1 = 1/12 + 1/12 + 3/12 + 2/12 = 7/12.
    # Ties dropped (strict >) would give 5/12, ties counted in full 9/12.
    values = np.array([[1.0, 2.0, 2.0], [3.0, 4.0, 4.0]])
    assert auc(values, np.array([1.5, 2.5]), np.array([0.5, 1.5])) == pytest.approx(7 / 12, rel=1e-12)


def test_auc_judd_hand_computed_on_the_same_map():
    # pysaliency's AUC_Judd on the map above: positives the fixated values [2, 4]; negatives the
    # unfixated pixels only, [1, 2, 3, 4] (row 0: 1, 2 at col 2; row 1: 3, 4 at col 1). Thresholds
    # max + 1 = 5, the fixated values 4 and 2, then the minimum 1; at each, (share of negatives >= t,
    # share of positives >= t): (0, 0), (0, 0), (1/4, 1/2), (3/4, 1), (1, 1). Trapezoids:
    # 1/4 * 1/4 + 1/2 * 3/4 + 1/4 * 1 = 1/16 + 6/16 + 4/16 = 11/16 (auc, all pixels at every threshold: 7/12).
    values = np.array([[1.0, 2.0, 2.0], [3.0, 4.0, 4.0]])
    assert auc_judd(values, np.array([1.5, 2.5]), np.array([0.5, 1.5])) == pytest.approx(11 / 16, rel=1e-12)


def test_auc_judd_counts_duplicate_fixations_and_drops_fixated_pixels_from_the_negatives():
    # Map [[0, 1, 2, 3]]; fixations at x = 3 twice and x = 0 once: positives [3, 3, 0], negatives the
    # unfixated [1, 2]. Thresholds 4, 3, 3, 0, 0: points (0, 0), (0, 0), (0, 2/3), (0, 2/3), (1, 1),
    # (1, 1): area 1 * (2/3 + 1) / 2 = 5/6. Counted once, x = 3 would give (0, 1/2) and 3/4; with the
    # fixated pixels left among the negatives (auc's all pixels), another number again.
    values = np.array([[0.0, 1.0, 2.0, 3.0]])
    x, y = np.array([3.2, 3.7, 0.5]), np.array([0.1, 0.9, 0.5])
    assert auc_judd(values, x, y) == pytest.approx(5 / 6, rel=1e-12)
    assert auc_judd(values, x[1:], y[1:]) == pytest.approx(3 / 4, rel=1e-12)


def test_auc_of_a_constant_map_is_one_half():
    x, y = np.array([0.0, 5.9, 3.0]), np.array([0.0, 3.9, 2.0])
    assert auc(np.full((4, 6), 2.0), x, y) == 0.5
    assert auc_judd(np.full((4, 6), 2.0), x, y) == 0.5


def test_auc_judd_is_undefined_when_every_pixel_is_fixated():
    with pytest.raises(MetricInputError, match="every pixel is fixated"):
        auc_judd(np.array([[1.0, 2.0]]), np.array([0.0, 1.0]), np.array([0.0, 0.0]))


def test_map_peaked_on_the_fixations_beats_the_centre_bias():
    rng = np.random.default_rng(3)
    height, width = 48, 64
    x, y = rng.uniform(0, width, 12), rng.uniform(0, height, 12)
    fixated = np.zeros((height, width))
    np.add.at(fixated, (np.floor(y).astype(int), np.floor(x).astype(int)), 1.0)
    peaked = blur(fixated, 1.0)
    assert auc(peaked, x, y) > 0.99 and auc_judd(peaked, x, y) > 0.99
    assert nss(peaked, x, y) > 5
    assert nss(peaked, x, y) > nss(centre_bias(height, width), x, y)


# --- CC, KLD, SIM --------------------------------------------------------------------------


def test_cc_hand_computed():
    # [0, 1, 2] and [0, 2, 1] centred: [-1, 0, 1] and [-1, 1, 0]; sum of products 1; norms sqrt(2)
    # each: 1 / 2.
    a, b = np.array([[0.0, 1.0, 2.0]]), np.array([[0.0, 2.0, 1.0]])
    assert cc(a, b) == pytest.approx(0.5, rel=1e-12)
    assert cc(a, 2 * a + 3) == pytest.approx(1.0, rel=1e-12)
    assert cc(a, -a) == pytest.approx(-1.0, rel=1e-12)


def test_cc_of_a_constant_prediction_is_zero_and_of_a_constant_truth_raises():
    truth = np.array([[0.0, 1.0], [2.0, 5.0]])
    assert cc(np.full((2, 2), 0.7), truth) == 0.0
    with pytest.raises(MetricInputError, match="constant"):
        cc(truth, np.full((2, 2), 4.0))


def test_kld_hand_computed():
    prediction, truth = np.array([[1.0, 3.0]]), np.array([[1.0, 1.0]])
    # Densities p = [1/4, 3/4], g = [1/2, 1/2]; KLD = 1/2 ln(2) + 1/2 ln(2/3) = 1/2 ln(4/3), to ~1e-15.
    assert kld(prediction, truth) == pytest.approx(0.5 * math.log(4 / 3), rel=1e-12)
    # Prediction first: the other order is 1/4 ln(1/2) + 3/4 ln(3/2).
    assert kld(truth, prediction) == pytest.approx(0.25 * math.log(0.5) + 0.75 * math.log(1.5), rel=1e-12)


def test_kld_epsilon_convention():
    # g = [1/2, 1/2] where p = [0, 1]: 1/2 ln(eps + (1/2) / eps) + 1/2 ln(eps + 1/2 / 1)
    # = ln(1/2) - 1/2 ln(eps) with eps = 2.2204e-16 (about 17.33); a 1e-20 floor would give about 22.3.
    expected = math.log(0.5) - 0.5 * math.log(2.2204e-16)
    assert KLD_EPSILON == 2.2204e-16
    assert kld(np.array([[0.0, 2.0]]), np.array([[1.0, 1.0]])) == pytest.approx(expected, rel=1e-12)
    # Pixels the truth gives 0 add nothing: g = [0, 1], p = [1/2, 1/2]: ln(eps + 1 / (1/2 + eps)) = ln 2.
    assert kld(np.array([[1.0, 1.0]]), np.array([[0.0, 2.0]])) == pytest.approx(math.log(2), rel=1e-12)


def test_sim_hand_computed():
    # p = [1/4, 3/4], g = [1/2, 1/2]: min = 1/4 + 1/2 = 3/4.
    assert sim(np.array([[1.0, 3.0]]), np.array([[1.0, 1.0]])) == pytest.approx(0.75, rel=1e-12)
    assert sim(np.array([[1.0, 3.0]]), np.array([[10.0, 30.0]])) == pytest.approx(1.0, rel=1e-12)
    assert sim(np.array([[1.0, 0.0]]), np.array([[0.0, 1.0]])) == 0.0
    # Negative values shift the minimum to 0 first: [-1, 1] -> [0, 2] -> [0, 1]; with [1/2, 1/2]: 1/2.
    assert sim(np.array([[-1.0, 1.0]]), np.array([[1.0, 1.0]])) == pytest.approx(0.5, rel=1e-12)


def test_all_zero_map_counts_as_uniform():
    # A map summing to 0 prefers no pixel: density 1/4 everywhere.
    truth = np.array([[1.0, 0.0], [0.0, 3.0]])  # density [1/4, 0, 0, 3/4]
    assert sim(np.zeros((2, 2)), truth) == pytest.approx(0.25 + 0.25, rel=1e-12)
    # KLD = 1/4 ln((1/4) / (1/4)) + 3/4 ln((3/4) / (1/4)) = 3/4 ln 3.
    assert kld(np.zeros((2, 2)), truth) == pytest.approx(0.75 * math.log(3), rel=1e-12)


# --- Bad input -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("x", "y", "message"),
    [
        ([5.0], [0.0], "off the 5x3 image"),  # x == width: floor would index past the last column
        ([0.0], [-0.1], "off the 5x3 image"),  # negative: numpy would wrap it to the last row
        ([4.99], [3.0], "off the 5x3 image"),
        ([float("nan")], [1.0], "NaN"),
        ([], [], "no fixations"),
        ([1.0, 2.0], [1.0], "different numbers"),
    ],
)
@pytest.mark.parametrize("metric", [nss, auc, auc_judd])
def test_fixation_metrics_reject_bad_fixations(metric, x, y, message, one_hot_3x5):
    with pytest.raises(MetricInputError, match=message):
        metric(one_hot_3x5, np.array(x), np.array(y))


def test_last_pixel_edge_is_on_the_image(one_hot_3x5):
    # x just under the width floors to the last column, y just under the height to the last row.
    assert nss(one_hot_3x5, np.array([4.999]), np.array([2.999])) == pytest.approx(-1 / SQRT14, rel=1e-12)


@pytest.mark.parametrize("metric", [cc, kld, sim])
def test_map_metrics_reject_mismatched_shapes_and_nan(metric):
    with pytest.raises(MetricInputError, match="differ in shape"):
        metric(np.ones((2, 3)), np.ones((3, 2)))
    with pytest.raises(MetricInputError, match="NaN"):
        metric(np.array([[1.0, np.nan]]), np.ones((1, 2)))
