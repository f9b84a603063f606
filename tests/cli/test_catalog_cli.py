"""`saldata catalog query|show` on a real demo output, checked against pyarrow and duckdb directly."""

from __future__ import annotations

import csv
import hashlib
import io
import json
import os
import shutil
import signal
import subprocess
import sys
import time

import duckdb
import pyarrow.dataset as pads
import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from saldata.cli.main import app
from tests.helpers import run_cli


def invoke(*args):
    return CliRunner().invoke(app, ["catalog", *map(str, args)])


def test_views_hold_the_committed_tables(demo_output):
    result = invoke("query", demo_output, "SELECT count(*) AS n FROM tokens", "--format", "json")
    assert result.exit_code == 0, result.output
    tokens = pads.dataset(demo_output / "catalog" / "tokens", format="parquet").to_table()
    assert json.loads(result.output) == [{"n": tokens.num_rows}]


def test_words_view_joins_back_to_tokens(demo_output):
    sql = """SELECT w.idx, w.word, string_agg(t.token, '' ORDER BY t.position) AS spelled
             FROM words w JOIN tokens t ON t.idx = w.idx AND t.position BETWEEN w.first_position AND w.last_position
             GROUP BY w.idx, w.word_index, w.word"""
    result = invoke("query", demo_output, sql, "--format", "csv")
    assert result.exit_code == 0, result.output
    rows = list(csv.DictReader(io.StringIO(result.output)))
    assert rows, "the demo should produce words"
    assert all(r["word"] in r["spelled"].replace("\ufffd", "") or "\ufffd" in r["spelled"] for r in rows)


def test_parquet_output_needs_a_file_and_is_readable(demo_output, tmp_path):
    assert invoke("query", demo_output, "SELECT * FROM images", "-f", "parquet").exit_code == 2
    target = tmp_path / "images.parquet"
    result = invoke(
        "query", demo_output, "SELECT idx, image_id FROM images ORDER BY idx", "-f", "parquet", "-o", target
    )
    assert result.exit_code == 0, result.output
    assert pq.read_table(target).column("idx").to_pylist() == list(range(6))


def test_table_format_prints_rows(demo_output):
    result = invoke("query", demo_output, "SELECT image_id, status FROM images ORDER BY idx LIMIT 2")
    assert result.exit_code == 0 and "COCO_val2014_000000000001" in result.output and "2 rows" in result.output


def test_bad_sql_gives_duckdb_error_not_a_traceback(demo_output):
    result = invoke("query", demo_output, "SELECT nope FROM images")
    assert result.exit_code == 2
    assert "Binder Error" in result.output and "nope" in result.output and "Traceback" not in result.output


def test_not_an_output_is_a_clear_error(tmp_path):
    result = invoke("query", tmp_path, "SELECT 1")
    assert result.exit_code == 2 and "No catalog" in result.output and str(tmp_path) in result.output


def test_uncommitted_shard_is_invisible(demo_output, tmp_path):
    out = tmp_path / "out"
    shutil.copytree(demo_output, out)
    (out / "commits" / "shard-00001.json").unlink()  # shard 1 loses its commit record
    result = invoke("query", out, "SELECT DISTINCT idx FROM tokens ORDER BY idx", "-f", "json")
    assert [r["idx"] for r in json.loads(result.output)] == [0, 1, 2, 3]
    direct = duckdb.sql(f"SELECT count(DISTINCT idx) FROM read_parquet('{out}/catalog/tokens/*.parquet')").fetchall()
    assert direct[0][0] == 6  # the tokens file is on disk; only the view hides it
    images = invoke("query", out, "SELECT count(*) AS n FROM images", "-f", "json")
    assert json.loads(images.output) == [{"n": 4}]


def test_show_prints_schema_and_counts(demo_output):
    result = invoke("show", demo_output)
    assert result.exit_code == 0, result.output
    assert "images: 6 rows" in result.output and "words:" in result.output
    assert "gt_status" in result.output and "attn_highres" in result.output and "fixation_map" in result.output


@pytest.fixture
def out(demo_output, tmp_path):
    """A private copy of the demo catalog (these tests try to change it)."""
    copy = tmp_path / "out"
    shutil.copytree(demo_output / "catalog", copy / "catalog")
    return copy


def snapshot(folder):
    files = (p for p in folder.rglob("*") if p.is_file())
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest() for p in files}


def shard(out, n, table="images"):
    return out / "catalog" / table / f"shard-{n:05d}.parquet"


@pytest.mark.parametrize("n", [1, 2])  # 1: committed (rewritten), 2: none yet (a forged commit marker)
def test_copy_into_the_catalog_is_refused(out, n):
    before = snapshot(out)
    sql = f"COPY (SELECT image_id, 'FORGED' AS text FROM images) TO '{shard(out, n)}' (FORMAT parquet)"
    result = invoke("query", out, sql)
    assert result.exit_code == 2
    assert result.output.strip().count("\n") == 0 and "only SELECT" in result.output and "COPY" in result.output
    assert snapshot(out) == before


