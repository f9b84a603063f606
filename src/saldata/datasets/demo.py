"""A handful of synthetic images laid out like SALICON, generated offline on first use.

Sizes vary on purpose (one already 640x480, one grayscale) so the demo exercises resizing,
colour conversion and the no-resample path.
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

import numpy as np

from saldata.datasets.base import ImageSource
from saldata.datasets.salicon import SaliconReader
from saldata.extractors.random_models import default_cache_dir

DEMO_IMAGES = (  # (width, height, mode)
    (640, 480, "RGB"),
    (800, 600, "RGB"),
    (500, 375, "RGB"),
    (1024, 768, "RGB"),
    (640, 427, "L"),
    (480, 640, "RGB"),
)


class DemoReader(SaliconReader):
    name = "demo"
    splits = ("val",)
    layout = "  (generated) " + SaliconReader.layout.strip()

    def list_images(self, split: str) -> list[ImageSource]:
        self.root = self.root or demo_root()
        return super().list_images(split)


def demo_root(cache_dir: Path | None = None) -> Path:
    target = (cache_dir or default_cache_dir()) / "demo-v2"
    if (target / "images" / "val").is_dir():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".demo-", dir=target.parent))
    try:
        _write_demo(staging)
        try:
            staging.rename(target)
        except OSError:
            if not target.is_dir():
                raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return target


def _write_demo(root: Path) -> None:
    from PIL import Image, ImageDraw

    rng = np.random.default_rng(2017)
    (root / "images" / "val").mkdir(parents=True)
    (root / "maps" / "val").mkdir(parents=True)
    (root / "fixations" / "val").mkdir(parents=True)
    for i, (w, h, mode) in enumerate(DEMO_IMAGES, start=1):
        stem = f"COCO_val2014_{i:012d}"
        sky, ground = rng.integers(40, 220, size=(2, 3))
        image = Image.new("RGB", (w, h), tuple(int(c) for c in sky))
        draw = ImageDraw.Draw(image)
        draw.rectangle([0, h * 2 // 3, w, h], fill=tuple(int(c) for c in ground))
        centers = []
        for _ in range(3):
            cx, cy, r = (
                int(rng.integers(w // 8, w * 7 // 8)),
                int(rng.integers(h // 8, h * 7 // 8)),
                int(rng.integers(h // 12, h // 5)),
            )
            draw.ellipse([cx - r, cy - r, cx + r, cy + r], fill=tuple(int(c) for c in rng.integers(0, 255, 3)))
            centers.append((cx, cy, r))
        image.convert(mode).save(root / "images" / "val" / f"{stem}.jpg", quality=90)
        yy, xx = np.mgrid[0:h, 0:w]
        saliency = sum(np.exp(-((xx - cx) ** 2 + (yy - cy) ** 2) / (2.0 * r * r)) for cx, cy, r in centers)
        Image.fromarray(np.uint8(255 * saliency / saliency.max())).save(root / "maps" / "val" / f"{stem}.png")
        write_salicon_fixations(root / "fixations" / "val" / f"{stem}.mat", stem, (w, h), centers, rng)


def write_salicon_fixations(path: Path, stem: str, size: tuple[int, int], centers, rng, subjects: int = 5) -> None:
    """A SALICON 2017 ``.mat``: ``gaze`` (subjects x 1 struct: location, timestamp, fixations), 1-based (x, y).

    One subject fixates once and one never (the two shapes MATLAB squeezing turns odd), and
    one point lies outside the image, as eye trackers record.
    """
    import scipy.io

    w, h = size
    gaze = np.zeros((subjects, 1), dtype=[("location", "O"), ("timestamp", "O"), ("fixations", "O")])
    for s in range(subjects):
        count = {0: 1, 1: 0}.get(s, int(rng.integers(3, 9)))
        cx, cy, r = centers[s % len(centers)]
        points = np.stack([rng.normal(cx, r, count), rng.normal(cy, r, count)], axis=1) if count else np.zeros((0, 2))
        fixations = np.round(points).clip([1, 1], [w, h])
        if s == 2:
            fixations[0] = (w + 7, 0)  # off the image: loaders clip it to the border
        gaze[s, 0] = (fixations, np.arange(count, dtype=np.float64).reshape(-1, 1), fixations)
    scipy.io.savemat(path, {"image": stem, "resolution": np.array([h, w], dtype=np.float64), "gaze": gaze})
