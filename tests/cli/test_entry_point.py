"""The installed ``saldata`` console script: the command the README tells users to type."""

from __future__ import annotations

import shutil
import subprocess

import pytest

SCRIPT = shutil.which("saldata")
pytestmark = pytest.mark.skipif(SCRIPT is None, reason="saldata is not installed as a console script")


def test_console_script_runs_the_app():
    proc = subprocess.run([SCRIPT, "--help"], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert "extract" in proc.stdout


def test_console_script_exits_nonzero_with_the_error(tmp_path):
    proc = subprocess.run(
        [SCRIPT, "extract", "--dataset", "no-such-dataset", "--model", "tiny-random", "--out", str(tmp_path / "o")],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode != 0
    assert "no-such-dataset" in proc.stdout + proc.stderr
