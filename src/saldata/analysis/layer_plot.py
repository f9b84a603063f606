"""``OUT/eval/layers.png``: each metric against decoder layer, the centre bias as a dashed line.

Drawn with Pillow alone (no plotting library to install): one panel per metric, the layer means
as points joined by a line, whiskers of one standard error, and the centre-bias mean across.
"""

from __future__ import annotations

import math

from saldata.schemas.evaluation import METRIC_NAMES

PANEL = (300, 220)  # each metric's panel: (width, height)
MARGIN = (44, 26, 12, 34)  # left, top, right, bottom inside a panel
LABELS = {
    "nss": "NSS",
    "auc": "AUC",
    "auc_judd": "AUC-Judd",
    "sauc": "sAUC",
    "cc": "CC",
    "kld": "KLD (lower is better)",
    "sim": "SIM",
}
LINE, BASELINE, AXIS = (31, 119, 180), (214, 39, 40), (90, 90, 90)


def layers_figure(layers, centre, title: str):
    """A PIL image; ``layers`` and ``centre`` are ``evaluate.Level`` values."""
    from PIL import Image, ImageDraw, ImageFont

    font = ImageFont.load_default()
    width, height = PANEL[0] * len(METRIC_NAMES), PANEL[1] + 40
    figure = Image.new("RGB", (width, height), "white")
    draw = ImageDraw.Draw(figure)
    draw.text((8, 6), title, fill="black", font=font)
    draw.text((width - 300, 6), "--- centre bias", fill=BASELINE, font=font)
    draw.text((width - 200, 6), "o layer mean +/- 1 s.e.", fill=LINE, font=font)
    for i, name in enumerate(METRIC_NAMES):
        _panel(draw, font, (i * PANEL[0], 30), name, layers, centre)
    return figure


def _panel(draw, font, origin, name, layers, centre) -> None:
    left, top, right, bottom = MARGIN
    x0, y0 = origin[0] + left, origin[1] + top
    x1, y1 = origin[0] + PANEL[0] - right, origin[1] + PANEL[1] - bottom
    points = [(lv.layer, lv.mean[name], lv.stderr[name]) for lv in layers if not math.isnan(lv.mean[name])]
    values = [m for _, m, _ in points] + [m + s for _, m, s in points if not math.isnan(s)]
    values += [m - s for _, m, s in points if not math.isnan(s)]
    if not math.isnan(centre.mean[name]):
        values.append(centre.mean[name])
    draw.text((origin[0] + left, origin[1] + 4), LABELS[name], fill="black", font=font)
    draw.rectangle((x0, y0, x1, y1), outline=AXIS)
    if not values:
        draw.text((x0 + 8, y0 + 8), "no scores", fill=AXIS, font=font)
        return
    low, high = min(values), max(values)
    pad = (high - low) * 0.1 or abs(high) * 0.1 or 1.0
    low, high = low - pad, high + pad
    layer_numbers = [layer for layer, _, _ in points] or [0]
    first, last = min(layer_numbers), max(layer_numbers)

    def px(layer):
        return x0 + 10 + (x1 - x0 - 20) * ((layer - first) / (last - first) if last > first else 0.5)

    def py(value):
        return y1 - (y1 - y0) * (value - low) / (high - low)

    for value in (low + pad, high - pad):  # the data's range, labelled on the axis
        draw.text((origin[0] + 2, py(value) - 5), f"{value:.3g}", fill=AXIS, font=font)
    if not math.isnan(centre.mean[name]):
        y = py(centre.mean[name])
        for x in range(int(x0), int(x1), 8):
            draw.line((x, y, min(x + 4, x1), y), fill=BASELINE, width=2)
    line = [(px(layer), py(mean)) for layer, mean, _ in points]
    if len(line) > 1:
        draw.line(line, fill=LINE, width=2)
    for layer, mean, se in points:
        x, y = px(layer), py(mean)
        if not math.isnan(se):
            draw.line((x, py(mean - se), x, py(mean + se)), fill=LINE, width=1)
        draw.ellipse((x - 3, y - 3, x + 3, y + 3), fill=LINE)
    step = max(1, len(points) // 8)
    for layer, _, _ in points[::step]:
        draw.text((px(layer) - 4, y1 + 4), str(layer), fill="black", font=font)
    draw.text(((x0 + x1) / 2 - 14, y1 + 18), "layer", fill=AXIS, font=font)


def save_png(image, path) -> None:
    """Write ``image`` whole to ``path``, a file or an object (``write_atomic``)."""
    import io

    from saldata.storage.commits import write_atomic

    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    write_atomic(path, buffer.getvalue())
