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
    words: Annotated[
        str | None,
        typer.Option(
            "--words",
            help="Words to draw, comma separated: a word's text (every occurrence, any case) or its index in the "
            "description (words.word_index, from 0; digits are an index). Default every word.",
            show_default=False,
        ),
    ] = None,
    head: Annotated[
        int | None,
        typer.Option(
            help="Draw one attention head's maps (an output extracted with --heads all); default the mean of the heads.",
            show_default=False,
        ),
    ] = None,
    layer: LayerOption = None,
    storage_option: StorageOptions = None,
) -> None:
    """Draw the image, its fixations and saliency map, its description and one attention overlay per word."""
    import numpy as np

    from saldata.analysis.overlay import word_figure, word_label
    from saldata.analysis.word_choice import check_head, pick_words
    from saldata.datasets.base import ImageSource
    from saldata.pipelines.preprocess import load_image
    from saldata.readers.output import Output
    from saldata.report.info import stored_heads

    try:
        out = location(out, storage_option)
        check_output_file(output, out, "--output", "figures")
        image_format = _image_format(output)
        data = Output(out)
        row = data.row(image_id)
        if row["status"] != "done":
            raise SaldataError(f"{image_id} failed during extraction: {row['error']}")
        layer = data.layers.resolve(layer)
        if head is not None:
            check_head(head, data.attrs.get("heads"), stored_heads(data) or 1, out)
        heads = "mean" if head is None else "all"
        all_words, maps = data.word_maps(row["idx"], grid=grid, reduce=reduce, heads=heads, layer=layer)
        if head is not None:
            maps = maps[:, head]
        chosen = pick_words(all_words, words, image_id) if words else list(range(len(all_words)))
        human = human_attention(data, row)
    except SaldataError as exc:
        fail(exc)
    picked = [all_words[i] for i in chosen][:max_words]
    maps = maps[chosen][:max_words]
    size = tuple(data.attrs["image_size"])
    source = ImageSource(row["dataset"], row["split"], row["image_id"], row["source_path"])
    loaded = load_image(row["idx"], source, size)
    if loaded.error:  # the figure still shows the maps; say why the picture is missing
        typer.secho(f"Warning: {loaded.error}; drawing on a grey background.", fg=typer.colors.YELLOW, err=True)
        pixels = np.full((size[1], size[0], 3), 128, np.uint8)
    else:
        pixels = loaded.pixels
    labels = [word_label(w, float(m.max())) for w, m in zip(picked, maps)]
    heads_text = "mean of heads" if head is None else f"head {head}"
    title = f"{image_id}: {data.attrs.get('model')}, layer {layer}, {grid} grid, {heads_text}, words' tokens {reduce}"
    figure = word_figure(pixels, row["text"], labels, maps, title, image_label=image_id, human=human)
    try:
        _save(figure, image_format, output)
    except OSError as exc:  # a full disk, a read-only folder
        fail(write_failure(exc, output), code=FAILURE)
    beside = "fixations and saliency map beside" if human else "no ground truth to draw beside"
    typer.echo(
        f"{output}: {image_id}, {len(picked)} of {plural(len(all_words), 'word')} "
        f"(layer {layer}, {grid} grid, {reduce}{'' if head is None else f', head {head}'}); {beside}"
    )


def human_attention(data, row: dict):
    """The image's fixation points and saliency map where the output holds its ground truth, else None."""
    import numpy as np

    from saldata.analysis.overlay import HumanAttention
    from saldata.datasets.ground_truth import GT_OK

    if row.get("gt_status") != GT_OK or "saliency_map" not in data.group:
        return None
    points = data.sql(f"SELECT x, y FROM fixations WHERE idx = {int(row['idx'])} ORDER BY subject, fixation_index")
    saliency = np.asarray(data.group["saliency_map"][row["idx"]])
    return HumanAttention(points.column("x").to_numpy(), points.column("y").to_numpy(), saliency)


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
    title = figure.info.get("title")
    if image_format == "PNG" and title:  # image viewers show it; a script reads it (PIL: Image.open(f).text)
        from PIL.PngImagePlugin import PngInfo

        info = PngInfo()
        info.add_text("Title", title)
        figure.save(buffer, format=image_format, pnginfo=info)
    elif image_format == "PDF" and title:
        figure.save(buffer, format=image_format, title=title)
    else:
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
