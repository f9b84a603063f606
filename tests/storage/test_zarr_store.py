"""The store's chunk encoding and the commit protocol, on real files: stage, commit, read back."""

from __future__ import annotations

import numpy as np
import pytest
import zarr

from saldata.schemas.store import ARRAYS, Geometry
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
    return {spec.name: (rng.random((n, *spec.shape(GEOMETRY)[1:])) * 100).astype(spec.dtype) for spec in ARRAYS}


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
    for spec in ARRAYS:
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
    for spec in ARRAYS:
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
