"""How much of a map lands on an object: the grounding scores of ``saldata evaluate --objects``.

For a map at the stored image size (the same upsampled, optionally blurred map ``evaluate``
scores) and an object's mask at that size (a COCO mask rasterised, a Visual Genome box filled):

- ``mass_in_object``: the share of the map's mass on the mask's pixels. The map is first made a
  density as ``kld`` and ``sim`` make it (``metrics.to_density``: shifted to a minimum of 0 if
  it has negative values; a map summing to 0 is uniform).
- ``area_fraction``: the share of the image's pixels the mask covers.
- ``ratio``: ``mass_in_object / area_fraction``, 1 for a map that prefers no pixel (chance), above
  1 where the map concentrates on the object; null for an empty mask.
- ``pointing_hit``: the pointing game's hit: the map's maximum lies on the object or within
  ``POINTING_TOLERANCE_PX`` pixels of it (Euclidean distance between pixel centres, as the
  pointing game's 15 px tolerance: the mask dilated by a distance transform). Where several pixels
  share the maximum, the first in row-major order is the peak (``numpy.argmax``), so a constant
  map points at the top-left pixel.

An image's objects are prepared once (``ImageObjects``) for the many maps scored against them:
each mask as the flat indices of its pixels (memory in proportion to the objects' area), and its
tolerance region as a bool image.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from saldata.analysis import metrics
from saldata.schemas.evaluation import POINTING_TOLERANCE_PX


@dataclass(frozen=True, slots=True)
class ImageObjects:
    """The objects of one image, ready to score many maps against."""

    object_ids: tuple[int, ...]
    shape: tuple[int, int]  # (height, width) of the stored image
    pixels: tuple[np.ndarray, ...]  # per object, the flat indices (row * width + col) of its mask's pixels
    near: np.ndarray  # (objects, height * width) bool: on the object or within the pointing tolerance
    area_fraction: np.ndarray  # (objects,)

    @classmethod
    def of(cls, object_ids, masks: list[np.ndarray]) -> ImageObjects:
        """``masks``: one bool (height, width) array per object of ``object_ids``, all one size."""
        from scipy.ndimage import distance_transform_edt

        shapes = {m.shape for m in masks}
        if len(shapes) > 1:
            raise ValueError(f"the masks of one image differ in size: {sorted(shapes)}")
        shape = shapes.pop() if shapes else (0, 0)
        masks = [np.asarray(m, dtype=bool) for m in masks]
        near = np.zeros((len(masks), shape[0] * shape[1]), dtype=bool)
        for i, mask in enumerate(masks):
            if mask.any():  # an empty mask has no pixel to be near
                near[i] = (distance_transform_edt(~mask) <= POINTING_TOLERANCE_PX).ravel()
        pixels = tuple(np.flatnonzero(m) for m in masks)
        area = np.array([p.size / max(1, near.shape[1]) for p in pixels], dtype=np.float64)
        return cls(tuple(int(i) for i in object_ids), shape, pixels, near, area)


@dataclass(frozen=True, slots=True)
class Grounding:
    """One map's scores against every object of an image, in ``ImageObjects.object_ids`` order."""

    mass_in_object: np.ndarray
    area_fraction: np.ndarray
    ratio: np.ndarray  # NaN where the mask is empty
    pointing_hit: np.ndarray  # bool


def ground(prediction: np.ndarray, objects: ImageObjects) -> Grounding:
    """Every score of the module docstring for ``prediction`` (height, width) against ``objects``."""
    if prediction.shape != objects.shape:
        raise ValueError(f"a {prediction.shape} map against masks of {objects.shape}: upsample the map first")
    density = metrics.to_density(np.asarray(prediction, dtype=np.float64)).ravel()
    mass = np.array([density[p].sum() for p in objects.pixels], dtype=np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = np.where(objects.area_fraction > 0, mass / objects.area_fraction, np.nan)
    hit = objects.near[:, int(np.argmax(prediction))]
    return Grounding(mass, objects.area_fraction, ratio, hit)
