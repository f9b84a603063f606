"""`saldata catalog query|show` on a real demo output, checked against pyarrow and duckdb directly."""

from __future__ import annotations

import csv
import io
import json
import shutil

import duckdb
import pyarrow.dataset as pads
import pyarrow.parquet as pq
from typer.testing import CliRunner

from saldata.cli.main import app


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
    (out / "catalog" / "images" / "shard-00001.parquet").unlink()  # shard 1 loses its commit marker
    result = invoke("query", out, "SELECT DISTINCT idx FROM tokens ORDER BY idx", "-f", "json")
    assert [r["idx"] for r in json.loads(result.output)] == [0, 1, 2, 3]
    direct = duckdb.sql(f"SELECT count(DISTINCT idx) FROM read_parquet('{out}/catalog/tokens/*.parquet')").fetchall()
    assert direct[0][0] == 6  # the tokens file is on disk; only the view hides it


def test_show_prints_schema_and_counts(demo_output):
    result = invoke("show", demo_output)
    assert result.exit_code == 0, result.output
    assert "images: 6 rows" in result.output and "words:" in result.output
    assert "gt_status" in result.output and "attn_highres" in result.output and "fixation_map" in result.output
