"""``--format pysaliency``: what pysaliency scores with no glue: the maps (the unit ``saldata evaluate``
scores, on the same rows), the stimuli at the stored size, the fixation points and the ground-truth
maps; read and scored by pysaliency itself where it is installed (SALDATA_PYSALIENCY_PYTHON)."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
import torch
from PIL import Image, ImageOps
from typer.testing import CliRunner

import saldata
from saldata.analysis import metrics
from saldata.analysis.evaluate import EvalSettings, evaluate
from saldata.cli.main import app
from saldata.exporters.base import export_name
from tests.exporters.conftest import SALICON_STEMS, SALICON_WITHOUT_TRUTH
from tests.helpers import commit_rewrite

README = Path(__file__).resolve().parents[2] / "README.md"
PYSALIENCY_PYTHON = os.environ.get("SALDATA_PYSALIENCY_PYTHON")


def export(out, dest, *args) -> str:
    result = CliRunner().invoke(app, ["export", str(out), str(dest), "--format", "pysaliency", *map(str, args)])
    assert result.exit_code == 0, result.output
    return result.output


def research_rows(row: dict) -> list[int]:
    """The README's research rows: every decoding step but the first, the EOS step (row n_tokens) last."""
    return list(range(1, row["n_tokens"] + (1 if row["ended_with_eos"] else 0)))


def expected_map(group, row: dict, grid: str, position: int) -> np.ndarray:
    """Written here from the definition: the rows' maps averaged over heads, then rows, resized by torch."""
    maps = np.asarray(group[f"attn_{grid}"][row["idx"]][research_rows(row), position], np.float64)
    small = torch.from_numpy(maps.mean(axis=(0, 1)))[None, None]
    return torch.nn.functional.interpolate(small, size=(480, 640), mode="bilinear", align_corners=False)[0, 0].numpy()


def stimuli_paths(dest: Path) -> list[Path]:
    """stimuli.json joined to DEST, as the README's loader does."""
    return [dest / path for path in json.loads((dest / "stimuli.json").read_text())]


def test_map_names_are_the_stimulus_file_stems():
    assert export_name("COCO_val2014_000000000001", "/d/images/val/COCO_val2014_000000000001.jpg") == (
        "COCO_val2014_000000000001"
    )
    assert export_name("sub/a.png", "/root/sub/a.png") == "sub__a"  # one flat name, as language-att's (#26)
    assert export_name("Action/001", "/c/trainSet/Stimuli/Action/001.jpg") == "Action__001"  # CAT2000


@pytest.mark.parametrize(("grid", "layer"), [("highres", None), ("base", 0)])
def test_maps_are_the_units_evaluate_scores(salicon_output, tmp_path, grid, layer):
    dest = tmp_path / "pysaliency"
    export(salicon_output, dest, "--grid", grid, *(["--layer", layer] if layer is not None else []))
    output = saldata.open(salicon_output)
    position = output.layers.position(layer)
    rows = [r for r in output.images.to_pylist() if research_rows(r)]
    stems = [export_name(r["image_id"], r["source_path"]) for r in rows]
    assert [p.parent.name + "/" + p.stem for p in stimuli_paths(dest)] == [f"stimuli/{s}" for s in stems]
    assert sorted(p.name for p in (dest / "maps").iterdir()) == sorted(f"{s}.npy" for s in stems)
    decoder_layer = output.layers.layers[position]
    scores, _, _ = evaluate(output, EvalSettings(layers=(decoder_layer,), grid=grid))
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


def test_stimuli_have_the_stored_size_and_are_what_the_model_saw(late_eos_output, tmp_path):
    """The demo's images have several sizes: each stimulus is 640x480 as pysaliency reads it (no EXIF
    turn), a link to a source already that size, else a PNG of the source resized as the extraction does."""
    dest = tmp_path / "pysaliency"
    text = export(late_eos_output, dest)
    rows = [r for r in saldata.open(late_eos_output).images.to_pylist() if research_rows(r)]
    paths = stimuli_paths(dest)
    assert len(paths) == len(rows)
    resized = 0
    for row, path in zip(rows, paths, strict=True):
        assert path.stem == export_name(row["image_id"], row["source_path"])
        with Image.open(path) as stimulus:
            assert stimulus.size == (640, 480) and stimulus.getexif().get(0x0112, 1) == 1
            pixels = np.asarray(stimulus.convert("RGB"))
        with Image.open(row["source_path"]) as source:
            same_size = source.size == (640, 480) and source.getexif().get(0x0112, 1) == 1
            seen = ImageOps.exif_transpose(source).convert("RGB")
        if same_size:
            assert path.is_symlink() and os.readlink(path) == row["source_path"]
        else:
            resized += 1
            assert path.suffix == ".png" and not path.is_symlink()
            np.testing.assert_array_equal(pixels, np.asarray(seen.resize((640, 480), Image.Resampling.BICUBIC)))
    assert resized and f"{resized} stimuli written as 640x480 PNGs" in text


