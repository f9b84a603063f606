"""Evaluation results are self-describing and queryable: named reruns beside the default
(``--name``), no silent replacement by other settings, and the tables as ``catalog query`` views."""

from __future__ import annotations

import json
import shutil

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from saldata.cli.main import app
from saldata.report.info import describe
from saldata.schemas.catalog import OBJECTS
from saldata.storage.location import as_out
from saldata.storage.sql import query

pytestmark = pytest.mark.filterwarnings("ignore:.*nanobind.*")


def invoke(*args):
    result = CliRunner().invoke(app, [str(a) for a in args], env={"COLUMNS": "200"})
    return result.exit_code, result.output


def settings_of(path) -> dict:
    return json.loads(pq.read_schema(path).metadata[b"saldata.evaluation"])


@pytest.fixture(scope="module")
def two_runs(demo_output_ray_free, tmp_path_factory):
    """The demo output scored twice: the default run (layer 1) and one named blur8 (layer 1, blur 8 px)."""
    out = tmp_path_factory.mktemp("eval-runs") / "out"
    shutil.copytree(demo_output_ray_free, out)
    code, text = invoke("evaluate", out, "--layers", "1")
    assert code == 0, text
    code, text = invoke("evaluate", out, "--layers", "1", "--blur", "8", "--name", "blur8")
    assert code == 0, text
    assert f"written: {out}/eval/blur8/metrics.parquet" in text
    return out


def test_a_named_run_is_written_beside_the_default(two_runs):
    default, named = two_runs / "eval" / "metrics.parquet", two_runs / "eval" / "blur8" / "metrics.parquet"
    assert settings_of(default)["blur_px"] == 0.0 and settings_of(named)["blur_px"] == 8.0
    assert (two_runs / "eval" / "blur8" / "layers.png").is_file() and (two_runs / "eval" / "layers.png").is_file()
    listed = [(t["run"], t["table"], t["path"], t["settings"]["blur_px"]) for t in describe(two_runs)["evaluation"]]
    assert listed == [
        (None, "metrics", "eval/metrics.parquet", 0.0),
        ("blur8", "metrics", "eval/blur8/metrics.parquet", 8.0),
    ]


@pytest.mark.parametrize("name", [None, "blur8"])
def test_other_settings_never_silently_replace_a_table(two_runs, tmp_path, name):
    out = tmp_path / "out"
    shutil.copytree(two_runs, out)
    named = ["--name", name] if name else []
    target = out / "eval" / (name or "") / "metrics.parquet"
    same = ["--blur", "8"] if name else []  # the run's other settings, as it was made
    before = target.read_bytes()
    code, text = invoke("evaluate", out, "--layers", "0", *same, *named)
    assert code == 2 and len(text.strip().splitlines()) == 1, text
    assert f"{target} was made with other settings (layers [1] there, [0] now)" in text
    assert "pass --name NAME to write the new results beside it, or --overwrite to replace it." in text
    assert target.read_bytes() == before
    code, text = invoke("evaluate", out, "--layers", "1", *same, *named)  # the same settings: replaced
    assert code == 0, text
    code, text = invoke("evaluate", out, "--layers", "0", *same, *named, "--overwrite")
    assert code == 0, text
    assert settings_of(target)["layers"] == [0]


def test_a_table_that_records_no_settings_is_not_replaced_unasked(two_runs, tmp_path):
    out = tmp_path / "out"
    shutil.copytree(two_runs, out)
    target = out / "eval" / "metrics.parquet"
    pq.write_table(pq.read_table(target).replace_schema_metadata(None), target)  # as saldata wrote it before
    code, text = invoke("evaluate", out, "--layers", "1")
    assert code == 2 and f"{target} records no settings" in text and "--overwrite" in text


