"""The store's chunk encoding and the commit protocol, on real files: stage, commit, read back."""

from __future__ import annotations

import json

import numpy as np
import pytest
import zarr

from saldata.schemas.store import ARRAYS, SHARD_ARRAYS, Geometry
from saldata.storage.commits import CommitRecord, commit, digest_staged, read_commit_log, staging_dir
from saldata.storage.zarr_store import create_store, open_store, shard_file_relpaths, stage_rows, token_last

GEOMETRY = Geometry(
    n_images=4, max_tokens=5, hidden_size=8, heads=2, base_grid=(3, 3), highres_grid=(3, 4), image_size=(8, 6)
)


def test_token_axis_moves_last():
    assert token_last(("image", "token", "head", "row", "col")) == (0, 2, 3, 4, 1)
    assert token_last(("image", "token", "hidden")) == (0, 2, 1)
    assert token_last(("image", "token")) is None
    assert token_last(("image", "height", "width")) is None


def _random_block(rng, n=2):
    block = {}
    for spec in SHARD_ARRAYS:
        values = rng.random((n, *spec.shape(GEOMETRY)[1:])) * 100
        block[spec.name] = values.astype(str).astype(object) if spec.dtype == "string" else values.astype(spec.dtype)
    return block


def _stage_and_commit(out, block, rows=None, run_id="r1"):
    staging = staging_dir(out, 1, run_id)
    stage_rows(out, staging, 2, 4, block, rows)
    files = digest_staged(staging, shard_file_relpaths(out, 1))
    record = CommitRecord(1, 2, 4, run_id, "cfg", files, [], pending=str(staging.relative_to(out)))
    commit(out, record)
    return record


def test_staged_rows_commit_and_read_back_with_their_encoding(tmp_path):
    from zarr.codecs import Crc32cCodec, TransposeCodec

    create_store(tmp_path, GEOMETRY, shard_size=2, attributes={})
    block = _random_block(np.random.default_rng(0))
    assert not any(p.is_file() for rel in shard_file_relpaths(tmp_path, 1) for p in [tmp_path / rel])
    _stage_and_commit(tmp_path, block)
    group = open_store(tmp_path)
    for spec in SHARD_ARRAYS:
        np.testing.assert_array_equal(group[spec.name][2:4], block[spec.name])
        inner = group[spec.name].metadata.codecs[0].codecs  # inside the sharding codec
        transposed = [tuple(c.order) for c in inner if isinstance(c, TransposeCodec)]
        assert transposed == ([token_last(spec.dims)] if token_last(spec.dims) else []), spec.name
        assert isinstance(inner[-1], Crc32cCodec), spec.name
    log = read_commit_log(tmp_path)
    assert list(log.committed) == [1] and not log.pending
    assert not (tmp_path / "staging").exists() or not any((tmp_path / "staging").iterdir())


def test_any_zarr_reader_detects_a_flipped_byte(tmp_path):
    create_store(tmp_path, GEOMETRY, shard_size=2, attributes={})
    _stage_and_commit(tmp_path, _random_block(np.random.default_rng(1)))
    rel = next(r for r in shard_file_relpaths(tmp_path, 1) if "attn_highres" in r)
    data = bytearray((tmp_path / rel).read_bytes())
    data[len(data) // 3] ^= 0xFF
    (tmp_path / rel).write_bytes(bytes(data))
    with pytest.raises(Exception, match="checksum"):
        zarr.open_group(tmp_path / "features.zarr", mode="r")["attn_highres"][2:4]


def test_a_retry_rewrites_only_its_rows_and_keeps_the_others(tmp_path):
    create_store(tmp_path, GEOMETRY, shard_size=2, attributes={})
    rng = np.random.default_rng(2)
    first = _random_block(rng)
    _stage_and_commit(tmp_path, first)
    second = _random_block(rng, n=1)
    _stage_and_commit(tmp_path, second, rows=[1], run_id="r2")
    group = open_store(tmp_path)
    for spec in SHARD_ARRAYS:
        np.testing.assert_array_equal(group[spec.name][2], first[spec.name][0])
        np.testing.assert_array_equal(group[spec.name][3], second[spec.name][0])


def test_store_creation_leaves_no_store_until_it_is_whole(tmp_path):
    import subprocess
    import sys

    script = (
        "from saldata.schemas.store import Geometry; from saldata.storage.zarr_store import create_store;"
        f"create_store({str(tmp_path)!r}, Geometry(4, 5, 8, 2, (3, 3), (3, 4), (8, 6)), 2, {{}})"
    )
    env = {**__import__("os").environ, "SALDATA_FAULT": "store-array-created@hidden=kill"}
    proc = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True)
    assert proc.returncode == -9
    assert not (tmp_path / "features.zarr").exists()
    create_store(tmp_path, GEOMETRY, shard_size=2, attributes={})  # the next attempt starts clean
    assert sorted(name for name, _ in open_store(tmp_path).arrays()) == sorted(s.name for s in ARRAYS)


