"""The shuffled AUC (``sauc``) on maps with known answers, and the draw of its negatives."""

from __future__ import annotations

import numpy as np
import pytest

from saldata.analysis.metrics import MetricInputError, centre_bias, sauc
from saldata.analysis.shuffled import ShuffledNegatives
from saldata.schemas.evaluation import SAUC_OTHER_IMAGES, SAUC_SEED


def test_a_constant_map_scores_one_half():
    x, y = np.array([1.5, 2.0]), np.array([0.5, 3.0])
    assert sauc(np.full((5, 6), 0.3), x, y, np.array([4.0, 0.0, 5.9]), np.array([4.0, 1.0, 2.0])) == 0.5


def test_a_map_scores_one_half_when_this_image_is_fixated_where_the_others_are():
    # The negatives' density is the positives' own: every pair (p, n) has its mirror (n, p), so half the
    # pairs rank the positive higher, ties counted half, whatever the map.
    rng = np.random.default_rng(1)
    x, y = rng.uniform(0, 30, 40), rng.uniform(0, 20, 40)
    for prediction in (rng.random((20, 30)), centre_bias(20, 30), np.round(rng.random((20, 30)) * 3)):
        assert sauc(prediction, x, y, x.copy(), y.copy()) == pytest.approx(0.5, abs=1e-15)


def test_a_map_on_this_images_fixations_and_zero_at_the_others_scores_one():
    x, y = np.array([2.2, 7.9, 7.1]), np.array([1.0, 4.5, 4.0])
    prediction = np.zeros((6, 9))
    prediction[np.floor(y).astype(int), np.floor(x).astype(int)] = 1.0
    other_x, other_y = np.array([0.0, 8.5, 4.0, 4.2]), np.array([5.0, 0.0, 3.0, 3.9])
    assert sauc(prediction, x, y, other_x, other_y) == 1.0
    # Reversed (the map on the others' points only), every positive ranks below every negative.
    assert sauc(1.0 - prediction, x, y, other_x, other_y) == 0.0


def test_ties_count_half_and_duplicates_each_count():
    # Map values: positives 2 and 1 (its pixel fixated twice); negatives 1, 1, 3. Positive 2: two
    # negatives below -> 2/3. Positive 1 (twice): none below, two tie -> (0 + 0.5 * 2) / 3 = 1/3 each.
    # Mean over the three fixations: (2/3 + 1/3 + 1/3) / 3 = 4/9.
    prediction = np.array([[2.0, 1.0, 3.0]])
    x, y = np.array([0.5, 1.5, 1.2]), np.zeros(3)
    other_x, other_y = np.array([1.0, 1.9, 2.0]), np.zeros(3)
    assert sauc(prediction, x, y, other_x, other_y) == pytest.approx(4 / 9, abs=1e-15)


def test_no_negatives_or_a_negative_off_the_image_is_undefined():
    prediction = np.random.default_rng(0).random((4, 4))
    with pytest.raises(MetricInputError, match="no other image"):
        sauc(prediction, np.array([1.0]), np.array([1.0]), np.empty(0), np.empty(0))
    with pytest.raises(MetricInputError, match="off the 4x4 image"):
        sauc(prediction, np.array([1.0]), np.array([1.0]), np.array([4.0]), np.array([0.0]))


def _points(n_images: int, per_image: int = 3):
    idx = np.repeat(np.arange(n_images), per_image)
    x = idx * 10.0 + np.tile(np.arange(per_image), n_images)  # each point names its image: x // 10
    return idx, x, x / 2


def test_a_small_output_uses_every_other_image_with_fixations():
    idx, x, y = _points(6)
    negatives = ShuffledNegatives.of(idx, x, y, images=[0, 1, 2, 3, 5])  # image 4 not done: never drawn
    np.testing.assert_array_equal(negatives.others(2), [0, 1, 3, 5])
    other_x, other_y = negatives.points(2)
    np.testing.assert_array_equal(other_x // 10, np.repeat([0, 1, 3, 5], 3))
    np.testing.assert_array_equal(other_y, other_x / 2)
    assert negatives.points(7)[0].size == 15  # an image without fixations of its own takes all the others


def test_a_large_output_draws_a_fixed_number_of_others_whatever_the_order_or_the_split():
    n_images = SAUC_OTHER_IMAGES * 3
    idx, x, y = _points(n_images)
    every = list(range(n_images))
    negatives = ShuffledNegatives.of(idx, x, y, every)
    order = np.random.default_rng(5).permutation(idx.size)  # points listed in another order
    shuffled = ShuffledNegatives.of(idx[order], x[order], y[order], every[::-1])
    drawn = set()
    for image in (0, 7, n_images - 1):
        others = negatives.others(image)
        assert len(others) == SAUC_OTHER_IMAGES == len(set(others.tolist()))
        assert image not in others
        np.testing.assert_array_equal(others, shuffled.others(image))
        np.testing.assert_array_equal(np.sort(negatives.points(image)[0]), np.sort(shuffled.points(image)[0]))
        drawn.add(tuple(others))
    assert len(drawn) == 3  # each image its own draw


def test_the_draw_is_the_documented_one():
    """README: the images are drawn without replacement by numpy's default_rng seeded (SAUC_SEED, idx)."""
    n_images = SAUC_OTHER_IMAGES + 50
    idx, x, y = _points(n_images)
    negatives = ShuffledNegatives.of(idx, x, y, range(n_images))
    candidates = np.array([i for i in range(n_images) if i != 9])
    expected = np.sort(np.random.default_rng((SAUC_SEED, 9)).choice(candidates, SAUC_OTHER_IMAGES, replace=False))
    np.testing.assert_array_equal(negatives.others(9), expected)