@pytest.mark.parametrize("name", ["Blur8", "8blur", "blur-8", "a/b", "..", "", "x" * 65])
def test_a_name_that_is_not_a_plain_token_is_one_line(demo_output_ray_free, name):
    before = sorted(demo_output_ray_free.rglob("*"))
    code, text = invoke("evaluate", demo_output_ray_free, "--name", name)
    assert code == 2 and f"--name {name!r} is not a plain name" in text, text
    assert len(text.strip().splitlines()) == 1 and "Traceback" not in text
    assert sorted(demo_output_ray_free.rglob("*")) == before  # nothing written


def test_catalog_query_sees_the_evaluation_tables_as_views(two_runs):
    default, named = two_runs / "eval" / "metrics.parquet", two_runs / "eval" / "blur8" / "metrics.parquet"
    counts = query(
        two_runs,
        "SELECT (SELECT count(*) FROM metrics) AS m, (SELECT count(*) FROM eval.metrics) AS e, "
        "(SELECT count(*) FROM eval_blur8.metrics) AS b",
    ).to_pylist()
    assert counts == [{"m": pq.read_metadata(default).num_rows, "e": pq.read_metadata(default).num_rows,
                       "b": pq.read_metadata(named).num_rows}]  # fmt: skip
    nss = query(two_runs, "SELECT nss FROM eval_blur8.metrics ORDER BY idx, layer, unit, word_index").column("nss")
    want = pq.read_table(named).sort_by([("idx", "ascending"), ("layer", "ascending"), ("unit", "ascending"),
                                         ("word_index", "ascending")]).column("nss")  # fmt: skip
    assert nss.to_pylist() == want.to_pylist()
    code, text = invoke("catalog", "query", two_runs, "SELECT count(*) AS n FROM eval.metrics", "-f", "csv")
    assert code == 0 and text.split() == ["n", str(pq.read_metadata(default).num_rows)], text


def test_every_evaluation_table_present_is_a_view_and_objects_stays_the_catalogs(two_runs, tmp_path):
    out = tmp_path / "out"
    shutil.copytree(two_runs, out)
    pq.write_table(pa.table({"idx": [0, 1, 1], "ratio": [1.0, 2.0, 3.0]}), out / "eval" / "objects.parquet")
    assert query(out, "SELECT sum(ratio) AS s FROM eval.objects").to_pylist() == [{"s": 6.0}]
    tables = query(out, "SELECT schema, name FROM (SHOW ALL TABLES) WHERE name IN ('metrics', 'objects')").to_pylist()
    assert sorted((t["schema"], t["name"]) for t in tables) == [
        ("eval", "metrics"), ("eval", "objects"), ("eval_blur8", "metrics"), ("main", "metrics"), ("main", "objects")
    ]  # fmt: skip
    assert query(out, "SELECT * FROM objects").column_names == OBJECTS.names  # the catalog's, not the evaluation's
    (out / "eval" / "blur8" / "metrics.parquet").write_bytes(b"not parquet")  # damaged: the rest stays queryable
    assert query(out, "SELECT count(*) AS n FROM images").to_pylist() == [{"n": 6}]


def test_evaluation_views_on_an_s3_output(s3_server, two_runs):
    bucket = s3_server.new_bucket()
    s3_server.filesystem().put(str(two_runs), f"{bucket}/out", recursive=True)
    url = as_out(f"s3://{bucket}/out")
    sql = "SELECT layer, unit, count(*) AS n, sum(nss) AS s FROM eval_blur8.metrics GROUP BY ALL ORDER BY ALL"
    assert query(url, sql).to_pylist() == query(two_runs, sql).to_pylist()
    sql = "SELECT count(*) AS n FROM metrics"
    assert query(url, sql).to_pylist() == query(two_runs, sql).to_pylist()


def test_a_minimum_word_count_below_one_is_one_line(demo_output_ray_free):
    code, text = invoke("evaluate", demo_output_ray_free, "--min-word-count", "0")
    assert code == 2 and "--min-word-count must be at least 1, not 0." in text and text.count("\n") == 1, text
