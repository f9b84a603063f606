"""``saldata report``: a static HTML report of an output, to browse from a file browser or an object store."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from saldata.cli.failure import fail
from saldata.cli.locations import OutArg, StorageOptions, location
from saldata.errors import FAILURE, SaldataError
from saldata.storage.os_errors import human_bytes, write_failure
from saldata.words import plural


def report(
    out: OutArg,
    output: Annotated[
        Path,
        typer.Option(
            "--output", "-o", help="The report's folder (local, outside OUT); an older report there is replaced."
        ),
    ] = Path("saldata-report"),
    limit: Annotated[
        int | None, typer.Option(help="Draw only the first N done images (idx order).", show_default=False)
    ] = None,
    images: Annotated[
        str | None,
        typer.Option(help="Draw only these images: a comma list of image ids.", metavar="ID,...", show_default=False),
    ] = None,
    layers: Annotated[
        str, typer.Option(help="Captured layers whose word overlays are drawn (heads averaged): a comma list or all.")
    ] = "all",
    head_layers: Annotated[
        str,
        typer.Option(
            help="Layers whose every head is drawn too, where heads are stored: last (the last drawn layer), none, "
            "or a comma list of drawn layers. Each costs heads x words overlays per image.",
        ),
    ] = "last",
    max_words: Annotated[int, typer.Option(help="Words drawn per image (the first ones).")] = 40,
    storage_option: StorageOptions = None,
) -> None:
    """Write a static HTML report of OUT: an overview, a gallery, a page per image.

    The overview has the output's description, images done and failed (by reason), description
    lengths, the most frequent words, and saldata evaluate's summary where it ran. The gallery
    shows 100 images a page; each image's page puts its fixations and saliency map beside a
    chosen word's attention overlay. Every picture is drawn now, as a small JPEG: per image
    min(words, --max-words) x (layers + heads x head layers) overlays. Open OUTPUT/index.html.
    """
    from saldata.cli.export import progress_bar
    from saldata.cli.interrupt import Interrupted, catch_signals
    from saldata.extractors.settings import ALL_LAYERS, parse_layers
    from saldata.readers.output import Output
    from saldata.report.build import HEADS_AT_LAST, NO_HEADS, ReportSettings, make_report
    from saldata.report.info import describe

    catch_signals()
    progress = progress_bar("report")
    try:
        chosen = parse_layers(layers)
        heads = head_layers.strip().lower()
        settings = ReportSettings(
            layers=None if chosen == ALL_LAYERS else chosen,
            head_layers=heads if heads in (HEADS_AT_LAST, NO_HEADS) else _layer_list(head_layers),
            max_words=max_words,
            limit=limit,
            image_ids=None if images is None else tuple(i.strip() for i in images.split(",") if i.strip()),
        )
        data = Output(location(out, storage_option))
        info = describe(data)
        task = progress.add_task("report", total=None)
        with progress:
            written = make_report(
                data, output, settings, info, lambda n: progress.update(task, total=n), lambda: progress.advance(task)
            )
    except SaldataError as exc:
        fail(exc)
    except Interrupted as exc:
        typer.secho(f"interrupted: {output} is as it was; rerun the same command", fg=typer.colors.YELLOW, err=True)
        raise typer.Exit(code=exc.exit_code) from None
    except OSError as exc:  # a full disk, a read-only folder
        fail(write_failure(exc, output), code=FAILURE)
    typer.echo(
        f"{written.folder / 'index.html'}: {plural(written.images, 'image')}, "
        f"{plural(written.pages, 'gallery page')}, {plural(written.overlays, 'overlay')}, {human_bytes(written.bytes)}"
    )


def _layer_list(text: str) -> tuple[int, ...]:
    from saldata.errors import ConfigError

    try:
        return tuple(int(part) for part in text.split(","))
    except ValueError:
        raise ConfigError(f"--head-layers {text!r} is not last, none or a comma list of layer numbers.") from None
