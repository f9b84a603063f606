"""``saldata show`` beside human attention: the figure's panels read back pixel by pixel against the
catalog's fixation points, the stored saliency map, and the readers' word maps (``--words``, ``--head``)."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from PIL import Image
from typer.testing import CliRunner

import saldata
from saldata.analysis.human import FIXATION_FILL
from saldata.analysis.overlay import (
    COLUMNS,
    FIXATION_RADIUS,
    LABEL_HEIGHT,
    PANEL,
    SCALE_HEIGHT,
    overlay,
)
from saldata.cli.main import app
from tests.helpers import commit_rewrite

pytestmark = pytest.mark.filterwarnings("ignore:.*nanobind.*")
IMAGE, IDX = "COCO_val2014_000000000003", 2  # the demo image idx 2: five words, two of them repeated


def invoke(*args):
    return CliRunner().invoke(app, list(map(str, args)))


def drawn(path: Path, n_panels: int) -> tuple[list[np.ndarray], Image.Image]:
    """The figure's panel slots (drawn ones and the empty rest of the last row), in order."""
    figure = Image.open(path)
    pixels = np.asarray(figure.convert("RGB"))
    rows = -(-n_panels // COLUMNS)
    top = figure.height - SCALE_HEIGHT - rows * (PANEL[1] + LABEL_HEIGHT) + LABEL_HEIGHT
    slots = []
    for i in range(rows * COLUMNS):
        y, x = top + (i // COLUMNS) * (PANEL[1] + LABEL_HEIGHT), (i % COLUMNS) * PANEL[0]
        slots.append(pixels[y : y + PANEL[1], x : x + PANEL[0]])
    return slots, figure


def is_white(panel: np.ndarray) -> bool:
    return bool((panel == 255).all())


def test_fixations_and_saliency_map_are_drawn_beside_the_image(demo_output, tmp_path):
    target = tmp_path / "fig.png"
    result = invoke("show", demo_output, IMAGE, "-o", target, "--max-words", "2")
    assert result.exit_code == 0, result.output
    assert "2 of 5 words (layer 1, highres grid, sum); fixations and saliency map beside" in result.output
    slots, figure = drawn(target, 1 + 2 + 2)
    assert [not is_white(s) for s in slots] == [True] * 5 + [False] * 3  # image, fixations, saliency, 2 words
    assert figure.text["Title"] == f"{IMAGE}: tiny-random, layer 1, highres grid, mean of heads, words' tokens sum"

    output = saldata.open(demo_output)
    points = output.sql(f"SELECT x, y FROM fixations WHERE idx = {IDX}")
    x, y = points.column("x").to_numpy(), points.column("y").to_numpy()
    assert len(x) > 5
    width, height = output.attrs["image_size"]
    px, py = x * PANEL[0] / width, y * PANEL[1] / height
    fixations = slots[1]
    cyan = (fixations == FIXATION_FILL).all(axis=2)
    for cx, cy in zip(px, py):  # every point is a cyan dot at its place
        assert cyan[min(int(cy), PANEL[1] - 1), min(int(cx), PANEL[0] - 1)], (cx, cy)
    rows, cols = np.nonzero(cyan)  # and there is no cyan anywhere else
    distance = np.hypot(cols[:, None] + 0.5 - px[None], rows[:, None] + 0.5 - py[None]).min(axis=1)
    assert distance.max() <= FIXATION_RADIUS + 1
    assert not (slots[0] == FIXATION_FILL).all(axis=2).any()  # nor on the image itself

    saliency = np.asarray(output.group["saliency_map"][IDX], np.float64)
    small = np.asarray(Image.fromarray(saliency.astype(np.float32), mode="F").resize(PANEL), np.float64)
    brightness = slots[2].astype(np.float64).sum(axis=2)  # the colormap runs dark to bright
    assert np.corrcoef(brightness.ravel(), small.ravel())[0, 1] > 0.95


def test_words_by_text_or_index_and_one_head(demo_output, tmp_path):
    output = saldata.open(demo_output)
    words, mean_maps = output.word_maps(IDX, layer=1)
    _, head_maps = output.word_maps(IDX, layer=1, heads="all")
    assert [w["word"] for w in words] == ["4", "tions", "sma4", "tions", "sma4"]
    target = tmp_path / "words.png"
    result = invoke("show", demo_output, IMAGE, "-o", target, "--words", "TIONS, 0")
    assert result.exit_code == 0, result.output
    assert "3 of 5 words" in result.output
    slots, _ = drawn(target, 3 + 3)
    for slot, i in zip(slots[3:6], [1, 3, 0]):  # every occurrence of the text, then index 0, in the order named
        assert np.array_equal(slot, overlay(slots[0], mean_maps[i]))

    target = tmp_path / "head.png"
    result = invoke("show", demo_output, IMAGE, "-o", target, "--words", "2", "--head", "3")
    assert result.exit_code == 0 and "sum, head 3)" in result.output, result.output
    slots, figure = drawn(target, 3 + 1)
    assert np.array_equal(slots[3], overlay(slots[0], head_maps[2, 3]))
    assert not np.array_equal(slots[3], overlay(slots[0], mean_maps[2]))
    assert ", head 3," in figure.text["Title"]


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (["--words", "dog"], "--words 'dog' is neither a word of COCO_val2014_000000000003's description nor an "
                             "index 0..4; its words (index text): 0 4, 1 tions, 2 sma4, 3 tions, 4 sma4."),
        (["--words", "7"], "--words '7' is neither a word"),
        (["--words", "tions,,0"], "--words 'tions,,0' has an empty item"),
        (["--head", "4"], "--head 4 is out of range: "),
        (["--head", "-1"], "--head -1 is out of range: "),
    ],
)  # fmt: skip
def test_bad_words_and_heads_are_one_line(demo_output_ray_free, tmp_path, args, says):
    result = invoke("show", demo_output_ray_free, IMAGE, "-o", tmp_path / "f.png", *args)
    assert result.exit_code == 2 and says in result.output, result.output
    assert result.output.count("\n") == 1 and not (tmp_path / "f.png").exists()


