"""``saldata evaluate`` on the demo output: every row's numbers recomputed from the raw store and
catalog with torch's interpolate and the metric definitions, constructed maps with known scores,
the row convention shared with ``--format pysaliency``, and the CLI's outputs (Parquet, figure,
summary)."""

from __future__ import annotations

import json
import shutil

import duckdb
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import torch
import zarr
from PIL import Image
from typer.testing import CliRunner

import saldata
from saldata.analysis import metrics
from saldata.cli.main import app
from saldata.schemas.evaluation import METRICS
from tests.helpers import commit_rewrite

pytestmark = pytest.mark.filterwarnings("ignore:.*nanobind.*")


def invoke(*args):
    result = CliRunner().invoke(app, [str(a) for a in args], env={"COLUMNS": "200"})
    return result.exit_code, result.output


def fixations(out, idx: int) -> tuple[np.ndarray, np.ndarray]:
    rows = duckdb.sql(
        f"SELECT x, y FROM read_parquet('{out}/catalog/fixations/*.parquet') WHERE idx = {idx}"
    ).fetchnumpy()
    return rows["x"], rows["y"]


def upsampled(small: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """The reference the issue names: interpolate(mode="bilinear", align_corners=False)."""
    tensor = torch.from_numpy(np.asarray(small, np.float64))[None, None]
    return torch.nn.functional.interpolate(tensor, size=size, mode="bilinear", align_corners=False)[0, 0].numpy()


def by_hand_nss(prediction, x, y) -> float:
    z = (prediction - prediction.mean()) / prediction.std()
    return float(z[np.floor(y).astype(int), np.floor(x).astype(int)].mean())


@pytest.fixture(scope="module")
def evaluated(demo_output_ray_free, tmp_path_factory):
    out = tmp_path_factory.mktemp("eval") / "out"
    shutil.copytree(demo_output_ray_free, out)
    code, text = invoke("evaluate", out)
    assert code == 0, text
    return out, text, pq.read_table(out / "eval" / "metrics.parquet")


def research_rows(n_tokens: int, ended_with_eos: bool) -> range:
    """Written here from the README's statement: every decoding step but the first, the EOS step (row
    n_tokens) included where the image ended with EOS."""
    return range(1, max(1, n_tokens + (1 if ended_with_eos else 0)))


def test_rows_are_every_image_layer_and_unit_with_the_documented_columns(evaluated):
    out, text, table = evaluated
    assert table.schema.names == METRICS.names
    images = duckdb.sql(
        f"SELECT idx, image_id FROM read_parquet('{out}/catalog/images/*.parquet') "
        "WHERE status = 'done' AND gt_status = 'ok' ORDER BY idx"
    ).fetchall()
    # Under the research's rows a word made only of token 0 has no row, so no map: not scored.
    n_words = dict(
        duckdb.sql(
            f"SELECT idx, count(*) FROM read_parquet('{out}/catalog/words/*.parquet') WHERE last_position >= 1 "
            "GROUP BY idx"
        ).fetchall()
    )
    only_token_0 = duckdb.sql(
        f"SELECT count(*) FROM read_parquet('{out}/catalog/words/*.parquet') WHERE last_position = 0"
    ).fetchall()[0][0]
    assert len(images) == 6
    rows = table.to_pylist()
    for idx, image_id in images:
        mine = [r for r in rows if r["idx"] == idx]
        assert {r["image_id"] for r in mine} == {image_id}
        centre = [r for r in mine if r["unit"] == "centre_bias"]
        assert len(centre) == 1 and centre[0]["layer"] == -1 and centre[0]["head"] == -1
        assert centre[0]["word_index"] == -1 and centre[0]["word"] is None
        for layer in (0, 1):
            at = [r for r in mine if r["layer"] == layer]
            assert sum(r["unit"] == "description" for r in at) == 1
            assert sum(r["unit"] == "word" for r in at) == n_words.get(idx, 0)
    assert {r["head"] for r in rows} == {-1}  # no --per-head
    assert only_token_0, "the demo must have a word made only of token 0"
    words = f"{only_token_0} word{'' if only_token_0 == 1 else 's'}"
    assert f"not scored, having no row under --rows research: 0 images, {words}" in text


def test_integer_columns_read_as_integers_in_pandas(evaluated):
    out, _, _ = evaluated
    frame = pd.read_parquet(out / "eval" / "metrics.parquet")
    for column in ("idx", "layer", "head", "word_index"):
        assert pd.api.types.is_integer_dtype(frame[column]), (column, frame[column].dtype)
    assert set(frame.loc[frame.unit == "centre_bias", "layer"]) == {-1}
    assert set(frame.loc[frame.unit != "word", "word_index"]) == {-1}
    assert (frame.loc[frame.unit == "word", "word_index"] >= 0).all()


def test_the_file_records_how_it_was_scored(evaluated):
    out, _, _ = evaluated
    metadata = pq.read_schema(out / "eval" / "metrics.parquet").metadata
    assert metadata[b"saldata.metrics_version"] == b"3"
    assert json.loads(metadata[b"saldata.evaluation"]) == {
        "blur_px": 0.0,
        "grid": "highres",
        "layers": [0, 1],
        "per_head": False,
        "rows": "research",
        "saldata_version": saldata.__version__,
    }


def test_description_and_word_scores_match_a_recomputation_from_the_store(evaluated):
    out, _, table = evaluated
    group = zarr.open_group(out / "features.zarr", mode="r")
    rows = table.to_pylist()
    height, width = group["saliency_map"].shape[1:]
    checked = 0
    for idx in (0, 3):
        n = int(group["n_tokens"][idx])
        x, y = fixations(out, idx)
        assert len(x) > 0
        truth = group["saliency_map"][idx].astype(np.float64)
        words = duckdb.sql(
            f"SELECT word_index, first_position, last_position FROM read_parquet('{out}/catalog/words/*.parquet') "
            f"WHERE idx = {idx} AND last_position >= 1 ORDER BY word_index LIMIT 2"
        ).fetchall()
        eos = duckdb.sql(
            f"SELECT ended_with_eos FROM read_parquet('{out}/catalog/images/*.parquet') WHERE idx = {idx}"
        ).fetchall()[0][0]
        rows_ = research_rows(n, eos)
        for position, layer in ((0, 0), (1, 1)):
            per_token = group["attn_highres"][idx, : rows_.stop, position].astype(np.float64).mean(axis=1)
            units = [("description", -1, per_token[rows_.start :].mean(axis=0))]
            units += [("word", w, per_token[max(a, rows_.start) : b + 1].sum(axis=0)) for w, a, b in words]
            for unit, word_index, small in units:
                (row,) = [
                    r
                    for r in rows
                    if r["idx"] == idx and r["layer"] == layer and r["unit"] == unit and r["word_index"] == word_index
                ]
                prediction = upsampled(small, (height, width))
                assert row["nss"] == pytest.approx(by_hand_nss(prediction, x, y), abs=1e-9)
                assert row["cc"] == pytest.approx(np.corrcoef(prediction.ravel(), truth.ravel())[0, 1], abs=1e-9)
                # AUC counts ties, and on these near-flat maps torch's and numpy's last-bit rounding of the
                # upsampled map changes which pixels tie (~1e-6): scored on numpy's upsampling (itself
                # checked against torch in test_metrics.py), it must agree exactly
                same_upsampling = metrics.upsample_bilinear(small, (height, width))
                assert row["auc"] == pytest.approx(metrics.auc(same_upsampling, x, y), abs=1e-12)
                assert row["auc_judd"] == pytest.approx(metrics.auc_judd(same_upsampling, x, y), abs=1e-12)
                assert row["kld"] == pytest.approx(metrics.kld(prediction, truth), abs=1e-9)
                assert row["sim"] == pytest.approx(metrics.sim(prediction, truth), abs=1e-12)
                checked += 1
    assert checked >= 8


def test_sauc_matches_a_recomputation_with_every_other_images_fixations(evaluated):
    """The demo's six images are fewer than SAUC_OTHER_IMAGES + 1, so an image's negatives are every
    fixation of the five others (pysaliency's sAUC), read here from the catalog's Parquet files."""
    out, _, table = evaluated
    group = zarr.open_group(out / "features.zarr", mode="r")
    height, width = group["saliency_map"].shape[1:]
    points = duckdb.sql(
        f"SELECT f.idx, f.x, f.y FROM read_parquet('{out}/catalog/fixations/*.parquet') f "
        f"JOIN read_parquet('{out}/catalog/images/*.parquet') i USING (idx) "
        "WHERE i.status = 'done' AND i.gt_status = 'ok'"
    ).fetchnumpy()
    rows = table.to_pylist()
    checked = 0
    for idx in (0, 2, 5):
        x, y = fixations(out, idx)
        others = points["idx"] != idx
        other_x, other_y = points["x"][others], points["y"][others]
        assert len(set(points["idx"][others].tolist())) == 5
        n = int(group["n_tokens"][idx])
        eos = duckdb.sql(
            f"SELECT ended_with_eos FROM read_parquet('{out}/catalog/images/*.parquet') WHERE idx = {idx}"
        ).fetchall()[0][0]
        rows_ = research_rows(n, eos)
        small = group["attn_highres"][idx, : rows_.stop, 1].astype(np.float64).mean(axis=1)[rows_.start :].mean(axis=0)
        prediction = metrics.upsample_bilinear(small, (height, width))
        sigma = 0.15 * np.hypot(height, width)
        r, c = np.mgrid[0:height, 0:width]
        centre = np.exp(-((r - (height - 1) / 2) ** 2 + (c - (width - 1) / 2) ** 2) / (2 * sigma**2))
        for unit, layer, values in (("description", 1, prediction), ("centre_bias", -1, centre)):
            (row,) = [r for r in rows if r["idx"] == idx and r["unit"] == unit and r["layer"] == layer]
            positives = values[np.floor(y).astype(int), np.floor(x).astype(int)]
            negatives = values[np.floor(other_y).astype(int), np.floor(other_x).astype(int)]
            # The share of negatives below each positive, ties half, averaged over the fixations, by pairs.
            pairs = (positives[:, None] > negatives[None, :]) + 0.5 * (positives[:, None] == negatives[None, :])
            assert row["sauc"] == pytest.approx(pairs.mean(), abs=1e-12), (idx, unit)
            checked += 1
    assert checked == 6


def test_centre_bias_row_scores_the_documented_gaussian(evaluated):
    out, _, table = evaluated
    group = zarr.open_group(out / "features.zarr", mode="r")
    height, width = group["saliency_map"].shape[1:]
    sigma = 0.15 * np.hypot(height, width)
    rows_, cols_ = np.mgrid[0:height, 0:width]
    gaussian = np.exp(-((rows_ - (height - 1) / 2) ** 2 + (cols_ - (width - 1) / 2) ** 2) / (2 * sigma**2))
    (row,) = [r for r in table.to_pylist() if r["idx"] == 2 and r["unit"] == "centre_bias"]
    x, y = fixations(out, 2)
    assert row["nss"] == pytest.approx(by_hand_nss(gaussian, x, y), abs=1e-9)


def test_a_constant_map_scores_chance_and_a_map_on_the_fixations_scores_high(demo_output_ray_free, tmp_path):
    """Constructed maps with known answers, written into a copy of the store: constant attention
    scores NSS 0, AUC 0.5, CC 0; attention on exactly the fixated cells beats the centre bias."""
    out = tmp_path / "out"
    shutil.copytree(demo_output_ray_free, out)
    group = zarr.open_group(out / "features.zarr", mode="r+")
    flat_idx, peaked_idx = 1, 4
    array = group["attn_highres"]
    rows, cols = array.shape[-2:]
    height, width = group["saliency_map"].shape[1:]
    flat = np.asarray(array[flat_idx])
    flat[:] = 0.5
    array[flat_idx] = flat
    x, y = fixations(out, peaked_idx)
    peaked = np.zeros_like(np.asarray(array[peaked_idx]))
    peaked[..., np.floor(y * rows / height).astype(int), np.floor(x * cols / width).astype(int)] = 1.0
    array[peaked_idx] = peaked
    code, text = invoke("evaluate", out, "--layers", "0", "--grid", "highres")
    assert code == 0, text
    table = pq.read_table(out / "eval" / "metrics.parquet").to_pylist()
    assert {r["layer"] for r in table} == {0, -1}
    for r in (r for r in table if r["idx"] == flat_idx and r["layer"] == 0):
        assert (r["nss"], r["auc"], r["auc_judd"], r["sauc"], r["cc"]) == (0.0, 0.5, 0.5, 0.5, 0.0), r
    (centre,) = [r for r in table if r["idx"] == peaked_idx and r["unit"] == "centre_bias"]
    (described,) = [r for r in table if r["idx"] == peaked_idx and r["unit"] == "description"]
    assert described["nss"] > 2 and described["nss"] > centre["nss"]
    assert described["auc"] > 0.9 and described["auc"] > centre["auc"]
    assert described["auc_judd"] > 0.9 and described["auc_judd"] > centre["auc_judd"]


def test_summary_names_the_best_layer_and_the_figure_is_written(evaluated):
    out, text, table = evaluated
    assert "centre bias" in text and "sigma 0.15 of the diagonal (120 px at 640x480)" in text
    description = [r for r in table.to_pylist() if r["unit"] == "description"]
    means = {layer: np.mean([r["nss"] for r in description if r["layer"] == layer]) for layer in (0, 1)}
    best = max(means, key=means.get)
    assert f"best layer by NSS: {best} ({means[best]:.3f}; centre bias" in text
    with Image.open(out / "eval" / "layers.png") as figure:
        assert figure.size[0] >= 1000 and len(np.unique(np.asarray(figure.convert("RGB")).reshape(-1, 3), axis=0)) > 3


def test_summary_lists_the_best_and_worst_words_by_nss(evaluated):
    out, text, _ = evaluated
    best = int(text.split("best layer by NSS: ")[1].split(" ")[0])
    words = duckdb.sql(
        f"SELECT lower(word) AS w, avg(nss) AS nss, count(nss) AS n FROM '{out}/eval/metrics.parquet' "
        f"WHERE unit = 'word' AND head = -1 AND layer = {best} GROUP BY w HAVING n >= 3 ORDER BY nss DESC, w"
    ).fetchall()
    assert len(words) >= 2, "the demo must have words seen three times"
    n_words = duckdb.sql(
        f"SELECT count(DISTINCT lower(word)) FROM '{out}/eval/metrics.parquet' WHERE unit = 'word' AND layer = {best}"
    ).fetchall()[0][0]
    assert (
        f"words by NSS at layer {best}: mean over each word's occurrences (lower case, heads averaged), of words "
        f"seen at least 3 times ({len(words)} of {n_words} words)" in text
    )
    half = (len(words) + 1) // 2  # best down the left, worst (lowest first) on the right
    lines = text.splitlines()
    header = next(i for i, line in enumerate(lines) if line.startswith("┃ best"))
    for i in range(half):
        cells = [c.strip() for c in lines[header + 2 + i].split("│")[1:7]]
        word, nss, n = words[i]
        assert cells[:3] == [word, f"{nss:.3f}", str(n)]
        worst = words[::-1][i] if i < len(words) - half else ("", None, "")
        assert cells[3:] == [worst[0], "" if worst[1] is None else f"{worst[1]:.3f}", str(worst[2])]


def test_per_head_blur_and_base_grid(demo_output_ray_free, tmp_path):
    out = tmp_path / "out"
    shutil.copytree(demo_output_ray_free, out)
    code, text = invoke("evaluate", out, "--layers", "-1", "--per-head", "--grid", "base", "--blur", "8")
    assert code == 0, text
    table = pq.read_table(out / "eval" / "metrics.parquet").to_pylist()
    assert {r["head"] for r in table if r["unit"] == "description"} == {-1, 0, 1, 2, 3}
    assert {r["layer"] for r in table} == {1, -1}
    group = zarr.open_group(out / "features.zarr", mode="r")
    n = int(group["n_tokens"][0])
    small = group["attn_base"][0, 1:n, 1, 2].astype(np.float64).mean(axis=0)  # research rows: 1..n-1
    prediction = metrics.blur(upsampled(small, group["saliency_map"].shape[1:]), 8)
    (row,) = [r for r in table if r["idx"] == 0 and r["unit"] == "description" and r["head"] == 2]
    x, y = fixations(out, 0)
    assert row["nss"] == pytest.approx(by_hand_nss(prediction, x, y), abs=1e-9)


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (
            ["--layers", "7"],
            "layer 7 is out of range: the model has 2 decoder layers (0..1, or -1..-2 from the end); this output holds layers 0, 1",
        ),
        (["--layers", "-3"], "layer -3 is out of range: the model has 2 decoder layers"),
        (["--grid", "middle"], "--grid must be 'highres' or 'base'"),
        (["--blur", "1e9"], "--blur 1000000000 px is wider than the 640x480 images"),
        (["--blur", "-1"], "--blur must be a number of pixels >= 0"),
        (["--rows", "first"], "--rows must be one of research, all-tokens, not 'first'"),
    ],
)
def test_bad_options_are_one_line(demo_output_ray_free, args, says):
    code, text = invoke("evaluate", demo_output_ray_free, *args)
    assert code == 2 and says in text and "Traceback" not in text
    assert len(text.strip().splitlines()) == 1, text


