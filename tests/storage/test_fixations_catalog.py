"""The fixations table of a real output: its Parquet files, its DuckDB view, ``saldata.open``, verify,
and outputs written before the table existed (which must still open, with an empty table)."""

from __future__ import annotations

import json
import shutil
from dataclasses import replace

import numpy as np
import pyarrow.parquet as pq
import pytest
import scipy.io
import zarr
from PIL import Image

import saldata
from saldata.datasets import list_images
from saldata.extractors.prompts import resolve_prompt
from saldata.pipelines.model_actor import ImageOutcome
from saldata.pipelines.plan import Shard
from saldata.pipelines.preprocess import load_image
from saldata.pipelines.steps import catalog_rows, ground_truth
from saldata.pipelines.verify import verify_output
from saldata.schemas.catalog import FIXATIONS
from saldata.storage.catalog import merge_with_committed, read_file, shard_file, stage_tables
from saldata.storage.commits import CommitRecord, digest_file, record_path
from saldata.storage.sql import query


@pytest.fixture
def out(demo_output, tmp_path):
    """A private copy of the demo output (these tests change it)."""
    shutil.copytree(demo_output, tmp_path / "out")
    return tmp_path / "out"


def count(out, sql: str) -> int:
    return query(out, sql).column(0).to_pylist()[0]


def test_one_row_per_fixation_in_the_view_and_in_open(demo_output):
    output = saldata.open(demo_output)
    images = output.images.to_pylist()
    assert output.fixations.schema.equals(FIXATIONS.schema, check_metadata=False)
    assert output.fixations.num_rows == sum(r["n_fixations"] for r in images) > 0
    direct = pq.read_table(demo_output / "catalog" / "fixations")  # plain Parquet readers see the same rows
    assert direct.num_rows == output.fixations.num_rows
    for row in images:
        assert count(demo_output, f"SELECT count(*) FROM fixations WHERE idx = {row['idx']}") == row["n_fixations"]


def test_floor_of_the_table_is_the_stored_fixation_map(demo_output):
    group = zarr.open_group(demo_output / "features.zarr", mode="r")
    table = saldata.open(demo_output).fixations.to_pylist()
    height, width = group["fixation_map"].shape[1:]
    for idx in range(group["fixation_map"].shape[0]):
        built = np.zeros((height, width), np.uint8)
        for r in (r for r in table if r["idx"] == idx):
            built[int(np.floor(r["y"])), int(np.floor(r["x"]))] = 1
        np.testing.assert_array_equal(built, group["fixation_map"][idx])


def test_an_image_at_its_original_size_has_the_mat_minus_one(demo_output, demo_root):
    output = saldata.open(demo_output)
    (row,) = output.sql("SELECT * FROM images WHERE orig_width = 640 AND orig_height = 480").to_pylist()
    mat = scipy.io.loadmat(demo_root / "fixations" / "val" / f"{row['image_id']}.mat")
    expected = [  # (subject, x_mat - 1, y_mat - 1), subjects numbered in file order
        (s, float(x) - 1, float(y) - 1)
        for s, subject in enumerate(mat["gaze"].ravel())
        for x, y in np.asarray(subject["fixations"]).reshape(-1, 2)
    ]
    rows = output.sql(f"SELECT * FROM fixations WHERE idx = {row['idx']} ORDER BY subject, fixation_index").to_pylist()
    assert [(r["subject"], r["orig_x"], r["orig_y"]) for r in rows] == expected
    inside = [r for r in rows if 0 <= r["orig_x"] < 640 and 0 <= r["orig_y"] < 480]
    assert len(inside) == len(rows) - row["n_fixations_clipped"]
    assert all((r["x"], r["y"]) == (r["orig_x"], r["orig_y"]) for r in inside)
    assert all(r["duration_ms"] is None for r in rows)  # SALICON's .mat has none


