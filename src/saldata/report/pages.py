"""The report's HTML pages but the image pages: the shell every page shares, the overview, the gallery.

Plain HTML with inline CSS and relative links only: it opens from a file browser (file://) and
from an object store's web view, and fetches nothing from the network.
"""

from __future__ import annotations

import math
from html import escape

from saldata.schemas.evaluation import METRIC_NAMES

INDEX = "index.html"
PER_PAGE = 100  # gallery cards per page: a 20,000-image output makes 200 small pages, not one huge one
ASSETS = "assets"
LAYERS_PNG = "eval-layers.png"
SCALE_PNG = "scale.png"

STYLE = """
body{font:14px/1.4 system-ui,-apple-system,"Segoe UI",sans-serif;margin:0;color:#222;background:#fafafa}
header{background:#1f2a44;color:#fff;padding:8px 16px}header a{color:#cfe0ff;margin-right:14px}
main{padding:12px 16px;max-width:1400px}h1{font-size:20px}h2{font-size:17px;margin-top:26px}
table{border-collapse:collapse;margin:6px 0}td,th{border:1px solid #ccc;padding:3px 8px;text-align:left}
td.num{text-align:right;font-variant-numeric:tabular-nums}
.bar{background:#4c72b0;height:12px;display:inline-block}
.cards{display:grid;grid-template-columns:repeat(auto-fill,minmax(190px,1fr));gap:10px}
.card{background:#fff;border:1px solid #ddd;padding:6px;font-size:12px}
.card img{display:block;max-width:100%;height:auto}
.desc{display:-webkit-box;-webkit-line-clamp:4;-webkit-box-orient:vertical;overflow:hidden}
.pager a,.pager span{margin-right:6px}.pager .here{font-weight:bold}
.pictures{display:flex;flex-wrap:wrap;gap:14px}.pictures figure{margin:0;flex:1 1 0;min-width:240px;max-width:320px}
.pictures img{width:100%;height:auto;display:block}.scale{display:flex;justify-content:space-between}
.words button{font:inherit;margin:2px;padding:1px 5px;border:1px solid #999;background:#fff;cursor:pointer}
.words button.chosen{background:#1f2a44;color:#fff}.muted{color:#777}
"""


def shell(title: str, body: str, root: str = "") -> str:
    """A whole page; ``root`` is the relative way back to the report's folder ('' or '../')."""
    return (
        '<!doctype html>\n<html lang="en"><head><meta charset="utf-8">'
        f'<meta name="viewport" content="width=device-width,initial-scale=1"><title>{escape(title)}</title>'
        f'<style>{STYLE}</style></head><body><header><a href="{root}{INDEX}">Overview</a>'
        f'<a href="{root}{gallery_name(1)}">Gallery</a></header><main>{body}</main></body></html>\n'
    )


def gallery_name(page: int) -> str:
    return f"gallery-{page}.html"


def number(value: float | None, digits: int = 3) -> str:
    return "-" if value is None or (isinstance(value, float) and math.isnan(value)) else f"{value:.{digits}f}"


def table(headers: list[str], rows: list[list[str]], attrs: str = "") -> str:
    """Cells are HTML already (escape text first)."""
    head = f"<tr>{''.join(f'<th>{h}</th>' for h in headers)}</tr>" if headers else ""
    body = "".join("<tr>" + "".join(rows_cell(c) for c in row) + "</tr>" for row in rows)
    return f"<table{attrs}>{head}{body}</table>"


def rows_cell(cell: str) -> str:
    return cell if cell.startswith("<td") else f"<td>{cell}</td>"


def flatten(info: dict, prefix: str = "") -> list[tuple[str, str]]:
    """``saldata info``'s nested record as (key, value) lines: nested keys joined with '.'."""
    lines = []
    for key, value in info.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            lines += flatten(value, name + ".") if value else [(name, "-")]
        elif isinstance(value, (list, tuple)):
            lines.append((name, "; ".join(_item(v) for v in value) or "-"))
        else:
            lines.append((name, "-" if value is None else str(value)))
    return lines


def _item(value) -> str:
    if isinstance(value, dict):
        return ", ".join(f"{k} {v}" for k, v in value.items())
    return str(value)


