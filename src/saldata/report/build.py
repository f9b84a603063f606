"""``saldata report``: a static HTML report of an output, drawn shard by shard, written aside, then swapped in.

The report is a folder: ``index.html`` (the overview), ``gallery-<n>.html`` (PER_PAGE images a
page), ``images/<idx>.html`` and ``images/<idx>/*.jpg`` (one page and its pictures per image),
``assets/``, and ``saldata-report.json`` (what it was made of; marks the folder as a report, so
a rerun may replace it). It is built in ``.<name>.partial`` beside it and renamed into place, so
a rerun or an interrupted run never leaves half a report where the last one was.
"""

from __future__ import annotations

import json
import os
import shutil
import threading
from dataclasses import asdict, dataclass
from pathlib import Path

from saldata.errors import ConfigError
from saldata.report.image_page import image_page
from saldata.report.overview import overview
from saldata.report.pages import (
    ASSETS,
    INDEX,
    LAYERS_PNG,
    PER_PAGE,
    SCALE_PNG,
    gallery_name,
    gallery_page,
    overview_page,
)
from saldata.report.render import Drawn, draw_shard
from saldata.schemas.catalog import STATUS_DONE
from saldata.schemas.evaluation import EVAL_DIRNAME, LAYERS_FIGURE

MARKER = "saldata-report.json"
HEADS_AT_LAST = "last"  # --head-layers default: every head's overlays at the last drawn layer only
NO_HEADS = "none"


@dataclass(frozen=True, slots=True)
class ReportSettings:
    layers: tuple[int, ...] | None = None  # layers drawn (heads averaged); None: every captured layer
    head_layers: tuple[int, ...] | str = HEADS_AT_LAST  # layers whose heads are drawn one by one, or last/none
    max_words: int = 40  # words drawn per image (the first ones); the rest stay plain text
    limit: int | None = None  # the first N done images (idx order)
    image_ids: tuple[str, ...] | None = None
    per_page: int = PER_PAGE

    def __post_init__(self):
        if self.max_words < 1:
            raise ConfigError(f"--max-words must be 1 or more, not {self.max_words}.")
        if self.limit is not None and self.limit < 1:
            raise ConfigError(f"--limit must be 1 or more, not {self.limit}.")


@dataclass(frozen=True, slots=True)
class Written:
    folder: Path
    images: int
    pages: int  # gallery pages
    overlays: int
    bytes: int  # the report folder's files, all together


def chosen_rows(output, settings: ReportSettings) -> list[dict]:
    """The done images the report draws, in idx order."""
    ids = list(settings.image_ids) if settings.image_ids is not None else None
    rows = output.select(image_ids=ids, include_failed=True).images.to_pylist()
    failed = [r["image_id"] for r in rows if r["status"] != STATUS_DONE]
    if ids is not None and failed:
        raise ConfigError(
            f"--images: {', '.join(failed[:5])} failed during extraction and {'have' if len(failed) > 1 else 'has'} "
            "no attention to draw; leave them out (saldata status OUT --failed lists why)."
        )
    rows = [r for r in rows if r["status"] == STATUS_DONE]
    return rows[: settings.limit] if settings.limit is not None else rows


def drawn_views(output, settings: ReportSettings) -> Drawn:
    layers = output.layers.layers if settings.layers is None else settings.layers
    layers = tuple(sorted({output.layers.resolve(layer) for layer in layers}))
    heads_stored = output.attrs.get("heads") == "all"
    if settings.head_layers == NO_HEADS or (settings.head_layers == HEADS_AT_LAST and not heads_stored):
        head_layers: tuple[int, ...] = ()
    elif settings.head_layers == HEADS_AT_LAST:
        head_layers = (layers[-1],)
    elif not heads_stored:
        raise ConfigError(
            f"--head-layers: {output.path} stored the heads' mean (--heads mean); there is no head to draw."
        )
    else:
        head_layers = tuple(sorted({output.layers.resolve(layer) for layer in settings.head_layers}))
        outside = [layer for layer in head_layers if layer not in layers]
        if outside:
            raise ConfigError(f"--head-layers {','.join(map(str, outside))}: not among the drawn --layers; add them.")
    n_heads = int(output.group["attn_highres"].shape[-3])
    return Drawn(layers, head_layers, n_heads, settings.max_words)


def check_target(target: Path, out) -> None:
    """Refuse a report folder inside OUT, a file, or a folder of other things that a rerun would replace."""
    from saldata.storage.paths import refuse_inside

    refuse_inside(target, out, "--output", "reports")
    target = Path(target)
    if target.exists() and not target.is_dir():
        raise ConfigError(f"--output {target} is a file; give a folder for the report.")
    if target.is_dir() and any(target.iterdir()) and not (target / MARKER).is_file():
        raise ConfigError(
            f"--output {target} holds files that are not a saldata report; give a new or empty folder "
            "(a report's folder is replaced whole when it is made again)."
        )
    if not target.parent.is_dir():
        raise ConfigError(f"--output {target}: the folder {target.parent} does not exist; create it first.")


