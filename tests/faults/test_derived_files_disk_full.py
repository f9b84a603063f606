"""A full disk while a command writes files derived from an output: one line, exit 1, the output unharmed.

The disk fills at a named fault point (``SALDATA_FAULT=point@file=enospc``, see saldata/faults.py):
the OSError a full disk raises, at the moment the file is written.
"""

from __future__ import annotations

import hashlib
import os
import shutil

import pytest

from tests.helpers import run_cli

IMAGE = "COCO_val2014_000000000003"

# command (OUT and a scratch folder filled in), fault, the file the line must name
CASES = {
    "evaluate-metrics": (["evaluate", "{out}"], "write-file@metrics.parquet", "eval/metrics.parquet"),
    "evaluate-figure": (["evaluate", "{out}"], "write-file@layers.png", "eval/layers.png"),
    "stats": (["stats", "{out}"], "write-file@words.parquet", "stats/words.parquet"),
    "show": (["show", "{out}", IMAGE, "-o", "{scratch}/fig.png"], "write-file@fig.png", "fig.png"),
    "export": (["export", "{out}", "{scratch}/dest", "--format", "pysaliency"], "export-file@1", "dest/"),
}


def committed(out):
    """Every file of the extraction itself (not what evaluate and stats add beside it)."""
    derived = {"eval", "stats"}
    return {
        str(p.relative_to(out)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in out.rglob("*")
        if p.is_file() and p.relative_to(out).parts[0] not in derived
    }


@pytest.mark.parametrize("case", CASES)
def test_a_full_disk_is_one_line_and_loses_nothing_committed(demo_output_ray_free, tmp_path, case):
    out, scratch = tmp_path / "out", tmp_path / "scratch"
    shutil.copytree(demo_output_ray_free, out)
    scratch.mkdir()
    args, fault, names = CASES[case]
    before = committed(out)
    env = {**os.environ, "SALDATA_FAULT": f"{fault}=enospc"}
    proc = run_cli([a.format(out=out, scratch=scratch) for a in args], env=env, timeout=300)
    assert proc.returncode == 1, proc.stderr[-3000:]
    assert "Traceback" not in proc.stderr and proc.stderr.count("\n") == 1, proc.stderr[-3000:]
    line = proc.stderr.strip()
    assert line.startswith("Error: no space left on "), line
    assert names in line and "free); nothing committed was lost" in line, line
    assert committed(out) == before
    assert not [p for p in tmp_path.rglob("*.tmp") if p.name.startswith(".")]  # no file left aside
