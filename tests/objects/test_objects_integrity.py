"""The object tables are committed like the other catalog tables: a changed, missing or stray file is
caught by saldata verify, and a changed one is a DamageError for every reader."""

from __future__ import annotations

import shutil

import pytest
from typer.testing import CliRunner

import saldata
from saldata.cli.main import app
from saldata.errors import DamageError
from saldata.pipelines.verify import verify_output
from tests.objects.formats import write_coco


@pytest.fixture
def out(demo_output_ray_free, tmp_path):
    out = shutil.copytree(demo_output_ray_free, tmp_path / "out")
    result = CliRunner().invoke(app, ["objects", str(out), "--coco", str(write_coco(tmp_path / "i.json"))])
    assert result.exit_code == 0, result.output
    return out


def test_an_intact_output_with_objects_verifies(out):
    report = verify_output(out)
    assert report.intact and report.objects == [] and report.stray == []


def test_a_changed_objects_file_is_caught_by_verify_and_refused_by_every_reader(out):
    (path,) = (out / "catalog" / "objects").glob("*.parquet")
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF  # same size, other content
    path.write_bytes(bytes(data))
    result = CliRunner().invoke(app, ["verify", str(out)])
    assert result.exit_code == 1, result.output
    assert f"damaged  objects: {path.relative_to(out)}: checksum differs" in result.output
    assert "rerun saldata objects" in result.output
    assert verify_output(out, quick=True).intact  # same size: only the checksum tells
    for read in (lambda o: o.objects(), lambda o: o.sql("SELECT * FROM objects"), lambda o: o.object_mask(0, 101)):
        with pytest.raises(DamageError, match=r"does not match its record .*objects.json.*rerun saldata objects"):
            read(saldata.open(out))
    query = CliRunner().invoke(app, ["catalog", "query", str(out), "SELECT count(*) FROM objects"])
    assert query.exit_code == 1 and "does not match its record" in query.output


def test_a_missing_masks_file_and_a_stray_file_are_named(out):
    (masks,) = (out / "catalog" / "object_masks").glob("*.parquet")
    masks.unlink()
    (out / "catalog" / "objects" / "coco-left-by-a-kill.parquet").write_bytes(b"x")
    report = verify_output(out)
    assert report.objects == [f"{masks.relative_to(out)}: missing"]
    assert report.stray == ["catalog/objects/coco-left-by-a-kill.parquet"]
    with pytest.raises(DamageError, match="is missing although .*objects.json names it"):
        saldata.open(out).object_mask(0, 101)


def test_a_rerun_repairs_a_changed_file_and_sweeps_strays(out, tmp_path):
    (path,) = (out / "catalog" / "objects").glob("*.parquet")
    good = path.read_bytes()
    path.write_bytes(good[:-1] + bytes([good[-1] ^ 1]))
    (out / "catalog" / "objects" / ".coco-x.parquet.123.tmp").write_bytes(b"x")
    result = CliRunner().invoke(app, ["objects", str(out), "--coco", str(tmp_path / "i.json")])
    assert result.exit_code == 0, result.output
    assert path.read_bytes() == good and verify_output(out).intact


def test_saldata_objects_takes_the_output_lock(out, tmp_path):
    from saldata.storage.lock import output_lock

    record = (out / "commits" / "objects.json").read_bytes()
    with output_lock(out, "another-run"):
        result = CliRunner().invoke(app, ["objects", str(out), "--coco", str(tmp_path / "i.json")])
    assert result.exit_code == 2 and "another-run" in result.output, result.output
    assert len(result.output.strip().splitlines()) == 1
    assert (out / "commits" / "objects.json").read_bytes() == record
