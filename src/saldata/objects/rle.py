"""Decoding COCO RLE masks with pycocotools, quietly.

pycocotools' ``decode`` wraps its C buffer in an object whose ``__array__`` predates NumPy 2's
``copy`` keyword, so NumPy 2 warns (DeprecationWarning) on every call; the array it returns is
right. The warning is filtered here, for that one call, knowingly.
"""

from __future__ import annotations

import warnings

import numpy as np


def decode(rle: dict) -> np.ndarray:
    """The mask of a compressed RLE (``{"size": [h, w], "counts": bytes}``), uint8 (h, w)."""
    from pycocotools import mask as coco_mask

    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=r"__array__ implementation doesn't accept a copy keyword")
        return np.asarray(coco_mask.decode(rle))