def test_reading_other_files_is_refused(out, tmp_path):
    secret = tmp_path / "secret.txt"
    secret.write_text("TOP-SECRET-VALUE\n")
    tries = {  # the query: what its output would hold were it run
        f"SELECT * FROM read_text('{secret}')": "TOP-SECRET",
        f"SELECT * FROM glob('{tmp_path}/*')": "secret.txt",
        f"ATTACH '{tmp_path}/other.duckdb' AS other": "other.duckdb.wal",
    }
    for sql, leak in tries.items():
        result = invoke("query", out, sql, "-f", "json")
        assert result.exit_code == 2 and result.output.startswith("Error: "), (sql, result.output)
        assert leak not in result.output and not (tmp_path / "other.duckdb").exists(), sql


def _inside_paths(out, tmp_path):
    """Ways of naming a file of OUT (or OUT itself) as --output, with the working directory to use."""
    link = tmp_path / "link"
    link.symlink_to(out / "catalog" / "images")
    hard = tmp_path / "hard.parquet"
    os.link(shard(out, 0), hard)
    return [
        (shard(out, 1), None),  # a committed shard
        (shard(out, 2), None),  # a new commit marker
        ("images/shard-00000.parquet", out / "catalog"),  # relative
        (out / "catalog" / "images" / ".." / "tokens" / "shard-00000.parquet", None),
        (link / "shard-00001.parquet", None),  # through a symlink
        (out, None),
        (hard, None),  # a hard link to a committed shard
    ]


@pytest.mark.parametrize("format", ["parquet", "csv", "json", "table"])
def test_output_inside_out_is_refused(out, tmp_path, monkeypatch, format):
    for target, cwd in _inside_paths(out, tmp_path):
        before = snapshot(out)
        monkeypatch.chdir(cwd or tmp_path)
        result = invoke("query", out, "SELECT image_id, 'FORGED' AS text FROM images", "-f", format, "-o", target)
        assert result.exit_code == 2, (target, result.output)
        assert snapshot(out) == before, target
        assert "Error" in result.output and "write the result elsewhere" in result.output


def _in_a_mount_namespace(source, mountpoint):
    """A ``run_cli`` prefix: the command runs with ``source`` bind-mounted on ``mountpoint`` (its own namespace)."""

    def prefix(cmd):
        return ["unshare", "-m", "sh", "-c", 'mount --bind "$0" "$1" && shift && exec "$@"', source, mountpoint, *cmd]

    return prefix


def _can_bind_mount(tmp_path) -> bool:
    (tmp_path / "probe-a").mkdir()
    (tmp_path / "probe-b").mkdir()
    probe = _in_a_mount_namespace(tmp_path / "probe-a", tmp_path / "probe-b")(["true"])
    return shutil.which("unshare") is not None and subprocess.run(probe, capture_output=True).returncode == 0


@pytest.mark.parametrize("bound", ["out", "images-folder", "shard-file"])
def test_output_onto_a_committed_file_through_a_bind_mount_is_refused(out, tmp_path, bound):
    """A bind mount is another path to the same files, with no symlink to resolve: only identity shows it."""
    if not _can_bind_mount(tmp_path):
        pytest.skip("bind mounts need root (unshare -m)")
    source, mountpoint = {
        "out": (out, tmp_path / "mnt"),
        "images-folder": (out / "catalog" / "images", tmp_path / "mnt"),
        "shard-file": (shard(out, 1), tmp_path / "mnt.parquet"),
    }[bound]
    target = {
        "out": mountpoint / "catalog" / "images" / "shard-00001.parquet",
        "images-folder": mountpoint / "shard-00001.parquet",
        "shard-file": mountpoint,
    }[bound]
    mountpoint.mkdir() if source.is_dir() else mountpoint.touch()
    before = snapshot(out)
    sql = "SELECT image_id, 'FORGED' AS text FROM images"
    proc = run_cli(
        ["catalog", "query", out, sql, "-f", "parquet", "-o", target],
        prefix=_in_a_mount_namespace(source, mountpoint),
        timeout=120,
    )
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.count("\n") == 1 and "write the result elsewhere" in proc.stderr, proc.stderr
    assert snapshot(out) == before


