"""One row convention across ``--format pysaliency`` and ``saldata evaluate``: the export's maps, the
evaluation's description and its words all hold the rows the README states, recomputed here from
the raw store and catalog, under both ``--rows`` choices, on an output where some descriptions
end with EOS (so the EOS row and token 0 both matter)."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pyarrow.parquet as pq
import pytest
import torch
import zarr
from typer.testing import CliRunner

import saldata
from saldata.analysis import metrics
from saldata.cli.main import app
from saldata.exporters.base import export_name

pytestmark = pytest.mark.filterwarnings("ignore:.*nanobind.*")


def invoke(*args) -> str:
    result = CliRunner().invoke(app, [str(a) for a in args], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    return result.output


def stated_rows(convention: str, n_tokens: int, ended_with_eos: bool) -> list[int]:
    """The README's words: one row per decoding step, the EOS step last (row n_tokens) where the image
    ended with EOS; research is every step but the first, all-tokens every step that produced a token."""
    steps = list(range(n_tokens + (1 if ended_with_eos else 0)))
    return steps[1:] if convention == "research" else steps[:n_tokens]


def on_image(small: np.ndarray) -> np.ndarray:
    tensor = torch.from_numpy(np.asarray(small, np.float64))[None, None]
    return torch.nn.functional.interpolate(tensor, size=(480, 640), mode="bilinear", align_corners=False)[0, 0].numpy()


def by_hand_nss(prediction, x, y) -> float:
    z = (prediction - prediction.mean()) / prediction.std()
    return float(z[np.floor(y).astype(int), np.floor(x).astype(int)].mean())


@pytest.mark.parametrize("convention", ["research", "all-tokens"])
def test_export_maps_description_and_word_units_hold_the_stated_rows(late_eos_output, tmp_path, convention):
    out = tmp_path / "out"
    shutil.copytree(late_eos_output, out)
    options = [] if convention == "research" else ["--rows", convention]  # research is the default
    text = invoke("evaluate", out, "--layers", "-1", *options)
    dest = tmp_path / "pysaliency"
    invoke("export", out, dest, "--format", "pysaliency", *options)

    output = saldata.open(out)
    group = zarr.open_group(out / "features.zarr", mode="r")
    position = len(output.attrs["layers"]) - 1
    images = output.images.to_pylist()
    words = output.words.to_pylist()
    points = output.fixations.to_pylist()
    scores = pq.read_table(out / "eval" / "metrics.parquet").to_pylist()
    assert any(r["ended_with_eos"] and r["n_tokens"] >= 1 for r in images), "the fixture must end one with EOS"
    assert any(w["first_position"] == 0 for w in words), "the fixture must have a word on token 0"

    other = "all-tokens" if convention == "research" else "research"
    differs = dropped_images = dropped_words = checked_words = 0
    for image in images:
        rows = stated_rows(convention, image["n_tokens"], image["ended_with_eos"])
        stem = export_name(image["image_id"], image["source_path"])
        mine = [s for s in scores if s["idx"] == image["idx"]]
        if not rows:  # no map, no score, not even the centre bias's: every row of the table is on the same images
            assert not (dest / "maps" / f"{stem}.npy").exists() and not mine
            dropped_images += 1
            continue
        per_row = np.asarray(group["attn_highres"][image["idx"]][rows, position], np.float64).mean(axis=1)
        expected = on_image(per_row.mean(axis=0))
        saved = np.load(dest / "maps" / f"{stem}.npy")
        np.testing.assert_allclose(saved, expected, rtol=1e-6, atol=1e-12)  # the export's map, in float32
        rows_other = stated_rows(other, image["n_tokens"], image["ended_with_eos"])
        if rows_other and rows_other != rows:
            maps_other = np.asarray(group["attn_highres"][image["idx"]][rows_other, position], np.float64)
            differs += not np.allclose(saved, on_image(maps_other.mean(axis=(0, 1))), rtol=1e-6, atol=1e-12)
        x = np.array([p["x"] for p in points if p["idx"] == image["idx"]])
        y = np.array([p["y"] for p in points if p["idx"] == image["idx"]])
        (description,) = [s for s in mine if s["unit"] == "description"]
        assert description["nss"] == pytest.approx(by_hand_nss(expected, x, y), abs=1e-9)  # evaluate's description
        assert description["nss"] == pytest.approx(metrics.nss(saved.astype(np.float64), x, y), abs=1e-5)
        for word in (w for w in words if w["idx"] == image["idx"]):
            kept = [r for r in rows if word["first_position"] <= r <= word["last_position"]]  # never the EOS row
            scored = [s for s in mine if s["unit"] == "word" and s["word_index"] == word["word_index"]]
            if not kept:
                assert not scored, word  # a word made only of rows the convention drops has no map
                dropped_words += 1
                continue
            (row,) = scored
            summed = per_row[[rows.index(r) for r in kept]].sum(axis=0)
            assert row["nss"] == pytest.approx(by_hand_nss(on_image(summed), x, y), abs=1e-9), word
            checked_words += 1
    assert differs, f"no image's {convention} map differs from its {other} map: the test could not tell them apart"
    assert checked_words > 10
    assert json.loads(pq.read_schema(out / "eval" / "metrics.parquet").metadata[b"saldata.evaluation"])["rows"] == (
        convention
    )
    assert json.loads((dest / "saldata-export.json").read_text())["settings"]["rows"] == convention
    assert dropped_images, "the fixture must have an image that ended with EOS at once"
    images = f"{dropped_images} image{'' if dropped_images == 1 else 's'}"  # "1 images" before #26
    words = f"{dropped_words} word{'' if dropped_words == 1 else 's'}"
    assert f"not scored, having no row under --rows {convention}: {images}, {words}" in text
    assert bool(dropped_words) == (convention == "research")  # only the research's rows drop token 0
