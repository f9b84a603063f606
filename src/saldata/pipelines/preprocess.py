"""Decode and reshape one image. Runs on CPU workers, ahead of the model."""

from __future__ import annotations

import os
import time
from dataclasses import dataclass

import numpy as np

from saldata.datasets.base import ImageSource
from saldata.extractors.image_inputs import ImageInputs


@dataclass(slots=True)
class LoadedImage:
    """An image ready for the model, or the reason it is not."""

    idx: int
    source: ImageSource
    pixels: np.ndarray | None  # (height, width, 3) uint8
    orig_size: tuple[int, int] | None  # (width, height)
    load_s: float
    error: str | None = None
    inputs: ImageInputs | None = None  # made on the worker when the image processor runs there


def load_image(idx: int, source: ImageSource, size: tuple[int, int]) -> LoadedImage:
    """RGB pixels at ``size`` = (width, height); an image already that size is not resampled.

    Any problem with the file becomes this image's error, naming the file and the problem;
    it never stops the run.
    """
    start = time.perf_counter()
    try:
        pixels, orig = decode_rgb(source.path, size)
        return LoadedImage(idx, source, pixels, orig, time.perf_counter() - start)
    except ImageProblem as exc:
        error = f"{source.path}: {exc}"
    except Exception as exc:  # whatever else a decoder throws is still this image's, not the run's
        error = f"{source.path}: cannot read image ({type(exc).__name__}: {exc})"
    return LoadedImage(idx, source, None, None, time.perf_counter() - start, error)


class ImageProblem(ValueError):
    """A file that is not a usable image, with the reason in words."""


def decode_rgb(path: str, size: tuple[int, int]) -> tuple[np.ndarray, tuple[int, int]]:
    """(pixels, original (width, height)): EXIF orientation applied, any mode made 8-bit RGB."""
    import warnings

    from PIL import Image, ImageOps, UnidentifiedImageError

    try:
        if os.stat(path).st_size == 0:
            raise ImageProblem("empty file (0 bytes)")
        with warnings.catch_warnings():
            # Pillow only warns between its limit and twice it; refuse everything above the limit.
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(path) as image:
                image = ImageOps.exif_transpose(image)
                image.load()
                orig = image.size
                rgb = to_rgb(image)
    except PermissionError:
        raise ImageProblem("permission denied") from None
    except FileNotFoundError:
        raise ImageProblem("file not found") from None
    except UnidentifiedImageError:
        raise ImageProblem("not an image (unknown or corrupt format)") from None
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise ImageProblem(f"decompression bomb refused ({exc})") from None
    except OSError as exc:
        if "truncated" in str(exc):
            raise ImageProblem(f"truncated image data ({exc})") from None
        raise ImageProblem(f"corrupt image data ({exc})") from None
    if rgb.size != size:
        rgb = rgb.resize(size, Image.Resampling.BICUBIC)
    return np.asarray(rgb, dtype=np.uint8), orig


def to_rgb(image):
    """8-bit RGB from any Pillow mode: 16-bit grey is rescaled (not clipped to white), transparency
    is composited over white (what a viewer sees), CMYK and palettes are converted."""
    from PIL import Image

    if image.mode in ("I;16", "I;16B", "I;16L", "I;16N", "I"):
        values = np.asarray(image, dtype=np.float64) / 257.0  # 0..65535 -> 0..255
        return Image.fromarray(np.uint8(np.clip(np.round(values), 0, 255))).convert("RGB")
    if image.mode == "F":
        values = np.asarray(image, dtype=np.float64)
        top = values.max()
        return Image.fromarray(np.uint8(np.clip(255 * values / top if top > 0 else values, 0, 255))).convert("RGB")
    if image.mode in ("RGBA", "LA", "PA", "La", "RGBa") or (image.mode == "P" and "transparency" in image.info):
        rgba = image.convert("RGBA")
        white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(white, rgba).convert("RGB")
    return image.convert("RGB")
