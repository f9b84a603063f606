"""``saldata evaluate``: which captured layer attends like people do, against a centre-bias baseline."""

from __future__ import annotations

import math
from typing import Annotated

import typer

from saldata.cli.failure import fail
from saldata.cli.locations import OutArg, StorageOptions, location
from saldata.errors import FAILURE, SaldataError
from saldata.storage.os_errors import write_failure
from saldata.words import agree, plural


def evaluate(
    out: OutArg,
    layers: Annotated[
        str,
        typer.Option(help="Captured decoder layers to score: a comma list (negative counts from the end) or all."),
    ] = "all",
    per_head: Annotated[bool, typer.Option("--per-head", help="Also score every head's maps on its own.")] = False,
    grid: Annotated[str, typer.Option(help="Attention grid to score: highres or base.")] = "highres",
    blur: Annotated[
        float, typer.Option("--blur", metavar="SIGMA_PX", help="Gaussian blur of each upsampled map, in pixels.")
    ] = 0.0,
    rows: Annotated[
        str,
        typer.Option(
            help="Store rows a map is made of: research (tokens 1 to n-1, then the EOS step where generation ended "
            "with EOS; a word loses token 0) or all-tokens (every generated token, no EOS step).",
        ),
    ] = "research",
    objects: Annotated[
        bool,
        typer.Option(
            "--objects",
            help="Score each word's maps against its image's objects (saldata objects adds them) instead: "
            "OUT/eval/objects.parquet and objects.png.",
        ),
    ] = False,
    storage_option: StorageOptions = None,
) -> None:
    """Score attention maps against human fixations and saliency maps (NSS, AUC, AUC-Judd, sAUC, CC, KLD, SIM).

    Every done image with ground truth, every chosen layer: the description's mean map and each
    word's map, upsampled to the stored image, beside a centre-bias baseline. Writes
    OUT/eval/metrics.parquet and OUT/eval/layers.png, and prints the metrics by layer. With
    --objects: each word's maps against every object of its image (mass, ratio, pointing game,
    whether the word names it), written to OUT/eval/objects.parquet and objects.png.
    """
    from saldata.analysis.evaluate import EvalSettings, summarise, write_metrics
    from saldata.analysis.evaluate import evaluate as score_output
    from saldata.analysis.layer_plot import layers_figure, save_png
    from saldata.extractors.settings import ALL_LAYERS, parse_layers
    from saldata.readers.output import Output
    from saldata.schemas.evaluation import EVAL_DIRNAME, LAYERS_FIGURE

    try:
        chosen = parse_layers(layers)
        settings = EvalSettings(None if chosen == ALL_LAYERS else chosen, per_head, grid, blur, rows)
        out = location(out, storage_option)
        data = Output(out)
        if objects:
            from saldata.cli.evaluate_objects import evaluate_objects

            return evaluate_objects(out, data, settings)
        table, undefined, unscored = score_output(data, settings)
    except SaldataError as exc:
        fail(exc)
    by_layer, centre = summarise(table)
    n_images = centre.n_images
    title = f"{out}: {plural(n_images, 'image')}, {grid} grid, blur {blur:g} px, {rows} rows"
    figure_path = out / EVAL_DIRNAME / LAYERS_FIGURE
    try:
        metrics_path = write_metrics(out, table)
        save_png(layers_figure(by_layer, centre, title), figure_path)
    except OSError as exc:  # a full disk, a read-only OUT: each file is whole or absent
        fail(write_failure(exc, out / EVAL_DIRNAME), code=FAILURE)
    _print_summary(by_layer, centre, title, data.attrs["image_size"])
    if unscored.images or unscored.words:  # what the convention means, not a problem: stdout
        typer.echo(
            f"not scored, having no row under --rows {rows}: {plural(unscored.images, 'image')}, {plural(unscored.words, 'word')}"
        )
    if undefined.count:
        typer.secho(
            f"{plural(undefined.count, 'score')} {agree(undefined.count, 'is', 'are')} null (undefined for their image), e.g. {undefined.first}",
            fg=typer.colors.YELLOW,
            err=True,
        )
    typer.echo(f"written: {metrics_path} ({plural(table.num_rows, 'row')}), {figure_path}")


def _print_summary(by_layer, centre, title: str, image_size) -> None:
    from rich.table import Table

    from saldata.analysis.evaluate import BEST_BY, best_layer
    from saldata.analysis.metrics import CENTRE_BIAS_SIGMA_FRACTION
    from saldata.cli.report import report_console
    from saldata.schemas.evaluation import METRIC_NAMES

    view = Table()
    view.add_column("layer")
    for name in METRIC_NAMES:
        view.add_column(name + (" ↓" if name == "kld" else ""), justify="right")
    for level in [*by_layer, centre]:
        label = "centre bias" if level.layer is None else str(level.layer)
        view.add_row(label, *(_cell(level.mean[n], level.stderr[n]) for n in METRIC_NAMES))
    console = report_console()
    # The title on a line of its own: a table wraps its title to the table's width, cutting the path.
    console.print(f"{title}; description maps, heads averaged (mean ± s.e.)", soft_wrap=True, highlight=False)
    console.print(view)
    width, height = image_size
    sigma = CENTRE_BIAS_SIGMA_FRACTION * math.hypot(width, height)
    console.print(
        f"centre bias: an isotropic Gaussian on the image centre, sigma {CENTRE_BIAS_SIGMA_FRACTION:g} of the diagonal "
        f"({sigma:.0f} px at {width}x{height})"
    )
    best = best_layer(by_layer)
    if best is not None:
        score, baseline = best.mean[BEST_BY], centre.mean[BEST_BY]
        verdict = "above" if score > baseline else "no layer beats"
        console.print(
            f"best layer by {BEST_BY.upper()}: {best.layer} ({score:.3f}; centre bias {baseline:.3f}: {verdict} it)"
            "; kld ↓: lower is better"
        )


def _cell(mean: float, stderr: float) -> str:
    if math.isnan(mean):
        return "-"
    return f"{mean:.3f}" if math.isnan(stderr) else f"{mean:.3f} ± {stderr:.3f}"