def test_fixations_and_ground_truth_are_the_catalog_s_in_the_stimuli_s_pixels(salicon_output, tmp_path):
    """fixations.npz from the fixture's own points (SALICON_SUBJECTS, 1-based, at 640x480: x - 1), and
    ground_truth/ the stored saliency maps, for the images with ground truth only."""
    dest = tmp_path / "pysaliency"
    export(salicon_output, dest)
    output = saldata.open(salicon_output)
    rows = [r for r in output.images.to_pylist() if research_rows(r)]
    stems = [p.stem for p in stimuli_paths(dest)]
    assert stems == [export_name(r["image_id"], r["source_path"]) for r in rows]
    with np.load(dest / "fixations.npz") as f:
        arrays = {name: f[name] for name in f.files}
    assert sorted(arrays) == ["n", "subject", "t", "with_ground_truth", "x", "y"]
    assert arrays["with_ground_truth"].tolist() == [r["gt_status"] == "ok" for r in rows]
    assert SALICON_WITHOUT_TRUTH in stems and set(SALICON_STEMS) <= set(stems)
    assert not arrays["with_ground_truth"][stems.index(SALICON_WITHOUT_TRUTH)]
    catalog = output.fixations.to_pylist()
    for i, stem in enumerate(stems):
        mine = arrays["n"] == i
        if not arrays["with_ground_truth"][i]:
            assert not mine.any() and not (dest / "ground_truth" / f"{stem}.png").exists()
            continue
        if stem in SALICON_STEMS:
            # Subject 0: (100, 200), (320, 240), (640, 480); subject 1: (1, 1); subject 2: none.
            assert arrays["x"][mine].tolist() == [99.0, 319.0, 639.0, 0.0]
            assert arrays["y"][mine].tolist() == [199.0, 239.0, 479.0, 0.0]
            assert arrays["t"][mine].tolist() == [0.0, 1.0, 2.0, 0.0]  # the order within the subject
            assert arrays["subject"][mine].tolist() == [0, 0, 0, 1]
        idx = rows[i]["idx"]
        points = sorted((p for p in catalog if p["idx"] == idx), key=lambda p: (p["subject"], p["fixation_index"]))
        assert arrays["x"][mine].tolist() == [p["x"] for p in points]  # every image: the catalog's, in its frame
        assert arrays["y"][mine].tolist() == [p["y"] for p in points]
        assert ((arrays["x"][mine] < 640) & (arrays["y"][mine] < 480)).all()  # points off the frame come clipped
        with Image.open(dest / "ground_truth" / f"{stem}.png") as truth:
            assert truth.mode == "L"
            np.testing.assert_array_equal(np.asarray(truth), output.group["saliency_map"][idx])
    assert arrays["n"].dtype.kind == "i" and arrays["subject"].dtype.kind == "i"


def test_images_without_rows_have_no_map(late_eos_output, tmp_path):
    text = export(late_eos_output, tmp_path / "pysaliency")
    output = saldata.open(late_eos_output)
    empty = [r["image_id"] for r in output.images.to_pylist() if not research_rows(r)]
    assert empty, "the fixture must give an image that ended with EOS at once"
    assert f"{len(empty)} done images have no row under --rows research" in text
    names = {p.stem for p in (tmp_path / "pysaliency" / "maps").iterdir()}
    assert names == {p.stem for p in stimuli_paths(tmp_path / "pysaliency")} and not names & set(empty)


def test_rows_option(late_eos_output, tmp_path):
    def run(*args):
        return CliRunner().invoke(app, ["export", str(late_eos_output), *map(str, args)], env={"COLUMNS": "200"})

    dest = tmp_path / "pysaliency"
    assert run(dest, "--format", "pysaliency", "--rows", "all-tokens").exit_code == 0
    manifest = json.loads((dest / "saldata-export.json").read_text())
    assert manifest["settings"] == {"grid": "highres", "layer": 1, "rows": "all-tokens", "unit": "description"}
    for args, says in [
        ((dest, "--format", "pysaliency"), "--rows all-tokens (this run: --rows research)"),
        ((tmp_path / "b", "--format", "pysaliency", "--rows", "tokens"), "--rows must be one of research, all-tokens"),
        ((tmp_path / "c", "--format", "language-att", "--rows", "all-tokens"), "--rows does not apply to --format"),
    ]:
        result = run(*args)
        assert result.exit_code == 2 and says in result.output and "Traceback" not in result.output, result.output
        assert len(result.output.strip().splitlines()) == 1, result.output


def test_a_source_image_gone_since_the_extraction_is_one_line(demo_output_ray_free, tmp_path):
    """The stimuli are made from the source images: one that cannot be read now stops the export, naming it."""
    out = tmp_path / "out"
    shutil.copytree(demo_output_ray_free, out)
    shard = out / "catalog" / "images" / "shard-00000.parquet"
    images = pq.read_table(shard)
    gone = str(tmp_path / "moved-away.jpg")
    paths = images.column("source_path").to_pylist()
    paths[0] = gone
    pq.write_table(images.set_column(images.schema.get_field_index("source_path"), "source_path", [paths]), shard)
    commit_rewrite(out, shard)  # as an extraction from there would have committed it
    result = CliRunner().invoke(app, ["export", str(out), str(tmp_path / "dest"), "--format", "pysaliency"])
    assert result.exit_code == 2 and "Traceback" not in result.output, result.output
    assert f"{gone}: cannot read the source image (FileNotFoundError)" in result.output
    assert len(result.output.strip().splitlines()) == 1, result.output


