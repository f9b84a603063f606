"""``OUT/eval/layers.png``: each metric against decoder layer, the centre bias as a dashed line.

Drawn with Pillow alone (no plotting library to install): one panel per metric, the layer means
as points joined by a line, whiskers of one standard error, and the centre-bias mean across.
``evaluate --objects`` draws ``OUT/eval/objects.png`` with it too: its measures, and a second
series by layer (the words' maps against the objects they do not name) in grey.
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
LINE, BASELINE, AXIS, SECOND = (31, 119, 180), (214, 39, 40), (90, 90, 90), (150, 150, 150)


def layers_figure(
    layers,
    centre,
    title: str,
    names=METRIC_NAMES,
    labels=None,
    line_label: str = "o layer mean +/- 1 s.e.",
    second=None,
    second_label: str = "",
):
    """A PIL image; ``layers``, ``centre`` (and ``second``, a series by layer drawn in grey) hold, for each
    of ``names``, ``mean[name]`` and ``stderr[name]`` by ``layer`` (``evaluate.Level`` values, or alike)."""
    from PIL import Image, ImageDraw, ImageFont

    labels = labels or LABELS
    font = ImageFont.load_default()
    legend = [("--- centre bias", BASELINE), (line_label, LINE)] + ([(second_label, SECOND)] if second else [])
    measure = ImageDraw.Draw(Image.new("RGB", (1, 1)))
    legend_width = sum(measure.textlength(text, font=font) + 16 for text, _ in legend)
    width = PANEL[0] * len(names)
    # The legend beside the title where both fit, else on a line of its own below it.
    below = measure.textlength(title, font=font) + legend_width + 24 > width
    top = 44 if below else 30
    figure = Image.new("RGB", (width, PANEL[1] + top + 10), "white")
    draw = ImageDraw.Draw(figure)
    draw.text((8, 6), title, fill="black", font=font)
    x = width - 8 - legend_width
    for text, colour in legend:
        draw.text((x, 20 if below else 6), text, fill=colour, font=font)
        x += draw.textlength(text, font=font) + 16
    series = ([(second, SECOND)] if second else []) + [(layers, LINE)]  # the main series drawn last, on top
    for i, name in enumerate(names):
        _panel(draw, font, (i * PANEL[0], top), name, series, centre, labels[name])
    return figure


def _panel(draw, font, origin, name, series, centre, label: str) -> None:
    left, top, right, bottom = MARGIN
    x0, y0 = origin[0] + left, origin[1] + top
    x1, y1 = origin[0] + PANEL[0] - right, origin[1] + PANEL[1] - bottom
    lines = [
        ([(lv.layer, lv.mean[name], lv.stderr[name]) for lv in levels if not math.isnan(lv.mean[name])], colour)
        for levels, colour in series
    ]
    points = [point for line, _ in lines for point in line]
    values = [m for _, m, _ in points] + [m + s for _, m, s in points if not math.isnan(s)]
    values += [m - s for _, m, s in points if not math.isnan(s)]
    if not math.isnan(centre.mean[name]):
        values.append(centre.mean[name])
    draw.text((origin[0] + left, origin[1] + 4), label, fill="black", font=font)
    draw.rectangle((x0, y0, x1, y1), outline=AXIS)
    if not values:
        draw.text((x0 + 8, y0 + 8), "no scores", fill=AXIS, font=font)
        return
    low, high = min(values), max(values)
    pad = (high - low) * 0.1 or abs(high) * 0.1 or 1.0
    low, high = low - pad, high + pad
    layer_numbers = sorted({layer for layer, _, _ in points}) or [0]
    first, last = layer_numbers[0], layer_numbers[-1]

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
    for line, colour in lines:
        if len(line) > 1:
            draw.line([(px(layer), py(mean)) for layer, mean, _ in line], fill=colour, width=2)
        for layer, mean, se in line:
            x, y = px(layer), py(mean)
            if not math.isnan(se):
                draw.line((x, py(mean - se), x, py(mean + se)), fill=colour, width=1)
            draw.ellipse((x - 3, y - 3, x + 3, y + 3), fill=colour)
    step = max(1, len(layer_numbers) // 8)
    for layer in layer_numbers[::step]:
        draw.text((px(layer) - 4, y1 + 4), str(layer), fill="black", font=font)
    draw.text(((x0 + x1) / 2 - 14, y1 + 18), "layer", fill=AXIS, font=font)


def save_png(image, path) -> None:
    """Write ``image`` whole to ``path``, a file or an object (``write_atomic``)."""
    import io

    from saldata.storage.commits import write_atomic

    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    write_atomic(path, buffer.getvalue())