def test_an_image_without_ground_truth_has_no_human_panels(demo_output_ray_free, tmp_path):
    out = tmp_path / "out"
    shutil.copytree(demo_output_ray_free, out)
    images = out / "catalog" / "images" / "shard-00000.parquet"
    rows = pq.read_table(images).to_pylist()
    rows[IDX].update(gt_status="none", n_fixations=None)
    pq.write_table(pa.Table.from_pylist(rows, schema=pq.read_schema(images)), images)
    commit_rewrite(out, images)
    result = invoke("show", out, IMAGE, "-o", tmp_path / "f.png", "--max-words", "2")
    assert result.exit_code == 0 and "no ground truth to draw beside" in result.output, result.output
    slots, _ = drawn(tmp_path / "f.png", 1 + 2)
    assert [not is_white(s) for s in slots] == [True] * 3 + [False]


@pytest.fixture(scope="module")
def heads_mean_output(tmp_path_factory):
    """The first demo image extracted with --heads mean (the pipeline's own steps, without Ray)."""
    out = tmp_path_factory.mktemp("heads-mean") / "out"
    code = (
        "from dataclasses import replace\nfrom pathlib import Path\n"
        "from saldata.extractors.settings import CaptureSettings\n"
        "from tests.ray_free_run import readers_demo_config, run_without_ray\n"
        f"config = readers_demo_config(Path({str(out)!r}))\n"
        "run_without_ray(replace(config, capture=CaptureSettings(max_new_tokens=4, heads='mean'), limit=1))\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300,
                          cwd=Path(__file__).parents[2])  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    return out


def test_a_head_of_an_output_that_kept_the_mean_is_one_line(heads_mean_output, tmp_path):
    image = "COCO_val2014_000000000001"
    result = invoke("show", heads_mean_output, image, "-o", tmp_path / "f.png", "--head", "0")
    assert result.exit_code == 2 and result.output.count("\n") == 1, result.output
    assert f"--head needs an output extracted with --heads all; {heads_mean_output} stored the heads' mean" in (
        result.output
    )
    result = invoke("show", heads_mean_output, image, "-o", tmp_path / "f.png")
    assert result.exit_code == 0 and "mean of heads" in Image.open(tmp_path / "f.png").text["Title"], result.output
