"""The image half of the model's inputs (pixel values and size), made wherever the caller runs.

The Hugging Face image processor (resize, anyres tiling, normalise) costs ~40 ms per 640x480
image on one core. On a GPU that is about a third of the model actor's time at batch 16, so
the pipeline runs it on CPU workers beside the decoding. It imports torch, so on a CPU-only
node, where workers and model share the same cores anyway, it stays in the model actor.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np

PLACES = ("auto", "workers", "actor")


@dataclass(slots=True)
class ImageInputs:
    """One image as the model takes it."""

    pixel_values: np.ndarray  # (patches, 3, crop, crop) float32: base view + high-res tiles
    image_size: tuple[int, int]  # (height, width), what the processor reports as image_sizes


@lru_cache(maxsize=4)
def image_processor(model_dir: Path):
    """The model's image processor, loaded once per process."""
    from transformers import AutoImageProcessor

    from saldata.extractors.models import LOCAL_ONLY

    return AutoImageProcessor.from_pretrained(model_dir, **LOCAL_ONLY)


def prepare_images(processor, images: list[np.ndarray]) -> list[ImageInputs]:
    """HxWx3 uint8 images -> model inputs, one per image (each keeps its own tiles)."""
    out = processor(list(images), return_tensors="np")
    return [
        ImageInputs(np.ascontiguousarray(values), (int(size[0]), int(size[1])))
        for values, size in zip(out["pixel_values"], out["image_sizes"])
    ]
