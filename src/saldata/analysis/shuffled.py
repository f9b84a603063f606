"""The negatives of the shuffled AUC (``sauc``): fixations of other images of the same output.

pysaliency's sAUC (``AUC(..., nonfixations="shuffled")``) takes every fixation of every other
image, rescaled to this image's size, as the negatives. Here an image takes the fixations of up
to ``SAUC_OTHER_IMAGES`` other images: drawn without replacement from the output's images that
are done, have ground truth (``images.gt_status = 'ok'``) and at least one fixation, by a numpy
generator seeded with ``(SAUC_SEED, idx)``. The draw depends on the image's ``idx`` and that pool
only, so every run picks the same images, whatever the shard split or the order dask runs the
tasks in, and whatever ``--rows``, ``--layers`` or ``--grid`` say. An output with at most
``SAUC_OTHER_IMAGES`` other such images uses them all: pysaliency's definition exactly. (A fixed
number keeps the cost per map bounded on a 10,000-image output; 100 images of fixations are tens
of thousands of negatives.) Every image is stored at one size (the output's ``image_size``), so
pysaliency's rescaling of other images' points to this image's size is the identity.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from saldata.schemas.evaluation import SAUC_OTHER_IMAGES, SAUC_SEED


@dataclass(frozen=True, slots=True)
class ShuffledNegatives:
    """Every pooled image's fixation points, and the draw of each image's others."""

    idx: np.ndarray  # the image of each point, sorted
    x: np.ndarray  # stored-image pixels, as the catalog's fixations table holds them
    y: np.ndarray
    pool: np.ndarray  # the images that may be drawn: sorted, unique, each with at least one point

    @classmethod
    def of(cls, idx: np.ndarray, x: np.ndarray, y: np.ndarray, images) -> ShuffledNegatives:
        """The points of ``images`` (done, with ground truth) among ``idx``, ``x``, ``y``, in any order."""
        keep = np.isin(idx, np.asarray(list(images), dtype=np.int64))
        order = np.argsort(idx[keep], kind="stable")  # an image's points stay in the order given
        idx, x, y = (np.asarray(a)[keep][order] for a in (idx, x, y))
        return cls(idx, x, y, np.unique(idx))

    def others(self, image: int) -> np.ndarray:
        """The other images whose fixations are ``image``'s negatives, sorted."""
        candidates = self.pool[self.pool != image]
        if candidates.size <= SAUC_OTHER_IMAGES:
            return candidates
        rng = np.random.default_rng((SAUC_SEED, int(image)))
        return np.sort(rng.choice(candidates, SAUC_OTHER_IMAGES, replace=False))

    def points(self, image: int) -> tuple[np.ndarray, np.ndarray]:
        """(x, y) of the fixations of ``others(image)``, every point of each, duplicates kept."""
        chosen = self.others(image)
        starts = np.searchsorted(self.idx, chosen, "left")
        stops = np.searchsorted(self.idx, chosen, "right")
        parts = [slice(a, b) for a, b in zip(starts, stops)]
        if not parts:
            return np.empty(0), np.empty(0)
        return np.concatenate([self.x[s] for s in parts]), np.concatenate([self.y[s] for s in parts])