def make_report(output, target: Path, settings: ReportSettings, info: dict, on_total=None, on_image=None) -> Written:
    """Draw the report of ``output`` into the local folder ``target``, replacing an older report there;
    ``on_total(n)`` is told how many images it draws, ``on_image()`` called (from a thread) after each."""
    import dask

    check_target(target, output.path)
    rows = chosen_rows(output, settings)
    drawn = drawn_views(output, settings)
    summary = overview(output, info)
    target = Path(target)
    stage = target.parent / f".{target.name}.partial"
    shutil.rmtree(stage, ignore_errors=True)  # what an interrupted run left
    (stage / ASSETS).mkdir(parents=True)
    _assets(output, stage, summary.evaluation is not None)
    fixations = _fixations(output, {r["idx"] for r in rows})
    shard_size = int(output.attrs["shard_size"])
    by_shard: dict[int, list[dict]] = {}
    for row in rows:
        by_shard.setdefault(row["idx"] // shard_size, []).append(row)
    if on_total is not None:
        on_total(len(rows))
    stop = threading.Event()
    tasks = [
        dask.delayed(draw_shard)(output.path, part, fixations, drawn, stage, on_image, stop)
        for part in by_shard.values()
    ]
    try:
        drawn_pages = dask.compute(*tasks, scheduler="threads", num_workers=os.cpu_count()) if tasks else []
    except BaseException:  # Ctrl-C, a failure: the shards being drawn stop at their next image, not at their end
        stop.set()
        raise
    images = [image for part in drawn_pages for image in part]
    n_pages = _write_pages(stage, images, summary, drawn, settings, output, len(rows))
    overlays = sum(len(image.words) for image in images) * len(drawn.views())
    record = {"out": str(output.path), "settings": asdict(settings), "images": len(images), "overlays": overlays}
    (stage / MARKER).write_text(json.dumps(record, indent=1, default=list) + "\n")
    size = sum(path.stat().st_size for path in stage.rglob("*") if path.is_file())
    _swap_in(stage, target)
    return Written(target, len(images), n_pages, overlays, size)


def _write_pages(stage: Path, images: list, summary, drawn: Drawn, settings, output, n_rows: int) -> int:
    evaluation = summary.evaluation
    nss_layer = None if evaluation is None else evaluation.best_layer
    nss_of = {} if evaluation is None else evaluation.nss
    per_page = settings.per_page
    n_pages = max(1, -(-len(images) // per_page))
    for page in range(1, n_pages + 1):
        chunk = images[(page - 1) * per_page : page * per_page]
        cards = [(image, nss_of.get(image.idx, {}).get(nss_layer)) for image in chunk]
        (stage / gallery_name(page)).write_text(gallery_page(cards, page, n_pages, nss_layer))
    ids = [image.idx for image in images]
    for position, image in enumerate(images):
        html = image_page(image, position, ids, per_page, drawn.layers, drawn.head_layers, drawn.n_heads,
                          nss_of.get(image.idx, {}))  # fmt: skip
        (stage / "images" / f"{image.idx}.html").write_text(html)
    whole = settings.limit is None and settings.image_ids is None
    scope = f"The gallery holds {'all ' if whole else ''}{n_rows} of the {summary.done} done images."
    title = f"saldata report: {output.path}"
    (stage / INDEX).write_text(overview_page(summary, title, n_pages, scope))
    return n_pages


def _assets(output, stage: Path, evaluated: bool) -> None:
    from PIL import Image

    from saldata.analysis.overlay import colour_scale

    Image.fromarray(colour_scale(320, 12)).save(stage / ASSETS / SCALE_PNG)
    figure = output.path / EVAL_DIRNAME / LAYERS_FIGURE
    if evaluated and figure.exists():
        (stage / ASSETS / LAYERS_PNG).write_bytes(figure.read_bytes())


def _fixations(output, wanted: set[int]) -> dict:
    import numpy as np

    columns = output.fixations.select(["idx", "x", "y"]).to_pydict()
    points: dict[int, tuple[list, list]] = {}
    for idx, x, y in zip(columns["idx"], columns["x"], columns["y"]):
        if idx in wanted:
            xs, ys = points.setdefault(idx, ([], []))
            xs.append(x)
            ys.append(y)
    return {idx: (np.asarray(xs, np.float64), np.asarray(ys, np.float64)) for idx, (xs, ys) in points.items()}


def _swap_in(stage: Path, target: Path) -> None:
    """``stage`` becomes ``target``; an older report there goes only once the new one is in place."""
    old = target.parent / f".{target.name}.old"
    shutil.rmtree(old, ignore_errors=True)
    if target.exists():
        target.rename(old)
    stage.rename(target)
    shutil.rmtree(old, ignore_errors=True)
