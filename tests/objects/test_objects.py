"""``saldata objects`` on the readers' demo output: known answers, read back with plain pyarrow and
DuckDB, ``saldata.open(OUT).objects()`` and ``.object_mask()``, reruns, and bad input files."""

from __future__ import annotations

import shutil

import duckdb
import numpy as np
import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

import saldata
from saldata.cli.main import app
from saldata.errors import ConfigError, NotInOutputError
from tests.objects.formats import EXPECTED, REJECTED, visual_genome_files, write_coco

WIDTH, HEIGHT = 640, 480


@pytest.fixture
def out(demo_output_ray_free, tmp_path):
    """A copy of the readers' demo output this test may add objects to."""
    return shutil.copytree(demo_output_ray_free, tmp_path / "out")


def objects_cli(*args):
    result = CliRunner().invoke(app, ["objects", *map(str, args)])
    return result


def test_coco_and_visual_genome_objects_are_placed_with_known_answers(out, tmp_path):
    coco, vg = write_coco(tmp_path / "instances.json"), visual_genome_files(tmp_path / "vg")
    result = objects_cli(out, "--coco", coco, "--visual-genome", vg)
    assert result.exit_code == 0, result.output
    assert "coco: 4 objects placed on 4 images; 3 annotations rejected; 1 annotation of images not in this output" in (
        result.output
    )
    assert "visual_genome: 2 objects placed on 1 image; 1 annotation rejected; 1 annotation" in result.output
    assert "rejected  object 106 (COCO image 5, idx 4): its box (700, 10, 20, 20) lies outside its 640x427 image" in (
        result.output
    )
    output = saldata.open(out)
    table = output.objects()
    rows = {(r["source"], r["object_id"]): r for r in table.to_pylist()}
    assert set(rows) == set(EXPECTED)
    for key, (idx, pixels, box) in EXPECTED.items():
        row = rows[key]
        assert row["idx"] == idx
        assert (row["bbox_x"], row["bbox_y"], row["bbox_w"], row["bbox_h"]) == box, key
        assert row["area_fraction"] == pixels / (WIDTH * HEIGHT), key
        mask = output.object_mask(idx, key[1], source=key[0])
        assert mask.dtype == bool and mask.shape == (HEIGHT, WIDTH) and mask.sum() == pixels, key
    assert rows[("coco", 103)]["iscrowd"] and not rows[("coco", 101)]["iscrowd"]
    assert rows[("coco", 101)]["names"] == ["dog"] and rows[("coco", 101)]["synsets"] == []
    assert rows[("visual_genome", 5001)]["category"] == "dog"
    assert rows[("visual_genome", 5001)]["synsets"] == ["dog.n.01"]
    assert rows[("visual_genome", 101)]["names"] == ["sky", "cloud"]
    # the polygon rectangle fills exactly its pixels: columns 100..299, rows 100..199
    mask = output.object_mask(0, 101, source="coco")
    assert mask[100:200, 100:300].all() and mask.sum() == 200 * 100


def test_the_tables_read_back_with_plain_pyarrow_duckdb_and_the_catalog_views(out, tmp_path):
    assert objects_cli(out, "--coco", write_coco(tmp_path / "i.json")).exit_code == 0
    plain = pq.read_table(out / "catalog" / "objects").sort_by("object_id")
    assert plain.column("object_id").to_pylist() == [101, 102, 103, 104]
    assert plain.column_names[:11] == [
        "idx", "object_id", "source", "category", "names", "synsets", "bbox_x", "bbox_y", "bbox_w", "bbox_h",
        "area_fraction",
    ]  # fmt: skip
    assert duckdb.sql(f"SELECT count(*) FROM read_parquet('{out}/catalog/object_masks/*.parquet')").fetchall() == [(4,)]
    output = saldata.open(out)
    joined = output.sql(
        "SELECT i.image_id, o.category FROM objects o JOIN images i USING (idx) WHERE o.object_id = 104"
    ).to_pylist()
    assert joined == [{"image_id": "COCO_val2014_000000000004", "category": "dog"}]
    query = CliRunner().invoke(app, ["catalog", "query", str(out), "SELECT count(*) AS n FROM objects", "-f", "csv"])
    assert query.exit_code == 0 and query.output.split() == ["n", "4"], query.output


def test_an_output_without_objects_has_empty_tables_with_their_columns(demo_output_ray_free):
    output = saldata.open(demo_output_ray_free)
    assert output.objects().num_rows == 0 and "area_fraction" in output.objects().column_names
    assert output.sql("SELECT count(*) AS n FROM objects").to_pylist() == [{"n": 0}]
    with pytest.raises(NotInOutputError, match=r"no object with object_id 101 on image idx 0"):
        output.object_mask(0, 101)


