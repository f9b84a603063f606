"""``describe`` (what ``saldata info`` prints) on the demo output: every value read back from the
store's attributes, the catalog and the files by other means (plain zarr, duckdb, os.walk)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import zarr

import saldata
from saldata.report.info import describe, hub_revision
from saldata.schemas.catalog import CATALOG_SCHEMA_VERSION
from saldata.schemas.store import STORE_SCHEMA_VERSION
from tests.helpers import commit_rewrite

pytestmark = pytest.mark.filterwarnings("ignore:.*nanobind.*")


def walked_bytes(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())


def test_describe_reads_what_the_output_holds(demo_output):
    info = describe(demo_output)
    assert json.loads(json.dumps(info)) == info  # plain values: --format json is this dict
    attrs = zarr.open_group(demo_output / "features.zarr", mode="r").attrs
    assert info["model"] == {"name": "tiny-random", "path": attrs["model_path"], "revision": None}
    ((prompt_text,),) = duckdb.sql(
        f"SELECT DISTINCT prompt_text FROM read_parquet('{demo_output}/catalog/images/*.parquet')"
    ).fetchall()
    assert info["prompt"] == {"id": "describe", "text": prompt_text}
    assert info["datasets"] == [{"dataset": "demo", "split": "val", "images": 6}]
    assert info["image_size"] == [640, 480] and info["layers"] == [0, 1] and info["n_decoder_layers"] == 2
    heads = zarr.open_group(demo_output / "features.zarr", mode="r")["attn_base"].shape[3]
    assert info["heads"] == {"captured": "all", "stored": heads} and heads > 1
    assert info["grids"] == {"base": [24, 24], "highres": [36, 48]}
    assert (info["dtype"], info["max_new_tokens"], info["shard_size"]) == ("float32", 12, 4)
    assert info["schema"] == {"store": STORE_SCHEMA_VERSION, "catalog": CATALOG_SCHEMA_VERSION}
    written = {"saldata": attrs["saldata_version"], "transformers": attrs["transformers_version"]}
    import transformers

    assert info["versions"] == {
        "written": written,
        "running": {"saldata": saldata.__version__, "transformers": transformers.__version__},
    }
    assert info["images"] == {"total": 6, "done": 6, "failed": 0, "pending": 0, "failed_by_reason": []}
    assert info["shards"] == {"committed": 2, "total": 2}
    assert info["bytes"] == {
        "store": walked_bytes(demo_output / "features.zarr"),
        "catalog": walked_bytes(demo_output / "catalog"),
        "total": walked_bytes(demo_output),
    }
    assert info["evaluation"] == [] and info["objects"] == {"added": False, "rows": None, "sources": {}}


def test_pending_and_failed_images_by_reason(demo_output_ray_free, tmp_path):
    out = tmp_path / "out"
    shutil.copytree(demo_output_ray_free, out)
    shutil.rmtree(out / "eval", ignore_errors=True)  # another test may have evaluated the session's output
    (out / "commits" / "shard-00001.json").unlink()  # images 4, 5 as a killed run leaves them
    images = out / "catalog" / "images" / "shard-00000.parquet"
    rows = pq.read_table(images).to_pylist()
    for row in rows[1:3]:  # two images failing for one reason, each naming its own file
        row.update(status="failed", error=f"{row['source_path']}: cannot identify image file", text=None)
    pq.write_table(pa.Table.from_pylist(rows, schema=pq.read_schema(images)), images)
    commit_rewrite(out, images)
    info = describe(out)
    assert info["images"] == {
        "total": 6,
        "done": 2,
        "failed": 2,
        "pending": 2,
        "failed_by_reason": [{"reason": "cannot identify image file", "count": 2}],
    }
    assert info["shards"] == {"committed": 1, "total": 2}


def test_the_catalog_version_is_what_its_files_say(demo_output_ray_free, tmp_path):
    out = tmp_path / "out"
    shutil.copytree(demo_output_ray_free, out)
    shutil.rmtree(out / "eval", ignore_errors=True)  # another test may have evaluated the session's output
    images = out / "catalog" / "images" / "shard-00000.parquet"
    table = pq.read_table(images)
    older = table.replace_schema_metadata({**table.schema.metadata, b"saldata.schema_version": b"4"})
    pq.write_table(older, images)
    commit_rewrite(out, images)
    assert describe(out)["schema"] == {"store": STORE_SCHEMA_VERSION, "catalog": 4}


def test_evaluation_tables_and_their_settings_are_listed(demo_output_ray_free, tmp_path):
    from typer.testing import CliRunner

    from saldata.cli.main import app

    out = tmp_path / "out"
    shutil.copytree(demo_output_ray_free, out)
    shutil.rmtree(out / "eval", ignore_errors=True)  # another test may have evaluated the session's output
    result = CliRunner().invoke(app, ["evaluate", str(out), "--layers", "1", "--blur", "4"])
    assert result.exit_code == 0, result.output
    metadata = pq.read_metadata(out / "eval" / "metrics.parquet")
    (table,) = describe(out)["evaluation"]
    assert table == {
        "run": None,
        "table": "metrics",
        "path": "eval/metrics.parquet",
        "rows": metadata.num_rows,
        "version": metadata.metadata[b"saldata.metrics_version"].decode(),
        "settings": json.loads(metadata.metadata[b"saldata.evaluation"]),
    }
    assert table["settings"]["blur_px"] == 4.0 and table["settings"]["layers"] == [1]


def test_objects_added_by_saldata_objects_are_counted_by_source(demo_output_ray_free, tmp_path):
    from typer.testing import CliRunner

    from saldata.cli.main import app
    from tests.objects.formats import write_coco

    out = tmp_path / "out"
    shutil.copytree(demo_output_ray_free, out)
    shutil.rmtree(out / "eval", ignore_errors=True)  # another test may have evaluated the session's output
    coco = write_coco(tmp_path / "instances.json")
    result = CliRunner().invoke(app, ["objects", str(out), "--coco", str(coco)])
    assert result.exit_code == 0, result.output
    n_objects = pq.read_table(out / "catalog" / "objects").num_rows
    assert describe(out)["objects"] == {
        "added": True,
        "rows": n_objects,
        "sources": {"coco": {"inputs": [str(coco)], "placed": n_objects, "n_rejected": 3, "not_in_output": 1}},
    }
    result = CliRunner().invoke(app, ["info", str(out)])
    assert f"  objects:    {n_objects} objects\n" in result.output
    assert f"    coco: {n_objects} placed, 3 rejected, 1 for images not in this output; from {coco}" in result.output


def test_a_hub_snapshot_path_names_its_revision():
    commit = "a" * 8 + "0123456789abcdef0123456789abcdef"
    path = f"/home/u/.cache/huggingface/hub/models--llava-hf--llama3-llava-next-8b-hf/snapshots/{commit}"
    assert hub_revision(path) == commit
    assert hub_revision("/models/my-llava") is None and hub_revision(None) is None


def test_describe_works_on_an_s3_url(s3_server, demo_output_ray_free):
    bucket = s3_server.new_bucket()
    s3_server.filesystem().put(str(demo_output_ray_free), f"{bucket}/demo", recursive=True)
    url = f"s3://{bucket}/demo"
    remote, local = describe(url), describe(demo_output_ray_free)
    assert remote["out"] == url
    remote.pop("out"), local.pop("out")
    assert remote == local  # the bytes too: the same files


def test_an_empty_folder_is_not_an_output(tmp_path):
    with pytest.raises(saldata.errors.NotAnOutputError, match="is .* a saldata extraction output"):
        describe(tmp_path)


def test_a_damaged_evaluation_table_is_named_and_never_replaced_unasked(demo_output_ray_free, tmp_path):
    from typer.testing import CliRunner

    from saldata.cli.main import app

    out = tmp_path / "out"
    shutil.copytree(demo_output_ray_free, out)
    shutil.rmtree(out / "eval", ignore_errors=True)  # another test may have evaluated the session's output
    (out / "eval").mkdir()
    (out / "eval" / "metrics.parquet").write_bytes(b"not parquet")
    (table,) = describe(out)["evaluation"]
    assert table["rows"] is None and table["error"].startswith(f"{out}/eval/metrics.parquet cannot be read (")
    result = CliRunner().invoke(app, ["evaluate", str(out)])
    assert result.exit_code == 2 and result.output.count("\n") == 1, result.output
    assert f"{out}/eval/metrics.parquet cannot be read (" in result.output and "--overwrite" in result.output
    assert (out / "eval" / "metrics.parquet").read_bytes() == b"not parquet"
    result = CliRunner().invoke(app, ["info", str(out)])
    assert result.exit_code == 0 and f"    eval/metrics.parquet: {table['error']}" in result.output, result.output
