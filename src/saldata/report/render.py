"""The pictures of one image's page, drawn when the report is made (the browser computes nothing).

Per image, under ``images/<idx>/``: a thumbnail, the picture with its fixation points, its
saliency map, and one overlay per word and drawn (layer, head), each a small JPEG. The overlays
are ``analysis.overlay.overlay`` (what ``saldata show`` draws) at a display size; their labels are
``show``'s (token positions, peak). One call draws the images of one store shard.
"""

from __future__ import annotations

import io
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from saldata.analysis.overlay import PANEL

THUMB_SIDE = 160  # a gallery thumbnail's long side, pixels
PICTURE_SIDE = max(PANEL)  # the long side of an image page's pictures and overlays: show's panels
JPEG_QUALITY = 80
HEAD_MEAN = "m"  # the head part of an overlay's name for the heads' mean
WORD_FIELDS = ("word_index", "word", "first_position", "last_position", "char_start", "char_end")


@dataclass(frozen=True, slots=True)
class Drawn:
    """Which overlays each image gets: (layer, head) pairs, head ``HEAD_MEAN`` or a head number."""

    layers: tuple[int, ...]  # head-mean overlays at each
    head_layers: tuple[int, ...]  # every head's overlays at each, too
    n_heads: int
    max_words: int
    grid: str = "highres"
    reduce: str = "sum"

    def views(self) -> list[tuple[int, str]]:
        views = [(layer, HEAD_MEAN) for layer in self.layers]
        return views + [(layer, str(h)) for layer in self.head_layers for h in range(self.n_heads)]


@dataclass(slots=True)
class ImagePage:
    """What an image's page shows, besides its pictures (whose names follow ``overlay_name``)."""

    idx: int
    image_id: str
    text: str
    words: list[dict]  # WORD_FIELDS of each drawn word
    labels: dict[str, list[str]] = field(default_factory=dict)  # "layer-head" -> one label per drawn word
    has_saliency: bool = False
    n_fixations: int = 0
    picture_error: str | None = None  # why the source picture could not be read (drawn on grey)


def overlay_name(layer: int, head: str, word_index: int) -> str:
    return f"L{layer}-H{head}-W{word_index}.jpg"


def display_size(size: tuple[int, int], side: int) -> tuple[int, int]:
    """(width, height) of ``size`` scaled so its long side is ``side`` (never enlarged)."""
    width, height = size
    scale = min(1.0, side / max(width, height))
    return max(1, round(width * scale)), max(1, round(height * scale))


def jpeg(pixels: np.ndarray, size: tuple[int, int] | None = None) -> bytes:
    from PIL import Image

    picture = Image.fromarray(pixels)
    if size is not None and picture.size != size:
        picture = picture.resize(size, Image.Resampling.BILINEAR)
    buffer = io.BytesIO()
    picture.save(buffer, format="JPEG", quality=JPEG_QUALITY)
    return buffer.getvalue()


def draw_shard(path, rows: list[dict], fixations: dict, drawn: Drawn, target: Path, on_image=None, stop=None):
    """Draw every image of ``rows`` (done images of one shard) into ``target/images/<idx>/``: their
    ``ImagePage``s. ``stop`` (a ``threading.Event``) set ends it before the next image."""
    from saldata.readers.output import Output

    output = Output(path)  # one per task: the threads share no zarr handles
    pages = []
    for row in rows:
        if stop is not None and stop.is_set():
            break
        pages.append(draw_image(output, row, fixations.get(row["idx"], (np.zeros(0), np.zeros(0))), drawn, target))
        if on_image is not None:
            on_image()
    return pages


def draw_image(output, row: dict, points: tuple, drawn: Drawn, target: Path) -> ImagePage:
    from saldata.analysis.human import draw_fixations, saliency_picture
    from saldata.analysis.overlay import overlay, word_label

    folder = target / "images" / str(row["idx"])
    folder.mkdir(parents=True, exist_ok=True)
    size = tuple(output.attrs["image_size"])
    pixels, error = source_pixels(row, size)
    shown = display_size(size, PICTURE_SIDE)
    (folder / "thumb.jpg").write_bytes(jpeg(pixels, display_size(size, THUMB_SIDE)))
    x, y = points
    (folder / "picture.jpg").write_bytes(jpeg(draw_fixations(pixels, x, y), shown))
    page = ImagePage(row["idx"], row["image_id"], row["text"] or "", [], n_fixations=len(x), picture_error=error)
    if row["gt_status"] == "ok" and "saliency_map" in output.group:
        saliency = np.asarray(output.group["saliency_map"][row["idx"]])
        (folder / "saliency.jpg").write_bytes(jpeg(saliency_picture(saliency), shown))
        page.has_saliency = True
    small = np.asarray(_resized(pixels, shown))
    for layer, head in drawn.views():
        heads = "mean" if head == HEAD_MEAN else "all"
        words, maps = output.word_maps(row["idx"], grid=drawn.grid, reduce=drawn.reduce, heads=heads, layer=layer)
        words, maps = words[: drawn.max_words], maps[: drawn.max_words]
        if head != HEAD_MEAN:
            maps = maps[:, int(head)]
        page.words = [{k: w[k] for k in WORD_FIELDS} for w in words]
        page.labels[f"{layer}-{head}"] = [word_label(w, float(m.max())) for w, m in zip(words, maps)]
        for w, m in zip(words, maps):
            (folder / overlay_name(layer, head, w["word_index"])).write_bytes(jpeg(overlay(small, m)))
    return page


def source_pixels(row: dict, size: tuple[int, int]) -> tuple[np.ndarray, str | None]:
    """The source picture at the stored size, or grey and the reason (moved, unreadable), as ``show`` does."""
    from saldata.datasets.base import ImageSource
    from saldata.pipelines.preprocess import load_image

    source = ImageSource(row["dataset"], row["split"], row["image_id"], row["source_path"])
    loaded = load_image(row["idx"], source, size)
    if loaded.error:
        return np.full((size[1], size[0], 3), 128, np.uint8), loaded.error
    return loaded.pixels, None


def _resized(pixels: np.ndarray, size: tuple[int, int]):
    from PIL import Image

    return Image.fromarray(pixels).resize(size, Image.Resampling.BILINEAR)
