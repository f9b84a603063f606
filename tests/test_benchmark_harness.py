"""Smoke test: the benchmark harness runs end to end on 2 images and both sides agree (no timing asserted)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_harness_runs_and_both_sides_agree(tmp_path, tiny_model_dir):
    cmd = [sys.executable, str(ROOT / "benchmarks" / "bench_extract.py"), "--model", "tiny-random", "--images", "2",
           "--new-tokens", "4", "--skip-overlap", "--overhead-repeats", "1", "--workdir", str(tmp_path)]  # fmt: skip
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    results = json.loads((tmp_path / "results.json").read_text())
    agreement = results["agreement"]
    assert agreement["images_same_tokens"] == agreement["images"] == 2 and agreement["steps_compared"] == 2 * 4
    assert agreement["attn_max_abs_diff"] < 1e-3 and agreement["hidden_max_rel_diff"] < 1e-2
    for side in ("baseline", "saldata"):
        assert results[side]["images_per_s"] > 0 and results[side]["bytes_per_image"] > 0
        assert results[side]["process_peak"] > 0
        assert 0 < results[side]["anonymous_peak"] < results[side]["process_peak"]
    assert {"speed", "peak_memory_model_process", "peak_memory_whole_tree", "bytes_per_image"} <= set(results["ratios"])
    assert 0 < results["saldata"]["actor_busy_fraction"] <= 1
    assert results["capture_overhead"]["plain_s"] > 0
