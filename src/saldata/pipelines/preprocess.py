"""Decode and reshape one image. Runs on CPU workers, ahead of the model."""

from __future__ import annotations

import hashlib
import io
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
    fingerprint: dict | None = None  # the source file as read: path, size, mtime_ns, blake2b


def fingerprint(path: str, data: bytes | None, stat: os.stat_result | None) -> dict:
    """What identifies the source file a row was made from; a resume compares it to today's file."""
    return {
        "path": path,
        "size": stat.st_size if stat else None,
        "mtime_ns": stat.st_mtime_ns if stat else None,
        "blake2b": hashlib.blake2b(data, digest_size=16).hexdigest() if data is not None else None,
    }


def load_image(idx: int, source: ImageSource, size: tuple[int, int]) -> LoadedImage:
    """RGB pixels at ``size`` = (width, height); an image already that size is not resampled.

    Any problem with the file becomes this image's error, naming the file and the problem;
    it never stops the run.
    """
    start = time.perf_counter()
    data = stat = None
    try:
        stat, data = read_source(source.path)
        pixels, orig = decode_rgb(source.path, size, data)
        loaded = LoadedImage(idx, source, pixels, orig, time.perf_counter() - start)
        loaded.fingerprint = fingerprint(source.path, data, stat)
        return loaded
    except ImageProblem as exc:
        error = f"{source.path}: {exc}"
    except Exception as exc:  # whatever else a decoder throws is still this image's, not the run's
        error = f"{source.path}: cannot read image ({type(exc).__name__}: {exc})"
    failed = LoadedImage(idx, source, None, None, time.perf_counter() - start, error)
    failed.fingerprint = fingerprint(source.path, data, stat)
    return failed


def read_source(path: str) -> tuple[os.stat_result, bytes]:
    """The file's bytes, read once: they are hashed for the fingerprint and decoded from memory."""
    try:
        with open(path, "rb") as f:
            return os.fstat(f.fileno()), f.read()
    except PermissionError:
        raise ImageProblem("permission denied") from None
    except FileNotFoundError:
        raise ImageProblem("file not found") from None
    except IsADirectoryError:
        raise ImageProblem("not a file (a directory)") from None


class ImageProblem(ValueError):
    """A file that is not a usable image, with the reason in words."""


def decode_rgb(path: str, size: tuple[int, int], data: bytes | None = None) -> tuple[np.ndarray, tuple[int, int]]:
    """(pixels, original (width, height)): EXIF orientation applied, any mode made 8-bit RGB.

    ``data`` is the file's content when the caller has read it already (``path`` then only names it).
    """
    import warnings

    from PIL import Image, ImageOps, UnidentifiedImageError

    try:
        if (len(data) if data is not None else os.stat(path).st_size) == 0:
            raise ImageProblem("empty file (0 bytes)")
        with warnings.catch_warnings():
            # Pillow only warns between its limit and twice it; refuse everything above the limit.
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data) if data is not None else path) as image:
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
