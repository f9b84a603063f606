"""Smoke test: the benchmark harness runs end to end on 2 images and both sides agree (no timing asserted).

Agreement is held to what a float16 store can do, not to a bound above the data: attention values
are ~4e-4 here, so a fixed 1e-3 would pass an all-zero store. The store keeps float16, which
rounds to nearest: each value moves by at most 2^-11 of itself (half a unit in the last place;
below 2^-14, subnormal, by at most 2^-25). On top of that the float32 capture agrees with the
float32 eager baseline to 1e-8 (tests/extractors/test_capture.py).
"""

from __future__ import annotations

import importlib.util
import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import zarr

ROOT = Path(__file__).resolve().parents[1]
FP16_REL, FP16_SUBNORMAL_ABS = 2.0**-11, 2.0**-25
CAPTURE_ATTN_ATOL, CAPTURE_HIDDEN_ATOL = 1e-8, 1e-4


def harness():
    spec = importlib.util.spec_from_file_location("bench_extract", ROOT / "benchmarks" / "bench_extract.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def baseline_peaks(baseline: Path) -> tuple[float, float]:
    """Largest attention value and largest |hidden| the eager baseline wrote."""
    attention = [np.load(p) for p in baseline.glob("*.npy") if not p.stem.endswith("_hidden")]
    hidden = [np.load(p) for p in baseline.glob("*_hidden.npy")]
    assert len(attention) == len(hidden) == 2
    return max(float(a.max()) for a in attention), max(float(np.abs(h).max()) for h in hidden)


@pytest.mark.slow
def test_harness_runs_and_both_sides_agree(tmp_path, tiny_model_dir):
    cmd = [sys.executable, str(ROOT / "benchmarks" / "bench_extract.py"), "--model", "tiny-random", "--images", "2",
           "--new-tokens", "4", "--skip-overlap", "--overhead-repeats", "1", "--workdir", str(tmp_path)]  # fmt: skip
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    results = json.loads((tmp_path / "results.json").read_text())
    agreement = results["agreement"]
    assert agreement["images_same_tokens"] == agreement["images"] == 2 and agreement["steps_compared"] == 2 * 4

    attn_peak, hidden_peak = baseline_peaks(tmp_path / "baseline")
    attn_tol = max(FP16_REL * attn_peak, FP16_SUBNORMAL_ABS) + CAPTURE_ATTN_ATOL
    hidden_tol = FP16_REL + CAPTURE_HIDDEN_ATOL / hidden_peak  # hidden_max_rel_diff is relative to the peak
    assert agreement["attn_max_abs_diff"] <= attn_tol, (agreement, attn_peak)
    assert agreement["hidden_max_rel_diff"] <= hidden_tol, (agreement, hidden_peak)
    assert attn_tol < 0.01 * attn_peak  # a store off by 1% of the largest value fails, an all-zero one by far

    # And stores that are wrong do fail it, through the harness's own comparison.
    compare = harness().compare
    wrong = tmp_path / "wrong"
    for name, corrupt in {
        "all zero": np.zeros_like,
        "each token holding the previous step's maps": lambda a: np.roll(a, 1, axis=1),
    }.items():
        shutil.rmtree(wrong, ignore_errors=True)
        shutil.copytree(tmp_path / "saldata", wrong)
        group = zarr.open_group(wrong / "features.zarr", mode="r+")
        for array in ("attn_base", "attn_highres"):
            group[array][:] = corrupt(group[array][:])
        assert compare(tmp_path / "baseline", wrong)["attn_max_abs_diff"] > attn_tol, name

    for side in ("baseline", "saldata"):
        assert results[side]["images_per_s"] > 0 and results[side]["bytes_per_image"] > 0
        assert results[side]["process_peak"] > 0
        assert 0 < results[side]["anonymous_peak"] < results[side]["process_peak"]
    assert {"speed", "peak_memory_model_process", "peak_memory_whole_tree", "bytes_per_image"} <= set(results["ratios"])
    assert 0 < results["saldata"]["actor_busy_fraction"] <= 1
    assert results["capture_overhead"]["plain_s"] > 0


@pytest.mark.slow
def test_layer_cost_benchmark_runs_and_reports_its_ratios(tmp_path, tiny_model_dir):
    """benchmarks/bench_layers.py end to end on one image of tiny-random (2 layers); no timing asserted."""
    work = tmp_path / "layers"
    cmd = [sys.executable, str(ROOT / "benchmarks" / "bench_layers.py"), "--model", "tiny-random"]
    cmd += ["--images", "1", "--new-tokens", "2", "--repeats", "1", "--workdir", str(work)]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr[-3000:]
    results = json.loads((work / "results.json").read_text())
    timing, store = results["model_time"], results["store"]
    assert timing["layers"] == 2 and len(timing["each_layer_s"]) == 2
    assert timing["all_over_one"] > 0 and timing["runs_per_layer_over_all"] > 0
    assert 0 < store["mean"]["attention_bytes"] < store["all"]["attention_bytes"]
    assert "all layers in one pass / one layer" in proc.stdout


@pytest.mark.slow
def test_host_memory_benchmark_runs_and_holds_the_small_budget_to_the_same_arrays(tmp_path, tiny_model_dir):
    """benchmarks/bench_host_memory.py end to end on 2 images of tiny-random; no timing or memory asserted."""
    work = tmp_path / "host-memory"
    cmd = [sys.executable, str(ROOT / "benchmarks" / "bench_host_memory.py"), "--model", "tiny-random"]
    cmd += ["--images", "2", "--new-tokens", "2", "--shard-size", "1", "--workdir", str(work)]
    cmd += ["--json", str(work / "figures.json")]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr[-3000:] + proc.stdout[-3000:]
    figures = json.loads((work / "figures.json").read_text())
    assert figures["low_budget_same_arrays"] is True
    assert figures["maps_per_image_bytes"] == 2 * 2 * (64 + 4 * (24 * 24 + 36 * 48)) * 2  # 2 tokens, 2 layers
    for kind in ("one_layer", "all_layers", "all_layers_low_budget"):
        assert figures[kind]["pss_peak"] > 0 and figures[kind]["cpu_seconds"] > 0
    assert "arrays equal to the unbounded run: True" in proc.stdout
