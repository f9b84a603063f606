"""Outputs written before images.coco_id (store schema 6): a resume is refused, saying what to do, and
saldata objects refuses them too (no coco_id to join by); saldata.open still reads them."""

from __future__ import annotations

import json
import shutil

import pytest
from typer.testing import CliRunner

import saldata
from saldata.cli.main import app
from saldata.errors import ConfigError
from saldata.pipelines.preflight import preflight
from saldata.schemas.catalog import IMAGES
from saldata.storage.store_record import write_store_record
from tests.objects.formats import write_coco
from tests.ray_free_run import readers_demo_config


@pytest.fixture
def schema_6(demo_output_ray_free, tmp_path):
    """The demo output as saldata wrote it at store schema 6: no coco_id column, schema_version 6 recorded."""
    import pyarrow.parquet as pq

    out = shutil.copytree(demo_output_ray_free, tmp_path / "out")
    root = out / "features.zarr" / "zarr.json"
    meta = json.loads(root.read_text())
    meta["attributes"]["schema_version"] = 6
    root.write_text(json.dumps(meta))
    write_store_record(out, out / "features.zarr")
    for path in (out / "catalog" / IMAGES.name).glob("*.parquet"):
        pq.write_table(pq.read_table(path).drop_columns(["coco_id"]), path)
    return out


def test_a_resume_of_an_output_written_before_coco_id_is_refused_saying_what_to_do(schema_6):
    with pytest.raises(ConfigError) as refused:
        preflight(readers_demo_config(schema_6), overwrite=False)
    message = str(refused.value)
    assert "older saldata (store schema_version 6; this one writes 7: images.coco_id" in message
    assert "--overwrite" in message and "\n" not in message


def test_saldata_objects_refuses_an_output_without_coco_id(schema_6, tmp_path):
    result = CliRunner().invoke(app, ["objects", str(schema_6), "--coco", str(write_coco(tmp_path / "i.json"))])
    assert result.exit_code == 2 and "has no images.coco_id" in result.output and "--overwrite" in result.output
    assert len(result.output.strip().splitlines()) == 1
    assert saldata.open(schema_6).objects().num_rows == 0
