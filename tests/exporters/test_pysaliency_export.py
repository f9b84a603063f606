"""``--format pysaliency``: one map per image, the unit ``saldata evaluate`` scores, where
``pysaliency.SaliencyMapModelFromDirectory`` finds it; read by pysaliency itself where it is installed."""

from __future__ import annotations

import json
import os
import re
import subprocess
from pathlib import Path

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

import saldata
from saldata.analysis import metrics
from saldata.analysis.evaluate import EvalSettings, evaluate
from saldata.cli.main import app
from saldata.exporters.pysaliency_maps import map_stem

README = Path(__file__).resolve().parents[2] / "README.md"
PYSALIENCY_PYTHON = os.environ.get("SALDATA_PYSALIENCY_PYTHON")


def export(out, dest, *args) -> str:
    result = CliRunner().invoke(app, ["export", str(out), str(dest), "--format", "pysaliency", *map(str, args)])
    assert result.exit_code == 0, result.output
    return result.output


def expected_map(group, row: dict, grid: str, position: int) -> np.ndarray:
    """Written here from the definition: token maps averaged over heads, then tokens, resized by torch."""
    maps = np.asarray(group[f"attn_{grid}"][row["idx"], : row["n_tokens"], position], np.float64)
    small = torch.from_numpy(maps.mean(axis=(0, 1)))[None, None]
    return torch.nn.functional.interpolate(small, size=(480, 640), mode="bilinear", align_corners=False)[0, 0].numpy()


def test_map_names_are_the_stimulus_file_stems():
    assert map_stem("COCO_val2014_000000000001", "/d/images/val/COCO_val2014_000000000001.jpg") == (
        "COCO_val2014_000000000001"
    )
    assert map_stem("sub/a.png", "/root/sub/a.png") == "sub/a"  # folder ids keep the suffix
    assert map_stem("Action/001", "/c/trainSet/Stimuli/Action/001.jpg") == "Action/001"  # CAT2000


@pytest.mark.parametrize(("grid", "layer"), [("highres", None), ("base", 0)])
def test_maps_are_the_units_evaluate_scores(salicon_output, tmp_path, grid, layer):
    dest = tmp_path / "pysaliency"
    export(salicon_output, dest, "--grid", grid, *(["--layer", layer] if layer is not None else []))
    output = saldata.open(salicon_output)
    position = output.layers.position(layer)
    rows = [r for r in output.images.to_pylist() if r["n_tokens"] > 0]
    assert json.loads((dest / "stimuli.json").read_text()) == [r["source_path"] for r in rows]
    assert sorted(p.name for p in (dest / "maps").iterdir()) == sorted(f"{r['image_id']}.npy" for r in rows)
    decoder_layer = output.layers.layers[position]
    scores, _ = evaluate(output, EvalSettings(layers=(decoder_layer,), grid=grid))
    nss = {r["idx"]: r["nss"] for r in scores.to_pylist() if r["unit"] == "description" and r["head"] == -1}
    points = output.fixations.to_pylist()
    assert nss, "the fixture must have images with ground truth"
    for row in rows:
        saved = np.load(dest / "maps" / f"{row['image_id']}.npy")
        expected = expected_map(output.group, row, grid, position)
        assert saved.dtype == np.float32 and saved.shape == (480, 640)
        np.testing.assert_allclose(saved, expected, rtol=1e-6, atol=1e-12)  # float32 of it
        if row["idx"] in nss:  # and it is the map evaluate scored
            x = np.array([p["x"] for p in points if p["idx"] == row["idx"]])
            y = np.array([p["y"] for p in points if p["idx"] == row["idx"]])
            assert metrics.nss(expected, x, y) == pytest.approx(nss[row["idx"]], rel=1e-9)


def test_images_without_tokens_have_no_map(late_eos_output, tmp_path):
    text = export(late_eos_output, tmp_path / "pysaliency")
    output = saldata.open(late_eos_output)
    empty = [r["image_id"] for r in output.images.to_pylist() if r["n_tokens"] == 0]
    assert empty, "the fixture must give an image that generated nothing"
    assert f"{len(empty)} done images generated no token" in text
    stimuli = json.loads((tmp_path / "pysaliency" / "stimuli.json").read_text())
    names = {p.stem for p in (tmp_path / "pysaliency" / "maps").iterdir()}
    assert names == {Path(s).stem for s in stimuli} and not names & set(empty)
    resized = [
        r for r in output.images.to_pylist() if r["n_tokens"] and (r["orig_width"], r["orig_height"]) != (640, 480)
    ]
    assert resized and f"{len(resized)} stimuli are not 640x480" in text  # the demo's sizes vary


def readme_pysaliency_block() -> str:
    (block,) = re.findall(r"```py\n(.*?)```", README.read_text(), flags=re.S)
    return block


@pytest.mark.skipif(not PYSALIENCY_PYTHON, reason="SALDATA_PYSALIENCY_PYTHON is not set to a Python with pysaliency")
def test_pysaliency_scores_the_export_with_the_readme_lines(salicon_output, tmp_path):
    """The README's lines, run by pysaliency on the SALICON fixture (images at the stored size)."""
    work = tmp_path / "work"
    (work / "runs").mkdir(parents=True)
    export(salicon_output, work / "runs" / "demo-pysaliency")
    output = saldata.open(salicon_output)
    stimuli = json.loads((work / "runs" / "demo-pysaliency" / "stimuli.json").read_text())
    index = {r["source_path"]: i for i, r in enumerate(output.images.to_pylist())}
    points = [p for p in output.fixations.to_pylist() if p["idx"] in index.values()]
    order = {idx: stimuli.index(path) for path, idx in index.items() if path in stimuli}
    fixations = {"x": [p["x"] for p in points], "y": [p["y"] for p in points], "n": [order[p["idx"]] for p in points]}
    (work / "fixations.json").write_text(json.dumps(fixations))
    script = (
        "import json, warnings\nwarnings.simplefilter('ignore')\nimport numpy as np, pysaliency\n"
        "f = json.load(open('fixations.json'))\n"
        "fixations = pysaliency.Fixations.create_without_history(np.array(f['x']), np.array(f['y']), np.array(f['n']))\n"
        + readme_pysaliency_block()
        + "maps = [model.saliency_map(s).tolist() for s in stimuli]\n"
        "print(json.dumps({'nss': float(model.NSS(stimuli, fixations)), 'maps': maps}))\n"
    )
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}  # nothing of ours in its interpreter
    proc = subprocess.run(
        [PYSALIENCY_PYTHON, "-c", script], cwd=work, env=env, capture_output=True, text=True, timeout=300
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads(proc.stdout.splitlines()[-1])
    total, count = 0.0, 0
    for i, path in enumerate(stimuli):  # each stimulus got its own map
        saved = np.load(work / "runs" / "demo-pysaliency" / "maps" / f"{Path(path).stem}.npy")
        np.testing.assert_array_equal(np.array(result["maps"][i]), saved.astype(np.float64))
        mine = [p for p in points if order[p["idx"]] == i]
        if mine:
            x, y = np.array([p["x"] for p in mine]), np.array([p["y"] for p in mine])
            total, count = total + metrics.nss(saved.astype(np.float64), x, y) * len(mine), count + len(mine)
    assert count and result["nss"] == pytest.approx(total / count, rel=1e-6)  # pysaliency averages over fixations
