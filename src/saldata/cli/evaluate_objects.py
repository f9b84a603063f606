"""``saldata evaluate OUT --objects``: writes OUT/eval/objects.parquet and objects.png, prints grounding by layer."""

from __future__ import annotations

import math

import typer

from saldata.cli.failure import fail
from saldata.errors import FAILURE, SaldataError
from saldata.storage.os_errors import write_failure
from saldata.words import plural


def evaluate_objects(out, data, settings, run: str | None = None) -> None:
    """Score, write and print; ``data`` is the opened Output, ``settings`` the EvalSettings, ``run`` the --name."""
    from saldata.analysis.layer_plot import layers_figure, save_png
    from saldata.analysis.object_scores import score_objects, write_objects
    from saldata.analysis.object_summary import LABELS, MEASURES, summarise_objects
    from saldata.schemas.evaluation import OBJECTS_FIGURE
    from saldata.storage.eval_tables import eval_dir

    try:
        table, unscored = score_objects(data, settings)
    except SaldataError as exc:
        fail(exc)
    summary = summarise_objects(table)
    n_images = len(set(table.column("idx").to_pylist()))
    title = (
        f"{out}: {plural(n_images, 'image')} with objects, {settings.grid} grid, blur {settings.blur_px:g} px, "
        f"{settings.rows} rows"
    )
    figure_path = eval_dir(out, run) / OBJECTS_FIGURE
    figure = layers_figure(
        summary.named,
        summary.centre,
        title,
        names=MEASURES,
        labels=LABELS,
        line_label="o named objects +/- 1 s.e.",
        second=summary.others,
        second_label="o other objects",
    )
    try:
        objects_path = write_objects(out, table, run)
        save_png(figure, figure_path)
    except OSError as exc:  # a full disk, a read-only OUT: each file is whole or absent
        fail(write_failure(exc, eval_dir(out, run)), code=FAILURE)
    _print_summary(summary, title)
    if unscored.images or unscored.words:
        typer.echo(
            f"not scored, having no row under --rows {settings.rows}: {plural(unscored.images, 'image')}, "
            f"{plural(unscored.words, 'word')}"
        )
    typer.echo(f"written: {objects_path} ({plural(table.num_rows, 'row')}), {figure_path}")


def _print_summary(summary, title: str) -> None:
    from rich.table import Table

    from saldata.cli.report import report_console
    from saldata.schemas.evaluation import POINTING_TOLERANCE_PX

    view = Table()
    for name in ("layer", "named pairs", "pointing", "ratio", "other pairs", "pointing", "ratio"):
        view.add_column(name, justify="left" if name == "layer" else "right")
    others = {line.layer: line for line in summary.others}
    for line in summary.named:
        other = others[line.layer]
        view.add_row(
            str(line.layer),
            str(line.n),
            *(_cell(line, m) for m in ("pointing", "ratio")),
            str(other.n),
            *(_cell(other, m) for m in ("pointing", "ratio")),
        )
    centre = summary.centre
    view.add_row("centre bias", str(centre.n), _cell(centre, "pointing"), _cell(centre, "ratio"), "", "", "")
    console = report_console()
    console.print(f"{title}; heads averaged (mean ± s.e.)", soft_wrap=True, highlight=False)
    console.print(view)
    if not summary.named:
        console.print("no word names an object of its image (saldata/analysis/naming.py says which words do)")
        return
    console.print(
        f"named pairs: a word's map against an object it names ({plural(summary.n_words, 'word')} on "
        f"{plural(summary.n_images, 'image')}); other objects: the same words' maps against their image's objects "
        "they do not name; centre bias: the centre-bias map against the named objects",
        soft_wrap=True,
        highlight=False,
    )
    console.print(
        f"pointing: share of maps whose maximum lies within {POINTING_TOLERANCE_PX:g} px of the object; "
        "ratio: mass_in_object / area_fraction (1 = chance)",
        soft_wrap=True,
        highlight=False,
    )


def _cell(line, measure: str) -> str:
    mean, stderr = line.mean[measure], line.stderr[measure]
    if math.isnan(mean):
        return "-"
    return f"{mean:.3f}" if math.isnan(stderr) else f"{mean:.3f} ± {stderr:.3f}"
