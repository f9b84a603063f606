"""The demo output, evaluated in a copy, and its report: made once for the report's tests."""

from __future__ import annotations

import shutil
from pathlib import Path

import duckdb
import pytest
from typer.testing import CliRunner

from saldata.cli.main import app


def invoke(*args):
    result = CliRunner().invoke(app, [str(a) for a in args], env={"COLUMNS": "200"})
    return result.exit_code, result.output


def evaluated_copy(source: Path, folder: Path) -> Path:
    """A copy of the demo output, evaluated (every captured layer) in the copy only."""
    out = folder / "out"
    shutil.copytree(source, out)
    shutil.rmtree(out / "eval", ignore_errors=True)  # another test may have evaluated the session's output
    code, text = invoke("evaluate", out)
    assert code == 0, text
    return out


@pytest.fixture(scope="module")
def reported(demo_output_ray_free, tmp_path_factory):
    folder = tmp_path_factory.mktemp("report")
    out = evaluated_copy(demo_output_ray_free, folder)
    code, text = invoke("report", out, "-o", folder / "report")
    assert code == 0, text
    return out, folder / "report", text


def catalog(out: Path, sql: str) -> list[tuple]:
    return duckdb.sql(sql.replace("{out}", str(out))).fetchall()


def metric_rows(out: Path, where: str) -> list[tuple]:
    return catalog(out, f"SELECT idx, layer, nss FROM '{{out}}/eval/metrics.parquet' WHERE {where} ORDER BY idx, layer")
