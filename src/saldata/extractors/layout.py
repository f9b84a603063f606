"""Which position of the image-token span is which grid cell, for any image size.

LLaVA-Next replaces the prompt's ``<image>`` placeholder by a span of tokens: first the base
(whole-image) crop's patch grid, row-major; then the high-resolution grid assembled from the
any-res crops, with the rows and columns that only cover padding removed, and one "newline"
token after each row. This module derives that layout from the model config and the image
size alone, using transformers' own ``select_best_resolution`` and ``unpad_image`` so it
follows whatever the model does. Capture, store and tests all use it; nothing hard-codes
offsets.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from saldata.errors import ConfigError


@dataclass(frozen=True, slots=True)
class ImageTokenLayout:
    """Positions, relative to the first image token, of every grid cell.

    ``base_positions[r, c]`` and ``highres_positions[r, c]`` index into the image-token span;
    ``highres_origin`` is where the kept high-res grid starts inside the padded crop mosaic
    (used to check the layout against the model's own packing).
    """

    image_size: tuple[int, int]  # (width, height) given to the processor
    n_tokens: int
    base_positions: np.ndarray  # (base_rows, base_cols) int64
    highres_positions: np.ndarray  # (highres_rows, highres_cols) int64
    newline_positions: np.ndarray  # (highres_rows,) int64
    crop_grid: tuple[int, int]  # crops (down, across) in the any-res mosaic
    patches_per_crop: int  # patches along one side of a crop
    highres_origin: tuple[int, int]

    @property
    def base_grid(self) -> tuple[int, int]:
        return tuple(self.base_positions.shape)

    @property
    def highres_grid(self) -> tuple[int, int]:
        return tuple(self.highres_positions.shape)


def layout_for(config, image_size: tuple[int, int]) -> ImageTokenLayout:
    """Layout for a LLaVA-Next ``config`` and an image of ``image_size`` = (width, height)."""
    vision = config.vision_config
    return _layout(
        vision.image_size,
        vision.patch_size,
        tuple(tuple(p) for p in config.image_grid_pinpoints),
        config.vision_feature_select_strategy,
        tuple(image_size),
    )


@lru_cache(maxsize=64)
def _layout(crop_px: int, patch_px: int, pinpoints: tuple, strategy: str, image_size: tuple[int, int]):
    import torch
    from transformers.image_processing_utils import select_best_resolution
    from transformers.models.llava_next.modeling_llava_next import unpad_image

    if strategy != "default":
        raise ConfigError(
            f"vision_feature_select_strategy={strategy!r} is not supported; saldata supports 'default' "
            "(CLS dropped), which every llava-hf LLaVA-Next checkpoint uses."
        )
    width, height = image_size
    side = crop_px // patch_px
    best_h, best_w = select_best_resolution((height, width), [list(p) for p in pinpoints])
    crops_down, crops_across = best_h // crop_px, best_w // crop_px
    padded = torch.arange(crops_down * side * crops_across * side).view(1, crops_down * side, crops_across * side)
    kept = unpad_image(padded, (height, width))[0].numpy()
    rows, cols = kept.shape
    origin = divmod(int(kept[0, 0]), crops_across * side)

    n_base = side * side
    base = np.arange(n_base, dtype=np.int64).reshape(side, side)
    row_starts = n_base + np.arange(rows, dtype=np.int64) * (cols + 1)
    highres = row_starts[:, None] + np.arange(cols, dtype=np.int64)[None, :]
    return ImageTokenLayout(
        image_size=(width, height),
        n_tokens=n_base + rows * (cols + 1),
        base_positions=base,
        highres_positions=highres,
        newline_positions=row_starts + cols,
        crop_grid=(crops_down, crops_across),
        patches_per_crop=side,
        highres_origin=origin,
    )