def test_object_mask_names_an_ambiguous_or_unknown_object(out, tmp_path):
    coco, vg = write_coco(tmp_path / "i.json"), visual_genome_files(tmp_path / "vg")
    assert objects_cli(out, "--coco", coco, "--visual-genome", vg).exit_code == 0
    output = saldata.open(out)
    with pytest.raises(ConfigError, match=r"object_id 101 of image idx 0 is in both coco and visual_genome"):
        output.object_mask(0, 101)
    with pytest.raises(NotInOutputError, match=r"no object with object_id 5001 on image idx 1"):
        output.object_mask(1, 5001)
    with pytest.raises(ConfigError, match="source must be one of"):
        output.object_mask(0, 5001, source="lvis")
    assert output.object_mask(0, 5001).sum() == 128 * 96  # one source has it: no need to say which


def test_successive_runs_replace_their_source_and_keep_the_other_and_a_rerun_changes_nothing(out, tmp_path):
    coco, vg = write_coco(tmp_path / "i.json"), visual_genome_files(tmp_path / "vg")
    assert objects_cli(out, "--coco", coco).exit_code == 0
    assert objects_cli(out, "--visual-genome", vg).exit_code == 0
    both = {p.relative_to(out): p.read_bytes() for p in sorted((out / "catalog").glob("object*/*"))}
    record = (out / "commits" / "objects.json").read_bytes()
    assert len(both) == 4  # one file per table per source
    assert saldata.open(out).objects().num_rows == 6
    assert objects_cli(out, "--coco", coco).exit_code == 0  # the same input again: the same bytes, same names
    assert {p.relative_to(out): p.read_bytes() for p in sorted((out / "catalog").glob("object*/*"))} == both
    assert (out / "commits" / "objects.json").read_bytes() == record
    smaller = json_without(coco, 104)
    assert objects_cli(out, "--coco", smaller).exit_code == 0
    rows = saldata.open(out).objects()
    assert sorted(rows.column("object_id").to_pylist()) == [101, 101, 102, 103, 5001]
    assert len(list((out / "catalog" / "objects").glob("*"))) == 2  # the replaced file is gone


def json_without(path, object_id):
    import json

    data = json.loads(path.read_text())
    data["annotations"] = [a for a in data["annotations"] if a["id"] != object_id]
    target = path.with_name(f"without-{object_id}.json")
    target.write_text(json.dumps(data))
    return target


@pytest.mark.parametrize(
    ("content", "says"),
    [
        (None, "does not exist"),
        ("{not json", "is not JSON"),
        ('{"images": []}', "is not a COCO instances file"),
        (
            '{"images": [], "annotations": [{"id": 1, "image_id": 2, "bbox": [1, 2]}]}',
            "annotation 0 (id 1) has no bbox",
        ),
    ],
)
def test_a_bad_coco_file_is_one_line_naming_it(out, tmp_path, content, says):
    path = tmp_path / "instances.json"
    if content is not None:
        path.write_text(content)
    result = objects_cli(out, "--coco", path)
    assert result.exit_code == 2, result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and str(path) in lines[0] and says in lines[0], result.output
    assert not (out / "commits" / "objects.json").exists()


def test_bad_visual_genome_folders_and_no_source_are_one_line(out, tmp_path):
    no_source = objects_cli(out)
    assert no_source.exit_code == 2 and "--coco FILE" in no_source.output
    missing = objects_cli(out, "--visual-genome", tmp_path / "nowhere")
    assert missing.exit_code == 2 and "is not a folder" in missing.output
    root = visual_genome_files(tmp_path / "vg")
    (root / "objects.json").write_text('{"a": 1}')
    wrong = objects_cli(out, "--visual-genome", root)
    assert wrong.exit_code == 2 and "objects.json is not Visual Genome's objects.json" in wrong.output
    assert len(wrong.output.strip().splitlines()) == 1


def test_masks_agree_with_the_tables_area_fraction(out, tmp_path):
    assert objects_cli(out, "--coco", write_coco(tmp_path / "i.json")).exit_code == 0
    output = saldata.open(out)
    for row in output.objects().to_pylist():
        mask = output.object_mask(row["idx"], row["object_id"])
        assert np.isclose(mask.mean(), row["area_fraction"], rtol=0, atol=1e-12)