def test_only_committed_shards_are_scored_and_a_rerun_replaces_the_file(demo_output_ray_free, tmp_path):
    out = tmp_path / "out"
    shutil.copytree(demo_output_ray_free, out)
    (out / "commits" / "shard-00001.json").unlink()  # shard 1 (images 4, 5) as a killed run leaves it
    code, text = invoke("evaluate", out, "--layers", "1")
    assert code == 0, text
    first = pq.read_table(out / "eval" / "metrics.parquet")
    assert set(first.column("idx").to_pylist()) == {0, 1, 2, 3}
    code, text = invoke("evaluate", out, "--layers", "0")  # other settings: never silently over the first
    assert code == 2 and "was made with other settings (layers [1] there, [0] now)" in text, text
    assert pq.read_table(out / "eval" / "metrics.parquet").equals(first)
    code, text = invoke("evaluate", out, "--layers", "0", "--overwrite")
    assert code == 0, text
    second = pq.read_table(out / "eval" / "metrics.parquet")
    assert set(second.column("layer").to_pylist()) == {0, -1}
    assert sorted(p.name for p in (out / "eval").iterdir()) == ["layers.png", "metrics.parquet"]


@pytest.mark.slow
def test_evaluate_every_layer_of_mid_random(saldata_cache, demo_root, tmp_path):
    """The benchmark's model, all 8 layers captured in one pass: each layer scored, recomputable."""
    from tests.ray_free_run import build

    out = build(tmp_path / "mid", model="mid-random", timeout=600)
    code, text = invoke("evaluate", out)
    assert code == 0, text
    table = pq.read_table(out / "eval" / "metrics.parquet").to_pylist()
    assert {r["layer"] for r in table} == set(range(8)) | {-1}
    group = zarr.open_group(out / "features.zarr", mode="r")
    idx, layer = 3, 5
    n = int(group["n_tokens"][idx])
    eos = duckdb.sql(
        f"SELECT ended_with_eos FROM read_parquet('{out}/catalog/images/*.parquet') WHERE idx = {idx}"
    ).fetchall()[0][0]
    rows = research_rows(n, eos)
    small = group["attn_highres"][idx, : rows.stop, layer][rows.start :].astype(np.float64).mean(axis=(0, 1))
    prediction = upsampled(small, group["saliency_map"].shape[1:])
    (row,) = [r for r in table if r["idx"] == idx and r["layer"] == layer and r["unit"] == "description"]
    x, y = fixations(out, idx)
    assert row["nss"] == pytest.approx(by_hand_nss(prediction, x, y), abs=1e-9)
    assert "best layer by NSS" in text


