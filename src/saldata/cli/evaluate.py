"""``saldata evaluate``: which captured layer attends like people do, against a centre-bias baseline."""

from __future__ import annotations

import math
from typing import Annotated

import typer

from saldata.analysis.word_ranking import MIN_WORD_COUNT
from saldata.cli.failure import fail
from saldata.cli.locations import OutArg, StorageOptions, location
from saldata.errors import FAILURE, ConfigError, SaldataError
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
    name: Annotated[
        str | None,
        typer.Option(
            help="Write this run under OUT/eval/NAME/ (a lower-case name: letters, digits, _), beside the default "
            "run's and any other named one.",
            show_default=False,
        ),
    ] = None,
    overwrite: Annotated[
        bool,
        typer.Option("--overwrite", help="Replace the run's existing table even if it was made with other settings."),
    ] = False,
    min_word_count: Annotated[
        int, typer.Option(help="Occurrences a word needs to be among the best and worst words by NSS.")
    ] = MIN_WORD_COUNT,
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
    OUT/eval/metrics.parquet and OUT/eval/layers.png (OUT/eval/NAME/ with --name), and prints the
    metrics by layer and the best and worst words by NSS. With --objects: each word's maps against
    every object of its image (mass, ratio, pointing game, whether the word names it), written to
    objects.parquet and objects.png there instead. A table made with other settings is replaced
    only with --overwrite.
    """
    from saldata.analysis.evaluate import EvalSettings, planned_record, summarise, write_metrics
    from saldata.analysis.evaluate import evaluate as score_output
    from saldata.analysis.layer_plot import layers_figure, save_png
    from saldata.extractors.settings import ALL_LAYERS, parse_layers
    from saldata.readers.output import Output
    from saldata.schemas.evaluation import LAYERS_FIGURE, METRICS, OBJECT_SCORES
    from saldata.storage.eval_tables import check_replace, check_run_name, eval_dir, table_path

    try:
        chosen = parse_layers(layers)
        settings = EvalSettings(None if chosen == ALL_LAYERS else chosen, per_head, grid, blur, rows)
        run = check_run_name(name)
        if min_word_count < 1:
            raise ConfigError(f"--min-word-count must be at least 1, not {min_word_count}.")
        out = location(out, storage_option)
        data = Output(out)
        if objects:
            from saldata.cli.evaluate_objects import evaluate_objects

            check_replace(table_path(out, OBJECT_SCORES.name, run), planned_record(data, settings), overwrite)
            return evaluate_objects(out, data, settings, run)
        check_replace(table_path(out, METRICS.name, run), planned_record(data, settings), overwrite)
        table, undefined, unscored = score_output(data, settings)
    except SaldataError as exc:
        fail(exc)
    by_layer, centre = summarise(table)
    n_images = centre.n_images
    title = f"{out}: {plural(n_images, 'image')}, {grid} grid, blur {blur:g} px, {rows} rows"
    figure_path = eval_dir(out, run) / LAYERS_FIGURE
    try:
        metrics_path = write_metrics(out, table, run)
        save_png(layers_figure(by_layer, centre, title), figure_path)
    except OSError as exc:  # a full disk, a read-only OUT: each file is whole or absent
        fail(write_failure(exc, eval_dir(out, run)), code=FAILURE)
    _print_summary(by_layer, centre, title, data.attrs["image_size"])
    _print_words(table, by_layer, min_word_count)
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


def _print_words(table, by_layer, min_count: int) -> None:
    """The best and worst words by NSS at the best layer, beside each other."""
    from rich.table import Table

    from saldata.analysis.evaluate import BEST_BY, best_layer
    from saldata.analysis.word_ranking import rank_words
    from saldata.cli.report import report_console

    best = best_layer(by_layer)
    if best is None:
        return
    ranking = rank_words(table, best.layer, min_count)
    console = report_console()
    ranked = len(ranking.best) + len(ranking.worst)
    console.print(
        f"words by {BEST_BY.upper()} at layer {best.layer}: mean over each word's occurrences (lower case, heads "
        f"averaged), of words seen at least {plural(min_count, 'time')} ({ranked} of {plural(ranking.words, 'word')})",
        soft_wrap=True,
        highlight=False,
    )
    if not ranked:
        return
    view = Table()
    for header, justify in (("best", "left"), (BEST_BY, "right"), ("n", "right"), ("worst", "left"),
                            (BEST_BY, "right"), ("n", "right")):  # fmt: skip
        view.add_column(header, justify=justify)
    for i in range(max(len(ranking.best), len(ranking.worst))):
        cells = []
        for side in (ranking.best, ranking.worst):
            cells += [side[i].word, f"{side[i].nss:.3f}", str(side[i].count)] if i < len(side) else ["", "", ""]
        view.add_row(*cells)
    console.print(view)


def _cell(mean: float, stderr: float) -> str:
    if math.isnan(mean):
        return "-"
    return f"{mean:.3f}" if math.isnan(stderr) else f"{mean:.3f} ± {stderr:.3f}"
