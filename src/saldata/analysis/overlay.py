"""A figure for a person: the image, its description, and one attention overlay per word, beside
where people looked at the same image (its fixation points and saliency map) where the output has them."""

from __future__ import annotations

import textwrap
from dataclasses import dataclass

import numpy as np

PANEL = (320, 240)  # each panel's (width, height)
COLUMNS = 4
LABEL_HEIGHT = 22
# Anchors of a perceptually ordered dark-to-bright colormap (black, purple, red, orange, yellow).
COLORMAP_ANCHORS = np.array([[0, 0, 4], [87, 16, 110], [188, 55, 84], [249, 142, 9], [252, 255, 164]], np.float32)


def colorize(values: np.ndarray) -> np.ndarray:
    """Map values in [0, 1] to RGB uint8."""
    position = np.clip(values, 0, 1) * (len(COLORMAP_ANCHORS) - 1)
    low = np.floor(position).astype(int).clip(0, len(COLORMAP_ANCHORS) - 2)
    frac = (position - low)[..., None]
    return (COLORMAP_ANCHORS[low] * (1 - frac) + COLORMAP_ANCHORS[low + 1] * frac).astype(np.uint8)


def overlay(image: np.ndarray, attention: np.ndarray, alpha: float = 0.6) -> np.ndarray:
    """Blend ``attention`` (rows, cols), upsampled to the image, over ``image`` (h, w, 3) uint8."""
    from PIL import Image

    height, width = image.shape[:2]
    # Min-max per map: where a word looks most and least, even when its attention is nearly flat.
    low, span = float(attention.min()), float(attention.max() - attention.min())
    scaled = (attention - low) / span if span > 0 else np.zeros_like(attention)
    upsampled = Image.fromarray(scaled.astype(np.float32), mode="F").resize((width, height), Image.Resampling.BILINEAR)
    heat = colorize(np.asarray(upsampled)).astype(np.float32)
    return (image.astype(np.float32) * (1 - alpha) + heat * alpha).astype(np.uint8)


# Fixation points are drawn as analysis/human.py draws them (the report's too), on the image at half
# brightness (no channel above 128): they stand out, and every pixel of their fill colour is a point's.
FIXATION_RADIUS = 3  # pixels of the panel
DIMMED = 0.5


@dataclass(frozen=True, slots=True)
class HumanAttention:
    """Where people looked at one image, at the stored image size: fixation points and the saliency map."""

    x: np.ndarray  # 0-based columns of the fixation points (catalog fixations.x)
    y: np.ndarray
    saliency: np.ndarray  # (height, width), the stored saliency_map


def fixation_panel(small: np.ndarray, x: np.ndarray, y: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """The panel-sized image, dimmed, with a dot at each point (stored-image pixels; ``size`` is that
    image's (width, height))."""
    from saldata.analysis.human import draw_fixations  # it imports this module's colormap

    dimmed = (small.astype(np.float32) * DIMMED).astype(np.uint8)
    sx, sy = small.shape[1] / size[0], small.shape[0] / size[1]
    return draw_fixations(dimmed, np.asarray(x, np.float64) * sx, np.asarray(y, np.float64) * sy, FIXATION_RADIUS)


def saliency_panel(saliency: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """The saliency map alone at the panel's ``size`` (width, height), in the colormap from its min to its max."""
    from PIL import Image

    from saldata.analysis.human import saliency_picture

    resized = Image.fromarray(np.asarray(saliency, np.float32), mode="F").resize(size, Image.Resampling.BILINEAR)
    return saliency_picture(np.asarray(resized))


def word_label(word: dict, peak: float) -> str:
    """A panel's label: the word, its token positions (rows of the store's per-token arrays), its peak."""
    first, last = word["first_position"], word["last_position"]
    tokens = f"token {first}" if first == last else f"tokens {first}-{last}"
    return f"{word['word']}  ({tokens}, max {peak:.3g})"


def colour_scale(width: int, height: int = 12) -> np.ndarray:
    """(height, width, 3) uint8: the colormap from 0 (left) to 1 (right)."""
    return np.repeat(colorize(np.linspace(0, 1, width, dtype=np.float32))[None], height, axis=0)


SCALE_HEIGHT = 34


def word_figure(
    image: np.ndarray,
    text: str,
    labels: list[str],
    maps: np.ndarray,
    title: str,
    *,
    image_label: str = "",
    human: HumanAttention | None = None,
):
    """A PIL image: ``title`` and ``text`` on top; then the picture, the fixations and saliency map
    (``human``, where given), one panel per word with its map; then the colour scale. The title is
    also the figure's ``info["title"]`` (saved as the file's title)."""
    from PIL import Image, ImageDraw, ImageFont

    font = ImageFont.load_default()
    small = np.asarray(Image.fromarray(image).resize(PANEL, Image.Resampling.BILINEAR))
    panels = [(small, image_label)]
    if human is not None:
        size = (image.shape[1], image.shape[0])
        panels += [
            (fixation_panel(small, human.x, human.y, size), f"fixations ({len(human.x)} points)"),
            (saliency_panel(human.saliency, PANEL), "saliency map (people)"),
        ]
    panels += [(overlay(small, m), label) for label, m in zip(labels, maps)]
    rows = -(-len(panels) // COLUMNS)
    wrapped = [title] + (textwrap.wrap(text or "(no description)", width=COLUMNS * PANEL[0] // 7) or [""])
    text_height = 14 * len(wrapped) + 10
    grid_height = rows * (PANEL[1] + LABEL_HEIGHT)
    figure = Image.new("RGB", (COLUMNS * PANEL[0], text_height + grid_height + SCALE_HEIGHT), "white")
    draw = ImageDraw.Draw(figure)
    for i, line in enumerate(wrapped):
        draw.text((6, 5 + 14 * i), line, fill="black", font=font)
    for i, (pixels, label) in enumerate(panels):
        x = (i % COLUMNS) * PANEL[0]
        y = text_height + (i // COLUMNS) * (PANEL[1] + LABEL_HEIGHT)
        draw.text((x + 6, y + 4), label, fill="black", font=font)
        figure.paste(Image.fromarray(pixels), (x, y + LABEL_HEIGHT))
    # Each overlay is scaled to its own map's range (see ``overlay``), so the scale reads min..max of that map.
    top = text_height + grid_height + 4
    scale = colour_scale(PANEL[0] * 2)
    figure.paste(Image.fromarray(scale), (PANEL[0], top))
    draw.text((6, top), "colour scale:", fill="black", font=font)
    draw.text((PANEL[0], top + 14), "panel's min", fill="black", font=font)
    draw.text((PANEL[0] * 3 - 60, top + 14), "panel's max", fill="black", font=font)
    figure.info["title"] = title
    return figure
