"""Decode and reshape one image. Runs on CPU workers, ahead of the model."""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np

from saldata.datasets.base import ImageSource


@dataclass(slots=True)
class LoadedImage:
    """An image ready for the model, or the reason it is not."""

    idx: int
    source: ImageSource
    pixels: np.ndarray | None  # (height, width, 3) uint8
    orig_size: tuple[int, int] | None  # (width, height)
    load_s: float
    error: str | None = None


def load_image(idx: int, source: ImageSource, size: tuple[int, int]) -> LoadedImage:
    """RGB pixels at ``size`` = (width, height); an image already that size is not resampled."""
    from PIL import Image, ImageOps

    start = time.perf_counter()
    try:
        with Image.open(source.path) as image:
            image = ImageOps.exif_transpose(image)
            orig = image.size
            image = image.convert("RGB")
            if image.size != size:
                image = image.resize(size, Image.Resampling.BICUBIC)
            pixels = np.asarray(image, dtype=np.uint8)
        return LoadedImage(idx, source, pixels, orig, time.perf_counter() - start)
    except Exception as exc:  # any decoder failure is this image's, not the run's
        error = f"{source.path}: cannot read image ({type(exc).__name__}: {exc})"
        return LoadedImage(idx, source, None, None, time.perf_counter() - start, error)
