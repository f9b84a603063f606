"""Reports printed into a pipe or a file are never cut to a terminal's width, and DuckDB draws no progress bar.

A terminal's width is unknown in a pipe, and rich then assumes 80 columns: an image id became
``COCO_…`` and ``mean ± s.e.`` cells broke over two lines, so ``grep`` and ``awk`` saw halves.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys

import pytest

from saldata.schemas.evaluation import METRIC_NAMES
from tests.helpers import run_cli

MEAN_STDERR = re.compile(r"\d\.\d{3} ± \d\.\d{3}")


@pytest.fixture(scope="module")
def out(tmp_path_factory, demo_output_ray_free):
    """A copy of the readers' demo (evaluate writes OUT/eval)."""
    copy = tmp_path_factory.mktemp("width") / "demo"
    shutil.copytree(demo_output_ray_free, copy)
    return copy


def test_catalog_query_into_a_pipe_keeps_every_value_whole(out):
    proc = run_cli(["catalog", "query", out, "SELECT image_id, source_path FROM images ORDER BY idx"])
    assert proc.returncode == 0, proc.stderr
    rows = [line for line in proc.stdout.splitlines() if "COCO_val2014_000000000001" in line]
    assert len(rows) == 1 and "COCO_val2014_000000000001.jpg" in rows[0], proc.stdout  # id and path on one line


def test_catalog_query_into_a_file_keeps_every_value_whole(out, tmp_path):
    target = tmp_path / "table.txt"
    long = "COCO_val2014_000000000001" * 12  # 300 characters: past the file's old width of 200
    proc = run_cli(
        ["catalog", "query", out, "SELECT repeat(image_id, 12) AS long FROM images ORDER BY idx", "-o", target]
    )
    assert proc.returncode == 0, proc.stderr
    assert any(long in line for line in target.read_text().splitlines()), target.read_text()


def test_evaluate_into_a_pipe_prints_each_row_on_one_line(out):
    proc = run_cli(["evaluate", out])
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    centre = [line for line in lines if line.startswith("│ centre bias")]
    assert len(centre) == 1 and len(MEAN_STDERR.findall(centre[0])) == len(METRIC_NAMES), (
        proc.stdout
    )  # every metric's cell
    assert any("mean ± s.e." in line and str(out) in line for line in lines), proc.stdout  # the title, whole


def test_stats_into_a_pipe_ignores_a_narrow_columns_setting(out):
    """rich takes COLUMNS for a pipe's width; a report into a pipe is not cut to it either."""
    proc = run_cli(["stats", out], env={**os.environ, "COLUMNS": "40"})
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    header = [line for line in lines if "word" in line and "peak cell (row, col)" in line]
    n_words = int(re.search(r"(\d+) distinct words", proc.stdout).group(1))
    body = [line for line in lines if line.startswith("│")]
    assert len(header) == 1 and len(body) == min(20, n_words), proc.stdout  # no row broken over two lines


def run_python(script: str) -> subprocess.CompletedProcess:
    """``script`` in a fresh interpreter with stdout a pipe: DuckDB's default for its bar differs under pytest."""
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    return proc


def test_sql_connections_draw_no_progress_bar(out):
    proc = run_python(
        "from saldata.storage.sql import connect\n"
        f"with connect({str(out)!r}) as con:\n"
        "    print(con.sql(\"SELECT current_setting('enable_progress_bar')\").fetchall())"
    )
    assert proc.stdout.strip() == "[(False,)]"


def test_a_long_query_writes_no_progress_bar_into_stdout(out):
    """DuckDB draws its bar with carriage returns on stdout once a query passes 2 s, pipe or not."""
    rows = 200_000_000
    proc = run_python(
        "import sys, time, saldata; start = time.monotonic(); "
        f"table = saldata.open({str(out)!r}).sql('SELECT count(*) AS n FROM range({rows}) t(i), images "
        "WHERE i % 7 = idx'); print(table.column('n')[0]); print(time.monotonic() - start, file=sys.stderr)"
    )
    assert "\r" not in proc.stdout and proc.stdout.strip() == str(sum(len(range(i, rows, 7)) for i in range(6)))
    elapsed = float(proc.stderr.strip().splitlines()[-1])
    if elapsed < 2.5:  # the setting is checked above, whatever the machine's speed
        pytest.skip(f"the query took {elapsed:.1f} s, too short for DuckDB's bar on this machine")
