"""``saldata export``: an output's committed shards as the files another tool reads."""

from __future__ import annotations

import enum
from pathlib import Path
from typing import Annotated

import typer

from saldata.cli.failure import fail
from saldata.cli.locations import OutArg, StorageOptions, location
from saldata.errors import FAILURE, SaldataError
from saldata.storage.os_errors import write_failure
from saldata.words import plural


class Format(str, enum.Enum):  # the names of saldata.exporters.EXPORTERS (a test keeps them equal)
    language_att = "language-att"
    pysaliency = "pysaliency"


def export(
    out: OutArg,
    dest: Annotated[
        Path, typer.Argument(help="The folder to write, outside OUT; rerun the same command to resume it.")
    ],
    format: Annotated[
        Format,
        typer.Option(
            "--format",
            "-f",
            help="language-att: the language-driven saliency trainer's per-image files; pysaliency: one saliency "
            "map per image for pysaliency.SaliencyMapModelFromDirectory, with the stimuli, fixations and ground truth.",
        ),
    ],
    layer: Annotated[
        int | None,
        typer.Option(
            help="Captured decoder layer to export (negative counts from the model's last); default the last captured.",
            show_default=False,
        ),
    ] = None,
    split: Annotated[
        list[str] | None,
        typer.Option(
            metavar="<str>",
            help="Export only this split (repeat for several); default every split.",
            show_default=False,
        ),
    ] = None,
    unit: Annotated[
        str | None, typer.Option(help="pysaliency: the map of each image: description (default).", show_default=False)
    ] = None,
    grid: Annotated[
        str | None, typer.Option(help="pysaliency: attention grid, highres (default) or base.", show_default=False)
    ] = None,
    annotations: Annotated[
        bool,
        typer.Option(
            "--annotations",
            help="language-att: also link the images, saliency maps and SALICON fixation files the trainer reads.",
        ),
    ] = False,
    require_eos: Annotated[
        bool,
        typer.Option(
            "--require-eos",
            help="language-att: mark an image whose generation did not end with EOS invalid in salicon_valid.json "
            "(its last row is a real word, cut short, which the trainer's language_parsing would label EOS).",
        ),
    ] = False,
    rows: Annotated[
        str | None,
        typer.Option(
            help="pysaliency: the store rows each map averages, research (default: tokens 1 to n-1, then the EOS "
            "step where generation ended with EOS; what language-att always holds) or all-tokens (every token).",
            show_default=False,
        ),
    ] = None,
    storage_option: StorageOptions = None,
) -> None:
    """Write OUT's committed shards in another tool's layout, one thread per store shard, resumable.

    A killed export leaves whole files only; the same command finishes it without redoing them.
    DEST records what it was exported from and how: another output or other settings are refused.
    """
    from saldata.cli.interrupt import Interrupted, catch_signals
    from saldata.exporters import EXPORTERS, ExportSettings
    from saldata.readers.output import Output

    if require_eos and format is not Format.language_att:
        fail(f"--require-eos does not apply to --format {format.value}; leave it out.")
    catch_signals()
    progress = progress_bar("export")
    try:
        settings = ExportSettings(layer, tuple(split) if split else None, grid, unit, annotations, require_eos, rows)
        exporter = EXPORTERS[format.value](Output(location(out, storage_option)), dest, settings)
        task = progress.add_task("export", total=None)
        with progress:
            summary = exporter.run(
                on_total=lambda n: progress.update(task, total=n), on_image=lambda: progress.advance(task)
            )
    except SaldataError as exc:
        fail(exc)
    except Interrupted as exc:
        typer.secho(
            f"interrupted: the files written so far are whole; rerun the same command to finish {dest}",
            fg=typer.colors.YELLOW,
            err=True,
        )
        raise typer.Exit(code=exc.exit_code) from None
    except OSError as exc:  # a full disk, a read-only DEST: finished files are kept
        fail(f"{write_failure(exc, dest)}; finished files are kept: rerun the same command once fixed", code=FAILURE)
    typer.echo(
        f"{dest}: {plural(summary.images, 'image')} ({summary.written} written now, {summary.kept} already there), "
        f"--format {format.value}, layer {exporter.layer}"
    )
    for note in summary.notes:
        typer.echo(f"  {note}")


def progress_bar(name: str):
    """A command's bar, on a terminal only: on a pipe or in a log it would be noise in stderr."""
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    console = Console(stderr=True)
    return Progress(
        TextColumn(f"[bold]{name}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
        disable=not console.is_terminal,
    )
