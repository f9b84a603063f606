"""Each kind of process imports what its step needs and no more: imports are its memory floor."""

from __future__ import annotations

import subprocess
import sys

import pytest


def imported(module: str, candidates: tuple[str, ...]) -> set[str]:
    code = f"import sys, {module}; print(' '.join(m for m in {candidates!r} if m in sys.modules))"
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return set(proc.stdout.split())


@pytest.mark.parametrize(
    ("module", "kept_out"),
    [
        ("saldata.pipelines.model_actor", ("pyarrow", "zarr", "duckdb", "scipy")),  # the model actor
        ("saldata.pipelines.steps", ("torch", "transformers")),  # CPU decode and write workers
    ],
)
def test_process_module_keeps_heavy_imports_out(module, kept_out):
    assert imported(module, kept_out) == set()
