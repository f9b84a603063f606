"""``saldata show`` (a figure of one image's words) and ``saldata stats`` (word statistics)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from saldata.cli.failure import fail
from saldata.cli.locations import OutArg, StorageOptions, location
from saldata.errors import FAILURE, ConfigError, SaldataError
from saldata.storage.os_errors import write_failure
from saldata.storage.paths import check_output_file
from saldata.words import plural

LayerOption = Annotated[
    int | None,
    typer.Option(
        help="Captured decoder layer to use (negative counts from the model's last); default the last captured.",
        show_default=False,
    ),
]


def show(
    out: OutArg,
    image_id: Annotated[str, typer.Argument(help="Image id as in the catalog (images.image_id).")],
    output: Annotated[
        Path,
        typer.Option(
            "--output", "-o", help="Where to write the figure (outside OUT): .png, .jpg, .webp, .tif or .pdf."
        ),
    ] = Path("saldata-show.png"),
    grid: Annotated[str, typer.Option(help="Attention grid to draw: highres or base.")] = "highres",
    reduce: Annotated[str, typer.Option(help="A word's map from its tokens' maps: sum or mean.")] = "sum",
    max_words: Annotated[int, typer.Option(help="Draw at most this many words.")] = 23,
    layer: LayerOption = None,
    storage_option: StorageOptions = None,
) -> None:
    """Draw the image with its description and one attention overlay per word."""
    import numpy as np

    from saldata.analysis.overlay import word_figure, word_label
    from saldata.datasets.base import ImageSource
    from saldata.pipelines.preprocess import load_image
    from saldata.readers.output import Output

    try:
        out = location(out, storage_option)
        check_output_file(output, out, "--output", "figures")
        image_format = _image_format(output)
        data = Output(out)
        row = data.row(image_id)
        if row["status"] != "done":
            raise SaldataError(f"{image_id} failed during extraction: {row['error']}")
        layer = data.layers.resolve(layer)
        words, maps = data.word_maps(row["idx"], grid=grid, reduce=reduce, layer=layer)
    except SaldataError as exc:
        fail(exc)
    size = tuple(data.attrs["image_size"])
    source = ImageSource(row["dataset"], row["split"], row["image_id"], row["source_path"])
    loaded = load_image(row["idx"], source, size)
    if loaded.error:  # the figure still shows the maps; say why the picture is missing
        typer.secho(f"Warning: {loaded.error}; drawing on a grey background.", fg=typer.colors.YELLOW, err=True)
        pixels = np.full((size[1], size[0], 3), 128, np.uint8)
    else:
        pixels = loaded.pixels
    labels = [word_label(w, float(m.max())) for w, m in zip(words[:max_words], maps[:max_words])]
    figure = word_figure(pixels, row["text"], labels, maps[:max_words], f"{image_id} (layer {layer})")
    try:
        _save(figure, image_format, output)
    except OSError as exc:  # a full disk, a read-only folder
        fail(write_failure(exc, output), code=FAILURE)
    typer.echo(
        f"{output}: {image_id}, {min(len(words), max_words)} of {plural(len(words), 'word')} "
        f"(layer {layer}, {grid} grid, {reduce})"
    )


FIGURE_FORMATS = {".png": "PNG", ".jpg": "JPEG", ".jpeg": "JPEG", ".webp": "WEBP", ".tif": "TIFF", ".tiff": "TIFF",
                  ".pdf": "PDF"}  # fmt: skip


def _image_format(output: Path) -> str:
    """The image format of ``output``'s extension; a ConfigError naming those known if it has none of them."""
    suffix = output.suffix.lower()
    if suffix not in FIGURE_FORMATS:
        raise ConfigError(
            f"--output {output}: a figure cannot be written as {suffix or 'a file without extension'}; end the "
            f"name with {', '.join(FIGURE_FORMATS)}."
        )
    return FIGURE_FORMATS[suffix]


def _save(figure, image_format: str, output: Path) -> None:
    """Encoded in memory, then written aside and renamed: a failed write leaves no part of a figure."""
    import io

    from saldata.storage.commits import write_atomic

    buffer = io.BytesIO()
    figure.save(buffer, format=image_format)
    write_atomic(output, buffer.getvalue())


def stats(
    out: OutArg,
    top: Annotated[int, typer.Option(help="Words listed on screen.")] = 20,
    layer: LayerOption = None,
    storage_option: StorageOptions = None,
) -> None:
    """Per word over the whole store: occurrences, images, attention mass, mean attention map.

    Written to OUT/stats/words.parquet and OUT/stats/word_maps.zarr; the most frequent words are shown.
    """
    from rich.table import Table

    from saldata.analysis.word_stats import STATS_DIRNAME, word_statistics, write_statistics
    from saldata.cli.report import report_console
    from saldata.readers.output import Output

    try:
        out = location(out, storage_option)
        data = Output(out)
        layer = data.layers.resolve(layer)
        table, maps = word_statistics(data, layer)
    except SaldataError as exc:
        fail(exc)
    try:
        folder = write_statistics(out, table, maps, layer)
    except OSError as exc:  # a full disk, a read-only OUT
        fail(write_failure(exc, out / STATS_DIRNAME), code=FAILURE)
    title = f"{plural(table.num_rows, 'distinct word')} over {plural(data.images.num_rows, 'image')} (layer {layer})"
    view = Table(title=title, title_justify="left")
    for header in ("word", "count", "images", "attention mass", "peak cell (row, col)"):
        view.add_column(header)
    for row in table.slice(0, top).to_pylist():
        peak = divmod(int(maps[row["map_row"]].argmax()), maps.shape[2])
        view.add_row(row["word"], str(row["count"]), str(row["n_images"]), f"{row['attention_mass']:.3f}", str(peak))
    console = report_console()
    console.print(view)
    console.print(f"written: {folder / 'words.parquet'}, {folder / 'word_maps.zarr'}")
