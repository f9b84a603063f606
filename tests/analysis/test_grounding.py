"""Grounding scores on constructed maps and masks with known answers (analysis/grounding.py)."""

from __future__ import annotations

import numpy as np
import pytest

from saldata.analysis.grounding import POINTING_TOLERANCE_PX, ImageObjects, ground

HEIGHT, WIDTH = 60, 80


def box(top: int, left: int, height: int, width: int) -> np.ndarray:
    mask = np.zeros((HEIGHT, WIDTH), dtype=bool)
    mask[top : top + height, left : left + width] = True
    return mask


def test_all_mass_inside_the_mask_gives_mass_1_and_ratio_1_over_the_area():
    mask = box(10, 20, 6, 8)  # 48 pixels of 4800: area 0.01
    prediction = np.zeros((HEIGHT, WIDTH))
    prediction[mask] = np.random.default_rng(0).random(48) + 0.1
    scores = ground(prediction, ImageObjects.of([7], [mask]))
    assert scores.area_fraction[0] == 0.01
    assert scores.mass_in_object[0] == pytest.approx(1.0, abs=1e-15)
    assert scores.ratio[0] == pytest.approx(100.0, rel=1e-12)
    assert scores.pointing_hit[0]


def test_a_constant_map_has_ratio_1_on_every_object():
    masks = [box(0, 0, 3, 3), box(20, 30, 30, 40), np.ones((HEIGHT, WIDTH), dtype=bool)]
    scores = ground(np.full((HEIGHT, WIDTH), 0.25), ImageObjects.of([1, 2, 3], masks))
    np.testing.assert_allclose(scores.ratio, 1.0, rtol=1e-12)
    np.testing.assert_allclose(scores.mass_in_object, scores.area_fraction, rtol=1e-12)
    # Its maximum is every pixel; the first, the top-left one, is the peak: on the first and last object only.
    assert scores.pointing_hit.tolist() == [True, False, True]


def test_half_the_mass_on_a_quarter_of_the_image():
    prediction = np.ones((HEIGHT, WIDTH))
    mask = box(0, 0, HEIGHT // 2, WIDTH // 2)
    prediction[mask] = 3.0  # inside: 3 * 1200 = 3600 of 3600 + 3600
    scores = ground(prediction, ImageObjects.of([1], [mask]))
    assert (scores.mass_in_object[0], scores.area_fraction[0], scores.ratio[0]) == (0.5, 0.25, 2.0)


def test_a_peak_inside_is_a_hit_and_its_mass_counts_once_for_each_object_it_is_in():
    prediction = np.zeros((HEIGHT, WIDTH))
    prediction[30, 40] = 1.0
    outer, inner, elsewhere = box(20, 30, 20, 20), box(29, 39, 3, 3), box(0, 0, 5, 5)
    scores = ground(prediction, ImageObjects.of([1, 2, 3], [outer, inner, elsewhere]))
    assert scores.pointing_hit.tolist() == [True, True, False]
    assert scores.mass_in_object.tolist() == [1.0, 1.0, 0.0]


@pytest.mark.parametrize(("gap", "hit"), [(0, True), (10, True), (15, True), (16, False), (20, False)])
def test_a_peak_outside_is_a_hit_within_15_px(gap, hit):
    assert POINTING_TOLERANCE_PX == 15
    mask = box(20, 10, 10, 10)  # columns 10..19
    prediction = np.zeros((HEIGHT, WIDTH))
    prediction[25, 19 + gap] = 1.0  # gap px right of the mask's last column
    assert ground(prediction, ImageObjects.of([1], [mask])).pointing_hit[0] == hit


def test_the_tolerance_is_euclidean():
    mask = box(20, 10, 10, 10)  # rows 20..29, columns 10..19
    prediction = np.zeros((HEIGHT, WIDTH))
    prediction[29 + 11, 19 + 11] = 1.0  # 11 px down and right of the corner: sqrt(242) = 15.56 px
    assert not ground(prediction, ImageObjects.of([1], [mask])).pointing_hit[0]
    prediction[:] = 0
    prediction[29 + 10, 19 + 10] = 1.0  # sqrt(200) = 14.1 px
    assert ground(prediction, ImageObjects.of([1], [mask])).pointing_hit[0]


def test_negative_values_are_shifted_and_an_empty_mask_has_no_ratio():
    prediction = np.full((HEIGHT, WIDTH), -2.0)
    mask = box(0, 0, 10, 10)
    prediction[mask] = -1.0  # shifted: 1 inside, 0 outside
    scores = ground(prediction, ImageObjects.of([1, 2], [mask, np.zeros((HEIGHT, WIDTH), dtype=bool)]))
    np.testing.assert_allclose(scores.mass_in_object, [1.0, 0.0], rtol=1e-15)
    assert scores.ratio[0] == pytest.approx(48.0, rel=1e-12) and np.isnan(scores.ratio[1])
    assert scores.pointing_hit.tolist() == [True, False]


def test_a_map_of_another_size_is_refused():
    with pytest.raises(ValueError, match="upsample the map first"):
        ground(np.ones((HEIGHT, WIDTH + 1)), ImageObjects.of([1], [box(0, 0, 2, 2)]))