def overview_page(summary, title: str, n_gallery: int, scope: str) -> str:
    """``summary`` is ``report.overview.Overview``; ``scope`` says which images the gallery holds."""
    parts = [f"<h1>{escape(title)}</h1>", f'<p>{escape(scope)} <a href="{gallery_name(1)}">Gallery</a></p>']
    parts.append("<h2>Output</h2>" + table([], [[escape(k), escape(v)] for k, v in flatten(summary.info)]))
    counts = [
        ["done", f'<td class="num" data-count="done">{summary.done}</td>'],
        ["failed", f'<td class="num" data-count="failed">{summary.failed}</td>'],
    ]
    parts.append("<h2>Images</h2>" + table(["status", "images"], counts, ' id="counts"'))
    if summary.failures:
        rows = [[escape(reason), f'<td class="num">{n}</td>'] for reason, n in summary.failures]
        parts.append("<h3>Failed, by reason</h3>" + table(["reason", "images"], rows, ' id="failures"'))
    parts.append(_lengths(summary.lengths))
    if summary.top_words:
        rows = [[escape(word), f'<td class="num">{n}</td>'] for word, n in summary.top_words]
        parts.append("<h2>Most frequent words</h2>" + table(["word (lower case)", "occurrences"], rows))
    parts.append(_evaluation(summary.evaluation))
    return shell(title, "".join(parts))


def _lengths(bins: list[tuple[int, int, int]]) -> str:
    if not bins:
        return ""
    most = max(n for _, _, n in bins) or 1
    rows = [
        [
            f"{low}" if low == high else f"{low}-{high}",
            f'<td class="num">{n}</td>',
            f'<span class="bar" style="width:{round(300 * n / most)}px"></span>',
        ]
        for low, high, n in bins
    ]
    return "<h2>Description length (words per description, done images)</h2>" + table(["words", "images", ""], rows)


def _evaluation(evaluation) -> str:
    if evaluation is None:
        return '<h2>Evaluation</h2><p class="muted">saldata evaluate has not run on this output.</p>'
    settings = ", ".join(f"{k} {v}" for k, v in evaluation.settings.items()) or "not recorded"
    if evaluation.outdated:
        return f"<h2>Evaluation</h2><p>{escape(evaluation.outdated)}</p>"
    headers = ["layer", *(name + (" (lower is better)" if name == "kld" else "") for name in METRIC_NAMES), "images"]
    rows = []
    for level in [*evaluation.levels, evaluation.centre]:
        label = "centre bias" if level.layer is None else str(level.layer)
        cells = [
            f'<td class="num" data-layer="{label}" data-metric="{n}">{_mean(level.mean[n], level.stderr[n])}</td>'
            for n in METRIC_NAMES
        ]
        rows.append([label, *cells, f'<td class="num">{level.n_images}</td>'])
    best = "" if evaluation.best_layer is None else f" Best layer by NSS: {evaluation.best_layer}."
    return (
        "<h2>Evaluation</h2>"
        f"<p>Description maps, heads averaged (mean ± standard error). Settings: {escape(settings)}.{best}</p>"
        + table(headers, rows, ' id="evaluation"')
        + f'<p><img src="{ASSETS}/{LAYERS_PNG}" alt="metrics by layer" style="max-width:100%"></p>'
    )


def _mean(mean: float, stderr: float) -> str:
    if math.isnan(mean):
        return "-"
    return number(mean) if math.isnan(stderr) else f"{mean:.3f} ± {stderr:.3f}"


def gallery_page(cards: list, page: int, n_pages: int, nss_layer: int | None) -> str:
    """One page of cards; each card is (ImagePage, nss or None)."""
    pager = _pager(page, n_pages)
    items = []
    for image, nss in cards:
        score = ""
        if nss_layer is not None:
            value = "" if nss is None else f' data-nss="{nss!r}"'
            score = f'<div>NSS (layer {nss_layer}): <span class="nss"{value}>{number(nss)}</span></div>'
        items.append(
            f'<div class="card" data-idx="{image.idx}"><a href="images/{image.idx}.html">'
            f'<img loading="lazy" src="images/{image.idx}/thumb.jpg" alt="{escape(image.image_id)}"></a>'
            f'<div><a class="id" href="images/{image.idx}.html">{escape(image.image_id)}</a></div>'
            f'{score}<div class="desc">{escape(image.text) or "<i>(no description)</i>"}</div></div>'
        )
    body = f'<h1>Gallery, page {page} of {n_pages}</h1>{pager}<div class="cards">{"".join(items)}</div>{pager}'
    return shell(f"Gallery {page}", body)


def _pager(page: int, n_pages: int) -> str:
    links = []
    if page > 1:
        links.append(f'<a rel="prev" href="{gallery_name(page - 1)}">previous</a>')
    for p in range(1, n_pages + 1):
        if p == page:
            links.append(f'<span class="here">{p}</span>')
        elif abs(p - page) <= 5 or p in (1, n_pages):
            links.append(f'<a href="{gallery_name(p)}">{p}</a>')
    if page < n_pages:
        links.append(f'<a rel="next" href="{gallery_name(page + 1)}">next</a>')
    return f'<p class="pager">{" ".join(links)}</p>'
