"""A model that cannot load is reported as such, in one line, at once; Ray's full report goes to the journal."""

from __future__ import annotations

import json
import shutil

import pytest

from tests.helpers import run_cli

pytestmark = pytest.mark.slow


def test_a_model_that_cannot_load_stops_the_run_with_its_real_cause(tmp_path, tiny_model_dir, demo_root):
    model = tmp_path / "broken-model"
    shutil.copytree(tiny_model_dir, model)
    weights = model / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:1000])  # a download cut short
    out = tmp_path / "out"
    args = ["extract", "--dataset", "demo", "--model", str(model), "--limit", "2", "--max-new-tokens", "2"]
    proc = run_cli([*args, "--out", str(out)], timeout=240)  # it used to wait for the actor forever
    assert proc.returncode == 1, proc.stderr[-2000:]
    errors = [line for line in proc.stderr.splitlines() if line.startswith("Error:")]
    assert len(errors) == 1, proc.stderr
    assert f"The model could not be loaded from {model}" in errors[0]
    assert "SafetensorError" in errors[0] and "rerun the same command" in errors[0]
    assert "Traceback" not in proc.stderr and "write" not in errors[0].split(":")[1]
    journal = next((out / "journal").glob("*.jsonl"))
    events = [json.loads(line) for line in journal.read_text().splitlines()]
    failure = [e for e in events if e["event"] == "error"]
    report = failure[0]["report"] if failure else ""
    assert "ExtractorActor.__init__" in report and 'File "' in report and "SafetensorError" in report
    assert str(journal) in errors[0]
