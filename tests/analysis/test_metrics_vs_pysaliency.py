"""Our metrics against pysaliency's own, run in an interpreter that has pysaliency installed.

pysaliency calls ``np.trapz``, gone in numpy 2.4, so it cannot share this environment. Point
``SALDATA_PYSALIENCY_PYTHON`` at a Python that has it (numpy < 2.4), e.g.::

    python -m venv /tmp/pysal-venv
    /tmp/pysal-venv/bin/pip install "numpy<2.4" pysaliency torch "setuptools<81"
    SALDATA_PYSALIENCY_PYTHON=/tmp/pysal-venv/bin/python pytest tests/analysis tests/exporters

(pysaliency's package imports torch and pkg_resources, hence the last two; a CPU build of torch
does.) Or, on this environment's numpy: ``pip install --target DIR pysaliency`` and its pure
dependencies (``--no-deps``: boltons deprecation dill imageio natsort piexif schema numba llvmlite
"setuptools<81"), a ``DIR/sitecustomize.py`` setting ``np.trapz = np.trapezoid``, and a script
that runs ``PYTHONPATH=DIR python "$@"`` as SALDATA_PYSALIENCY_PYTHON. tests/exporters/test_pysaliency_export.py scores a whole export with it the same way.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import numpy as np
import pytest

from saldata.analysis.metrics import auc, auc_judd, blur, cc, centre_bias, kld, nss, sauc, sim, upsample_bilinear
from saldata.analysis.shuffled import ShuffledNegatives

REFERENCE_PYTHON = os.environ.get("SALDATA_PYSALIENCY_PYTHON")
REFERENCE_SCRIPT = Path(__file__).with_name("pysaliency_reference.py")

pytestmark = pytest.mark.skipif(
    not REFERENCE_PYTHON,
    reason="SALDATA_PYSALIENCY_PYTHON is not set to a Python with pysaliency (see this module's docstring)",
)


def _fixations(rng, height, width, count):
    x, y = rng.uniform(0, width, count), rng.uniform(0, height, count)
    # Repeat a few: duplicates must count once each, in both implementations.
    return np.concatenate([x, x[:3]]), np.concatenate([y, y[:3]])


def _cases() -> list[dict[str, np.ndarray]]:
    """Maps and fixations covering ties, zeros in the truth, constant maps and edge pixels."""
    rng = np.random.default_rng(2024)
    cases = []

    def add(pred, gt, x, y):
        cases.append({"pred": pred, "gt": gt, "x": x, "y": y})

    add(rng.random((20, 30)), np.maximum(0, rng.standard_normal((20, 30))), *_fixations(rng, 20, 30, 25))
    add(np.round(rng.random((13, 17)) * 4) / 4, rng.random((13, 17)), *_fixations(rng, 13, 17, 20))  # ties
    x, y = _fixations(rng, 31, 45, 15)
    fixated = np.zeros((31, 45))
    np.add.at(fixated, (np.floor(y).astype(int), np.floor(x).astype(int)), 1.0)
    add(blur(upsample_bilinear(rng.random((4, 6)), (31, 45)), 2.0), blur(fixated, 3.0), x, y)  # an attention map
    add(centre_bias(27, 40), rng.random((27, 40)), *_fixations(rng, 27, 40, 10))
    add(np.full((8, 11), 0.5), rng.random((8, 11)), *_fixations(rng, 8, 11, 6))  # constant prediction
    edge_x, edge_y = np.array([0.0, 8.999, 8.5, 0.2]), np.array([39.999, 0.0, 39.0, 20.5])
    add(rng.random((40, 9)) ** 3, rng.random((40, 9)), edge_x, edge_y)  # tall image, edge pixels
    x, y = _fixations(rng, 10, 12, 8)
    lowest = rng.random((10, 12))
    lowest[int(y[0]), int(x[0])] = -1.0  # a fixated pixel below every other: AUC-Judd's last threshold
    add(lowest, rng.random((10, 12)), x, y)
    return cases


def _reference(tmp_path: Path, *args: str) -> list:
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}  # nothing of ours in its interpreter
    proc = subprocess.run(
        [REFERENCE_PYTHON, str(REFERENCE_SCRIPT), *args],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=tmp_path,
        env=env,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout)


def test_metrics_match_pysaliency(tmp_path):
    cases = _cases()
    arrays = {f"{key}_{i}": value for i, case in enumerate(cases) for key, value in case.items()}
    np.savez(tmp_path / "cases.npz", **arrays)
    reference = _reference(tmp_path, str(tmp_path / "cases.npz"))

    for case, expected in zip(cases, reference, strict=True):
        pred, gt, x, y = case["pred"], case["gt"], case["x"], case["y"]
        ours = {
            "nss": nss(pred, x, y),
            "auc_uniform_all": auc(pred, x, y),  # pysaliency's AUC
            "auc_judd_method": auc_judd(pred, x, y),  # pysaliency's AUC_Judd(jitter=False)
            "cc": cc(pred, gt),
            "kld": kld(pred, gt),
            "sim": sim(pred, gt),
        }
        for name, value in ours.items():
            assert value == pytest.approx(expected[name], rel=1e-9, abs=1e-12), (name, pred.shape)


def test_sauc_matches_pysaliency_on_an_output_small_enough_to_use_every_other_image(tmp_path):
    """Fewer than SAUC_OTHER_IMAGES images: each image's negatives are every other image's fixations,
    pysaliency's nonfixations="shuffled" exactly; ties (a rounded map), edge points and duplicates included."""
    rng = np.random.default_rng(28)
    height, width, count = 24, 36, 5
    maps, xs, ys = [], [], []
    for i in range(count):
        x, y = _fixations(rng, height, width, 12 + i)
        xs.append(x)
        ys.append(y)
        maps.append(
            blur(upsample_bilinear(rng.random((3, 4)), (height, width)), 1.5) if i % 2 else rng.random((height, width))
        )
    maps[3] = np.round(maps[3] * 4)  # ties among positives and negatives
    xs[4][0], ys[4][0] = width - 1e-9, height - 1e-9  # the last pixel
    arrays = {
        f"{key}_{i}": value for i in range(count) for key, value in (("pred", maps[i]), ("x", xs[i]), ("y", ys[i]))
    }
    np.savez(tmp_path / "images.npz", **arrays)
    reference = _reference(tmp_path, "--shuffled", str(tmp_path / "images.npz"))

    idx = np.concatenate([np.full(len(x), i) for i, x in enumerate(xs)])
    negatives = ShuffledNegatives.of(idx, np.concatenate(xs), np.concatenate(ys), range(count))
    for i in range(count):
        ours = sauc(maps[i], xs[i], ys[i], *negatives.points(i))
        assert ours == pytest.approx(reference[i], rel=1e-12, abs=1e-12), i