def readme_pysaliency_block() -> str:
    (block,) = re.findall(r"```py\n(.*?)```", README.read_text(), flags=re.S)
    return block


# The README's block, then every score per image, as pysaliency computes it, for the test to compare.
PER_IMAGE = """
import json as _json
nss = model.NSSs(stimuli, fixations)
per_image = {
    "nss": [float(nss[fixations.n == i].mean()) if (fixations.n == i).any() else None for i in range(len(stimuli))],
    "auc": model.AUC_per_image(stimuli, fixations),
    "auc_judd": model.AUC_per_image(stimuli, fixations, nonfixations="unfixated", thresholds="fixations"),
    "cc": model.CCs(truth_stimuli, truth).tolist(),
    "sim": model.SIMs(truth_stimuli, truth).tolist(),
    "maps": [model.saliency_map(s).tolist() for s in stimuli],
}
print(_json.dumps(per_image, default=lambda v: None if v != v else float(v)))
"""


@pytest.mark.skipif(not PYSALIENCY_PYTHON, reason="SALDATA_PYSALIENCY_PYTHON is not set to a Python with pysaliency")
@pytest.mark.parametrize("fixture", ["salicon_output", "late_eos_output"])
def test_pysaliency_scores_the_export_as_evaluate_does(request, fixture, tmp_path):
    """The README's lines, run by pysaliency on the export (on SALICON, stimuli linked to the sources; on the
    demo, resized PNGs): per image, its NSS, AUC, AUC_Judd (without jitter), CC and SIM are evaluate's."""
    out = tmp_path / "out"
    shutil.copytree(request.getfixturevalue(fixture), out)
    work = tmp_path / "work"
    (work / "runs").mkdir(parents=True)
    export(out, work / "runs" / "demo-pysaliency")
    result = CliRunner().invoke(app, ["evaluate", str(out), "--layers", "-1"])
    assert result.exit_code == 0, result.output
    scores = pq.read_table(out / "eval" / "metrics.parquet").to_pylist()
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}  # nothing of ours in its interpreter
    script = "import warnings\nwarnings.simplefilter('ignore')\n" + readme_pysaliency_block() + PER_IMAGE
    proc = subprocess.run(
        [PYSALIENCY_PYTHON, "-c", script], cwd=work, env=env, capture_output=True, text=True, timeout=300
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    theirs = json.loads(proc.stdout.splitlines()[-1])
    dest = work / "runs" / "demo-pysaliency"
    stems = [p.stem for p in stimuli_paths(dest)]
    with_truth = np.load(dest / "fixations.npz")["with_ground_truth"]
    images = {export_name(r["image_id"], r["source_path"]): r["idx"] for r in saldata.open(out).images.to_pylist()}
    ours = {r["idx"]: r for r in scores if r["unit"] == "description" and r["head"] == -1}
    assert len(ours) == int(with_truth.sum()) >= 3
    truth_index = {i: j for j, i in enumerate(np.flatnonzero(with_truth).tolist())}
    with np.load(dest / "fixations.npz") as f:
        points = {name: f[name] for name in ("x", "y", "n")}
    compared = 0
    for i, stem in enumerate(stems):
        saved = np.load(dest / "maps" / f"{stem}.npy").astype(np.float64)
        np.testing.assert_array_equal(np.array(theirs["maps"][i]), saved)  # its own map
        if i not in truth_index:
            continue
        mine = ours[images[stem]]
        x, y = points["x"][points["n"] == i], points["y"][points["n"] == i]
        truth = np.asarray(saldata.open(out).group["saliency_map"][images[stem]], np.float64)
        same_map = {
            "nss": metrics.nss(saved, x, y),
            "auc": metrics.auc(saved, x, y),
            "auc_judd": metrics.auc_judd(saved, x, y),
            "cc": metrics.cc(saved, truth),
            "sim": metrics.sim(saved, truth),
        }
        for name, value in same_map.items():
            theirs_here = theirs[name][i] if name in ("nss", "auc", "auc_judd") else theirs[name][truth_index[i]]
            # On the file's own (float32) map, pysaliency and saldata's metrics agree to rounding ...
            assert theirs_here == pytest.approx(value, rel=1e-9, abs=1e-12), (stem, name)
            # ... and evaluate, which scores the float64 map, agrees to float32 rounding: a rank-based AUC on
            # these nearly flat maps (std/mean ~0.005) moves by ~1e-5 where that rounding makes or breaks a tie.
            tolerance = 1e-4 if name.startswith("auc") else 1e-5
            assert theirs_here == pytest.approx(mine[name], abs=tolerance), (stem, name)
        compared += 1
    assert compared == len(ours)
