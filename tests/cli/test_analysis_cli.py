"""`saldata show` and `saldata stats` on a real demo output, checked against numpy/duckdb directly."""

from __future__ import annotations

import shutil

import duckdb
import numpy as np
import pyarrow.parquet as pq
import pytest
import zarr
from PIL import Image
from typer.testing import CliRunner

from saldata.analysis.overlay import COLUMNS, LABEL_HEIGHT, PANEL, SCALE_HEIGHT, colour_scale, word_label
from saldata.cli.main import app


def invoke(*args):
    return CliRunner().invoke(app, list(map(str, args)))


def words_of(out, idx):
    return duckdb.sql(
        f"SELECT * FROM read_parquet('{out}/catalog/words/*.parquet') WHERE idx = {idx} ORDER BY word_index"
    ).fetchall()


def test_show_draws_one_panel_per_word(demo_output, tmp_path):
    target = tmp_path / "fig.png"
    result = invoke("show", demo_output, "COCO_val2014_000000000003", "-o", target, "--max-words", "5")
    assert result.exit_code == 0, result.output
    n_words = len(words_of(demo_output, 2))
    assert f"{min(n_words, 5)} of {n_words} words" in result.output
    human = 2  # the fixations and the saliency map, beside the image (the demo has ground truth)
    with Image.open(target) as figure:
        panels = 1 + human + min(n_words, 5)
        rows = -(-panels // COLUMNS)
        assert figure.width == COLUMNS * PANEL[0]
        assert (figure.height - SCALE_HEIGHT - rows * (PANEL[1] + LABEL_HEIGHT)) > 0  # text strip on top
        pixels = np.asarray(figure)
    # an overlay panel is not the plain picture: the map was drawn on it
    top = figure.height - SCALE_HEIGHT - rows * (PANEL[1] + LABEL_HEIGHT) + LABEL_HEIGHT
    word_x = (1 + human) * PANEL[0]  # the first word's panel: the last of the first row
    plain, first_word = (
        pixels[top : top + PANEL[1], : PANEL[0]],
        pixels[top : top + PANEL[1], word_x : word_x + PANEL[0]],
    )
    assert n_words == 0 or np.abs(plain.astype(int) - first_word.astype(int)).mean() > 5
    # the colour scale runs along the bottom, dark to bright
    scale_row = pixels[figure.height - SCALE_HEIGHT + 8, PANEL[0] : 3 * PANEL[0]]
    np.testing.assert_array_equal(scale_row, colour_scale(2 * PANEL[0])[0])
    assert "(layer 1, highres grid, sum)" in result.output  # the last captured layer by default
    other = tmp_path / "layer0.png"
    result = invoke("show", demo_output, "COCO_val2014_000000000003", "-o", other, "--max-words", "5", "--layer", "0")
    assert result.exit_code == 0 and "(layer 0," in result.output, result.output
    with Image.open(other) as figure0:
        word0 = np.asarray(figure0)[top : top + PANEL[1], word_x : word_x + PANEL[0]]
    assert n_words == 0 or np.abs(word0.astype(int) - first_word.astype(int)).mean() > 1
    result = invoke("show", demo_output, "COCO_val2014_000000000003", "-o", other, "--layer", "5")
    assert result.exit_code == 2 and "layer 5 is out of range" in result.output


def test_a_word_label_names_its_token_positions_and_peak():
    assert word_label({"word": "dog", "first_position": 3, "last_position": 4}, 0.01234) == (
        "dog  (tokens 3-4, max 0.0123)"
    )
    assert word_label({"word": "a", "first_position": 0, "last_position": 0}, 1.0) == "a  (token 0, max 1)"


def test_show_unknown_image_is_a_clear_error(demo_output, tmp_path):
    result = invoke("show", demo_output, "COCO_nope", "-o", tmp_path / "x.png")
    assert result.exit_code == 2 and "COCO_nope" in result.output and "Traceback" not in result.output


def test_stats_match_a_direct_computation(demo_output, tmp_path):
    result = invoke("stats", demo_output, "--top", "3")
    assert result.exit_code == 0, result.output
    table = pq.read_table(demo_output / "stats" / "words.parquet").to_pylist()
    counts = dict(
        duckdb.sql(
            f"SELECT lower(word), count(*) FROM read_parquet('{demo_output}/catalog/words/*.parquet') GROUP BY 1"
        ).fetchall()
    )
    assert {r["word"]: r["count"] for r in table} == counts
    assert [r["count"] for r in table] == sorted((r["count"] for r in table), reverse=True)
    assert table[0]["word"] in result.output
    # the top word's mean map and mass, straight from zarr
    word = table[0]["word"]
    group = zarr.open_group(demo_output / "features.zarr", mode="r")
    occurrences = duckdb.sql(
        f"SELECT idx, first_position, last_position FROM read_parquet('{demo_output}/catalog/words/*.parquet') "
        f"WHERE lower(word) = '{word}'"
    ).fetchall()
    maps, masses = [], []
    for idx, first, last in occurrences:
        high = group["attn_highres"][idx, first : last + 1, -1].astype(np.float32).mean(axis=(0, 1))
        base = group["attn_base"][idx, first : last + 1, -1].astype(np.float32).mean(axis=(0, 1))
        maps.append(high)
        masses.append(high.sum() + base.sum())
    stored = zarr.open_group(demo_output / "stats" / "word_maps.zarr", mode="r")
    assert stored.attrs["words"][table[0]["map_row"]] == word
    np.testing.assert_allclose(stored["mean_map"][table[0]["map_row"]], np.mean(maps, axis=0), rtol=1e-5)
    np.testing.assert_allclose(table[0]["attention_mass"], np.mean(masses), rtol=1e-5)
    assert 0 < table[0]["attention_mass"] <= 1.0001
    assert stored.attrs["layer"] == 1 and "(layer 1)" in result.output  # the last captured by default
    top_map = stored["mean_map"][table[0]["map_row"]]
    assert invoke("stats", demo_output, "--top", "3", "--layer", "0").exit_code == 0
    stored = zarr.open_group(demo_output / "stats" / "word_maps.zarr", mode="r")
    assert stored.attrs["layer"] == 0
    assert not np.allclose(stored["mean_map"][table[0]["map_row"]], top_map, rtol=1e-3, atol=0)  # another layer


def test_show_output_with_an_unknown_extension_is_one_line(demo_output, tmp_path):
    target = tmp_path / "figure.xyz"
    result = invoke("show", demo_output, "COCO_val2014_000000000003", "-o", target)
    assert result.exit_code == 2 and result.output.count("\n") == 1, result.output
    assert str(target) in result.output and ".png" in result.output and "Traceback" not in result.output
    assert not target.exists()


@pytest.mark.parametrize("where", ["catalog/images/shard-00000.parquet", "figure.png"])
def test_show_never_writes_into_out(demo_output, tmp_path, where):
    out = tmp_path / "out"
    shutil.copytree(demo_output, out)
    before = {p: p.read_bytes() for p in out.rglob("*") if p.is_file()}
    result = invoke("show", out, "COCO_val2014_000000000003", "-o", out / where)
    assert result.exit_code == 2 and "write the result elsewhere" in result.output, result.output
    assert {p: p.read_bytes() for p in out.rglob("*") if p.is_file()} == before