def test_verify_checks_fixations_rows_against_n_fixations(out):
    assert verify_output(out).intact
    # A writer that dropped a row but committed what it wrote: sizes and checksums agree, the rows do not.
    path = shard_file(out, FIXATIONS, 0)
    table = read_file(path, FIXATIONS)
    pq.write_table(table.slice(1), path, compression="zstd")
    record = CommitRecord.from_json(record_path(out, 0).read_text())
    rel = str(path.relative_to(out))
    counts = {**record.counts, "fixations": table.num_rows - 1}
    fixed = replace(record, files={**record.files, rel: digest_file(path)}, counts=counts)
    record_path(out, 0).write_text(fixed.to_json())
    idx = table.column("idx")[0].as_py()
    assert any("fixations rows" in p and f"image {idx}:" in p for p in verify_output(out).damaged[0])


def without_fixations(out) -> None:
    """What a writer of catalog schema 3 left: no fixations files, records that name none."""
    shutil.rmtree(out / "catalog" / "fixations")
    for path in (out / "commits").glob("shard-*.json"):
        record = CommitRecord.from_json(path.read_text())
        files = {k: v for k, v in record.files.items() if not k.startswith("catalog/fixations/")}
        counts = {k: v for k, v in record.counts.items() if k != "fixations"}
        path.write_text(replace(record, files=files, counts=counts).to_json())


def test_an_output_older_than_the_table_opens_with_it_empty(out):
    without_fixations(out)
    output = saldata.open(out)
    assert output.fixations.num_rows == 0 and output.fixations.column_names == FIXATIONS.names
    assert output.images.num_rows == 6
    assert count(out, "SELECT count(*) FROM fixations") == 0
    assert query(out, "DESCRIBE fixations").column("column_name").to_pylist() == FIXATIONS.names
    assert verify_output(out).intact


def test_a_retry_on_an_older_shard_merges_without_its_fixations_file(out):
    without_fixations(out)
    new = {"images": [{"idx": 1}], "tokens": [], "words": [], "fixations": [{"idx": 1, "fixation_index": 0}]}
    merged = merge_with_committed(out, 0, new)
    assert merged["fixations"] == new["fixations"]  # no old rows to keep, and no error
    assert [r["idx"] for r in merged["images"]] == [0, 1, 2, 3]


def test_an_output_without_records_or_the_table_opens(out):
    # store schema 2: no commit records (an images file was the commit), no fixations folder
    without_fixations(out)
    shutil.rmtree(out / "commits")
    root = out / "features.zarr" / "zarr.json"
    meta = json.loads(root.read_text())
    meta.pop("consolidated_metadata", None)
    root.write_text(json.dumps(meta))
    zarr.open_group(out / "features.zarr", mode="r+").attrs["schema_version"] = 2
    output = saldata.open(out)
    assert output.images.num_rows == 6 and output.fixations.num_rows == 0
    assert count(out, "SELECT count(*) FROM fixations") == 0


def test_a_dataset_without_fixations_has_an_empty_queryable_view(tmp_path):
    folder = tmp_path / "images"
    folder.mkdir()
    for i in range(2):
        Image.new("RGB", (64, 48), (i * 90, 40, 40)).save(folder / f"{i}.png")
    sources = list_images(f"folder:{folder}", None, None)
    outcomes = [ImageOutcome(load_image(i, s, (64, 48)), None, 0.0, "no model here") for i, s in enumerate(sources)]
    rows = catalog_rows(
        Shard(0, 0, tuple(sources)), outcomes, [ground_truth(o, (64, 48)) for o in outcomes], resolve_prompt("x", "x")
    )
    out = tmp_path / "out"
    stage_tables(out, 0, rows)  # written in place: a catalog of committed shards without records
    assert rows["fixations"] == [] and (out / "catalog" / "fixations" / "shard-00000.parquet").is_file()
    assert count(out, "SELECT count(*) FROM fixations") == 0
    assert count(out, "SELECT count(*) FROM images") == 2
    assert query(out, "DESCRIBE fixations").column("column_name").to_pylist() == FIXATIONS.names
