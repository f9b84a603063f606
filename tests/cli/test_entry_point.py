"""The installed ``saldata`` console script: the command the README tells users to type.

pip puts console scripts beside the interpreter that installed them, so the script is looked for
there, not on PATH: an environment that is not activated must not turn this test into a skip, and
a missing script (the package installed without its entry point) is a failure.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = Path(sys.executable).parent / ("saldata.exe" if sys.platform == "win32" else "saldata")


def console_script() -> Path:
    assert SCRIPT.is_file(), (
        f"no saldata console script beside {sys.executable}; install the package (pip install -e .) "
        "into this interpreter's environment"
    )
    return SCRIPT


@pytest.mark.slow
def test_console_script_runs_the_app():
    script = console_script()
    proc = subprocess.run([str(script), "--help"], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert "extract" in proc.stdout


@pytest.mark.slow
def test_console_script_exits_nonzero_with_the_error(tmp_path):
    script = console_script()
    proc = subprocess.run(
        [
            str(script),
            "extract",
            "--dataset",
            "no-such-dataset",
            "--model",
            "tiny-random",
            "--out",
            str(tmp_path / "o"),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode != 0
    assert "no-such-dataset" in proc.stdout + proc.stderr