def test_an_output_with_no_row_under_the_convention_is_one_line(demo_output_ray_free, tmp_path):
    """Every description one token long without EOS: the research's rows are empty, every token's are not."""
    out = tmp_path / "out"
    shutil.copytree(demo_output_ray_free, out)
    for shard in (out / "catalog" / "images").glob("*.parquet"):
        images = pq.read_table(shard)
        n_tokens = images.schema.get_field_index("n_tokens")
        ones = pa.array([1] * images.num_rows, pa.int32())
        pq.write_table(images.set_column(n_tokens, images.schema.field(n_tokens), ones), shard)
        commit_rewrite(out, shard)  # as an extraction that made them would have committed it
    code, text = invoke("evaluate", out, "--layers", "0")
    assert code == 2 and "Traceback" not in text and len(text.strip().splitlines()) == 1, text
    assert "none of the 6 done images with ground truth has a row under --rows research" in text
    code, text = invoke("evaluate", out, "--layers", "0", "--rows", "all-tokens")
    assert code == 0, text
    table = pq.read_table(out / "eval" / "metrics.parquet").to_pylist()
    group = zarr.open_group(out / "features.zarr", mode="r")
    (row,) = [r for r in table if r["idx"] == 2 and r["unit"] == "description"]
    small = group["attn_highres"][2, 0, 0].astype(np.float64).mean(axis=0)  # row 0 alone
    x, y = fixations(out, 2)
    assert row["nss"] == pytest.approx(by_hand_nss(upsampled(small, group["saliency_map"].shape[1:]), x, y), abs=1e-9)
