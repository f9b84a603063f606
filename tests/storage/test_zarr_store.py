"""The store's chunk encoding: token axis innermost on disk, the array's own axes to readers."""

from __future__ import annotations

import numpy as np

from saldata.schemas.store import ARRAYS, Geometry
from saldata.storage.zarr_store import create_store, open_store, token_last, write_rows

GEOMETRY = Geometry(
    n_images=4, max_tokens=5, hidden_size=8, heads=2, base_grid=(3, 3), highres_grid=(3, 4), image_size=(8, 6)
)


def test_token_axis_moves_last():
    assert token_last(("image", "token", "head", "row", "col")) == (0, 2, 3, 4, 1)
    assert token_last(("image", "token", "hidden")) == (0, 2, 1)
    assert token_last(("image", "token")) is None
    assert token_last(("image", "height", "width")) is None


def test_rows_read_back_as_written(tmp_path):
    from zarr.codecs import TransposeCodec

    create_store(tmp_path, GEOMETRY, shard_size=2, attributes={})
    rng = np.random.default_rng(0)
    block = {spec.name: (rng.random((2, *spec.shape(GEOMETRY)[1:])) * 100).astype(spec.dtype) for spec in ARRAYS}
    write_rows(tmp_path, [2, 3], block)
    group = open_store(tmp_path)
    for spec in ARRAYS:
        np.testing.assert_array_equal(group[spec.name][2:4], block[spec.name])
        inner = group[spec.name].metadata.codecs[0].codecs  # inside the sharding codec
        transposed = [tuple(c.order) for c in inner if isinstance(c, TransposeCodec)]
        assert transposed == ([token_last(spec.dims)] if token_last(spec.dims) else []), spec.name
