"""Human attention drawn for a person: fixation points on the image, the saliency map as a picture.

Kept apart from ``overlay`` (the model's attention) so that every figure that puts people's
attention beside the model's draws it the same way.
"""

from __future__ import annotations

import numpy as np

from saldata.analysis.overlay import colorize

FIXATION_FILL = (0, 229, 255)  # cyan: stands out on photographs and on the attention colormap
FIXATION_OUTLINE = (0, 0, 0)


def draw_fixations(image: np.ndarray, x: np.ndarray, y: np.ndarray, radius: int = 4) -> np.ndarray:
    """``image`` (h, w, 3) uint8 with a dot at each fixation point (stored-image pixels, 0-based)."""
    from PIL import Image, ImageDraw

    picture = Image.fromarray(image)
    draw = ImageDraw.Draw(picture)
    for px, py in zip(np.asarray(x, np.float64), np.asarray(y, np.float64)):
        draw.ellipse((px - radius, py - radius, px + radius, py + radius), fill=FIXATION_FILL, outline=FIXATION_OUTLINE)
    return np.asarray(picture)


def saliency_picture(saliency: np.ndarray) -> np.ndarray:
    """A stored saliency map (h, w) in the attention colormap, scaled to its own min..max; (h, w, 3) uint8."""
    values = np.asarray(saliency, np.float32)
    low, span = float(values.min()), float(values.max() - values.min())
    return colorize((values - low) / span if span > 0 else np.zeros_like(values))
