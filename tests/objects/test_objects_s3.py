"""``saldata objects`` on an s3:// output (a local S3 server, moto): the same tables, byte for byte, as on
a disk; verify, the readers' checks and a rerun hold there too."""

from __future__ import annotations

import shutil

import pytest

import saldata
from saldata.errors import DamageError
from saldata.pipelines.verify import verify_output
from tests.helpers import run_cli
from tests.objects.formats import visual_genome_files, write_coco

pytestmark = pytest.mark.slow


def test_objects_on_s3_equal_the_local_disk_and_are_checked(s3_server, s3_out, demo_output_ray_free, tmp_path):
    fs = s3_server.filesystem()
    key = s3_out.removeprefix("s3://")
    fs.put(f"{demo_output_ray_free}/", key, recursive=True)
    local = shutil.copytree(demo_output_ray_free, tmp_path / "local")
    coco, vg = write_coco(tmp_path / "i.json"), visual_genome_files(tmp_path / "vg")
    for out in (s3_out, local):
        proc = run_cli(["objects", out, "--coco", coco, "--visual-genome", vg])
        assert proc.returncode == 0 and proc.stderr == "", proc.stderr
    names = sorted(p.relative_to(local).as_posix() for p in (local / "catalog").glob("object*/*"))
    assert sorted(k.removeprefix(f"{key}/") for k in fs.find(f"{key}/catalog") if "/object" in k) == names
    for rel in [*names, "commits/objects.json"]:
        assert fs.cat_file(f"{key}/{rel}") == (local / rel).read_bytes(), rel
    remote = saldata.open(s3_out)
    assert remote.objects().equals(saldata.open(local).objects())
    assert remote.object_mask(0, 5001).sum() == 128 * 96
    assert remote.sql("SELECT count(*) AS n FROM objects").to_pylist() == [{"n": 6}]
    assert verify_output(remote.path).intact
    assert not fs.exists(f"{key}/.saldata.lock")  # released
    rerun = run_cli(["objects", s3_out, "--coco", coco])  # the same input: nothing changes
    assert rerun.returncode == 0, rerun.stderr
    assert fs.cat_file(f"{key}/commits/objects.json") == (local / "commits/objects.json").read_bytes()
    objects_file = next(n for n in names if n.startswith("catalog/objects/coco-"))
    data = bytearray(fs.cat_file(f"{key}/{objects_file}"))
    data[len(data) // 2] ^= 0xFF
    fs.pipe_file(f"{key}/{objects_file}", bytes(data))
    with pytest.raises(DamageError, match="does not match its record"):
        saldata.open(s3_out).objects()
    report = verify_output(saldata.open(s3_out).path)
    assert report.objects == [f"{objects_file}: checksum differs from the committed one (the file was changed)"]
    verify = run_cli(["verify", s3_out])
    assert verify.returncode == 1 and "damaged  objects" in verify.stdout