# -- coordinates and the token mask ------------------------------------------------------------


def test_the_layer_array_is_written_with_the_store_and_belongs_to_no_shard(tmp_path):
    from dataclasses import replace

    create_store(tmp_path, replace(GEOMETRY, layers=2), shard_size=2, attributes={"layers": [3, 7]})
    group = zarr.open_group(tmp_path / "features.zarr", mode="r")
    assert group["layer"][:].tolist() == [3, 7] and group["layer"].dtype == np.int32
    assert group["layer"].metadata.dimension_names == ("layer",) and (tmp_path / "features.zarr/layer/c/0").is_file()
    assert not any("/layer/" in rel for shard in (0, 1) for rel in shard_file_relpaths(tmp_path, shard))
    metadata = json.loads((tmp_path / "features.zarr/image_id/zarr.json").read_text())  # what any Zarr v3 reader sees
    assert (metadata["data_type"], metadata["fill_value"]) == ("string", "")
    assert group["token_mask"].dtype == bool and group["token_mask"].fill_value == np.False_
    for spec in ARRAYS:  # the CF attribute that makes xarray read image_id as a coordinate
        coordinates = group[spec.name].attrs.get("coordinates")
        assert coordinates == ("image_id" if spec.per_image and spec.name != "image_id" else None), spec.name
    with pytest.raises(ValueError, match="does not name 3 captured layers"):
        create_store(tmp_path / "other", replace(GEOMETRY, layers=3), shard_size=2, attributes={"layers": [3, 7]})


@pytest.fixture
def verified_copy(demo_output_ray_free, tmp_path):
    import shutil

    from saldata.pipelines.verify import verify_output

    out = tmp_path / "out"
    shutil.copytree(demo_output_ray_free, out)
    assert verify_output(out).intact
    return out


@pytest.mark.parametrize(
    ("damage", "says"),
    [
        ("delete", "features.zarr/layer/c/0 is missing; it must hold [0, 1], the root attribute layers"),
        ("rewrite", "features.zarr/layer/c/0 holds [1, 0]; it must hold [0, 1]"),
        ("flip", "features.zarr/layer/c/0 cannot be read"),
    ],
)
def test_verify_checks_the_layer_array_against_the_root_attributes(verified_copy, damage, says):
    """No commit record names the layer array's file (it belongs to no shard): verify checks what it
    holds, so a missing, rewritten or flipped file stops it and a resume, naming the file."""
    from saldata.errors import StoreError
    from saldata.pipelines.verify import verify_output

    path = verified_copy / "features.zarr" / "layer" / "c" / "0"
    if damage == "delete":
        path.unlink()
    elif damage == "rewrite":
        zarr.open_array(verified_copy / "features.zarr" / "layer", mode="r+")[:] = [1, 0]
    else:
        data = bytearray(path.read_bytes())
        data[len(data) // 2] ^= 0xFF
        path.write_bytes(bytes(data))
    with pytest.raises(StoreError) as raised:
        verify_output(verified_copy)
    assert says in str(raised.value) and "re-extract with --overwrite" in str(raised.value)
    zarr.open_array(verified_copy / "features.zarr" / "layer", mode="r+")[:] = [0, 1]  # what the message says to do
    assert verify_output(verified_copy).intact


@pytest.mark.parametrize(
    ("name", "value", "says"),
    [
        ("image_id", "COCO_val2014_000000000002", "image 0: image_id 'COCO_val2014_000000000001' in the catalog"),
        ("token_mask", np.zeros(12, bool), "image 0: token_mask disagrees with n_tokens"),
    ],
)
def test_verify_checks_image_id_and_token_mask_against_the_catalog(verified_copy, name, value, says):
    """A writer that stored a wrong row and committed what it wrote: sizes and checksums agree, the rows do not."""
    from dataclasses import replace

    from saldata.pipelines.verify import verify_output
    from saldata.storage.commits import digest_file, record_path

    zarr.open_array(verified_copy / "features.zarr" / name, mode="r+")[0] = value
    record = CommitRecord.from_json(record_path(verified_copy, 0).read_text())
    rel = f"features.zarr/{name}/c/0" + ("/0" if name == "token_mask" else "")
    fixed = replace(record, files={**record.files, rel: digest_file(verified_copy / rel)})
    record_path(verified_copy, 0).write_text(fixed.to_json())
    assert any(says in problem for problem in verify_output(verified_copy).damaged[0])