def test_csv_quotes_only_what_needs_it(demo_output, tmp_path):
    sql = """SELECT image_id, 'say "hi", then go' AS note, idx, 0.5 AS half, [1, 2] AS pair, NULL AS nothing
             FROM images ORDER BY idx LIMIT 2"""
    result = invoke("query", demo_output, sql, "-f", "csv")
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[0] == "image_id,note,idx,half,pair,nothing"
    assert lines[1] == 'COCO_val2014_000000000001,"say ""hi"", then go",0,0.5,"[1, 2]",'
    assert [line.split(",")[0] for line in lines[1:]] == ["COCO_val2014_000000000001", "COCO_val2014_000000000002"]
    rows = list(csv.reader(io.StringIO(result.output)))
    assert rows[2] == ["COCO_val2014_000000000002", 'say "hi", then go', "1", "0.5", "[1, 2]", ""]
    target = tmp_path / "rows.csv"
    assert invoke("query", demo_output, sql, "-f", "csv", "-o", target).exit_code == 0
    assert target.read_text() == result.output


@pytest.mark.parametrize(
    "args",
    [["catalog", "show"], ["catalog", "query", "SELECT count(*) AS n FROM words", "-f", "csv"]],
    ids=["show", "query"],
)
def test_commands_leave_stderr_empty(demo_output, args):
    proc = run_cli([*args[:2], demo_output, *args[2:]], timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stderr == ""
    assert proc.stdout


def test_a_refused_query_is_one_line_on_stderr(out):
    proc = run_cli(["catalog", "query", out, f"COPY images TO '{shard(out, 1)}'"], timeout=120)
    assert proc.returncode == 2
    assert proc.stderr.count("\n") == 1 and proc.stderr.startswith("Error: only SELECT"), proc.stderr


def test_exit_still_skips_the_final_collection_without_duckdb():
    code = """
import gc, sys
sys.argv = ["saldata", "datasets"]
from saldata.cli.main import run
try:
    run()
except SystemExit:
    pass
print("duckdb" in sys.modules, gc.get_freeze_count() > 0)
"""
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines()[-1] == "False True"


ENDLESS = "SELECT count(*) FROM range(100000000000000)"  # 1e14 rows: hours of work


def test_a_query_past_its_timeout_is_stopped_with_one_line(out):
    started = time.monotonic()
    proc = run_cli(["catalog", "query", out, ENDLESS, "--timeout", "2"], timeout=120)
    assert proc.returncode == 1, proc.stderr
    assert proc.stderr.count("\n") == 1 and "ran past --timeout 2 s" in proc.stderr, proc.stderr
    assert time.monotonic() - started < 60


def test_ctrl_c_stops_a_query_with_one_line_and_exit_130(out, tmp_path):
    cmd = [sys.executable, "-m", "saldata.cli.main", "catalog", "query", str(out), ENDLESS, "--timeout", "0"]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=tmp_path)
    try:
        time.sleep(6)  # imports, views, then the query runs
        assert proc.poll() is None, proc.communicate()
        proc.send_signal(signal.SIGINT)
        _, stderr = proc.communicate(timeout=30)
    finally:
        proc.kill()
    assert proc.returncode == 130, stderr
    assert stderr.count("\n") == 1 and stderr.startswith("interrupted: the query was stopped"), stderr
    assert not (tmp_path / ".tmp").exists()  # spill files never go to the working folder


def test_several_statements_are_refused(out):
    result = invoke("query", out, "SELECT 1 AS a; SELECT 2 AS b")
    assert result.exit_code == 2 and result.output.count("\n") == 1, result.output
    assert "one statement at a time (got 2)" in result.output


@pytest.mark.parametrize("bad", ["folder", "missing-folder"])
def test_a_bad_output_is_one_line_before_the_query_runs(out, tmp_path, bad):
    target = tmp_path if bad == "folder" else tmp_path / "nowhere" / "rows.csv"
    proc = run_cli(["catalog", "query", out, ENDLESS, "-f", "csv", "-o", target, "--timeout", "0"], timeout=60)
    assert proc.returncode == 2 and proc.stderr.count("\n") == 1, proc.stderr
    assert str(target) in proc.stderr and "Traceback" not in proc.stderr
    assert ("is a folder" if bad == "folder" else "does not exist") in proc.stderr
    assert not (tmp_path / "nowhere").exists()


@pytest.mark.parametrize("format", ["parquet", "csv", "json", "table"])
def test_a_full_disk_under_output_is_one_line(out, tmp_path, format):
    target = tmp_path / "rows.out"
    env = {**os.environ, "SALDATA_FAULT": "write-file@rows.out=enospc"}
    proc = run_cli(["catalog", "query", out, "SELECT * FROM images", "-f", format, "-o", target], env=env, timeout=60)
    assert proc.returncode == 1 and proc.stderr.count("\n") == 1, proc.stderr
    assert proc.stderr.startswith("Error: no space left on ") and f" writing {target} (" in proc.stderr, proc.stderr
    assert "nothing committed was lost" in proc.stderr and "Traceback" not in proc.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]  # no partial file, no aside file
