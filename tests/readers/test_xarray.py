"""Every Zarr reader, xarray first: no warning, the ``image_id`` and ``layer`` coordinates, every other
array a data variable, nothing dropped by a reduction, padding never read as data, dask chunks of a
whole store shard; and a store written before those arrays existed still reads the same way."""

from __future__ import annotations

import shutil
import warnings
from dataclasses import replace

import numpy as np
import pyarrow.parquet as pq
import pytest
import xarray as xr
import zarr

import saldata
from saldata.schemas.store import ARRAYS, COORDINATE_ARRAYS, SHARD_ARRAYS
from saldata.storage.commits import CommitRecord

PER_TOKEN_FLOATS = ("hidden", "attn_base", "attn_highres")
NEW_ARRAYS = ("image_id", "token_mask", "layer")  # what schema 4 stores written before them lack


def catalog_ids(out) -> list[str]:
    return pq.read_table(out / "catalog" / "images").sort_by("idx").column("image_id").to_pylist()


def expected_mask(out) -> np.ndarray:
    """True where a row of the per-token arrays holds data: rows < n_tokens, plus row n_tokens when
    generation ended with EOS (the catalog's word)."""
    group = zarr.open_group(out / "features.zarr", mode="r")
    images = pq.read_table(out / "catalog" / "images").sort_by("idx").to_pylist()
    rows = np.arange(group["token_ids"].shape[1])
    return np.stack([rows < r["n_tokens"] + bool(r["ended_with_eos"]) for r in images])


def test_open_zarr_shows_image_id_and_layer_as_coordinates_and_warns_of_nothing(demo_output):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        ds = xr.open_zarr(demo_output / "features.zarr")
    assert sorted(ds.coords) == ["image_id", "layer"]
    assert sorted(ds.data_vars) == sorted(spec.name for spec in ARRAYS if spec.name not in COORDINATE_ARRAYS)
    assert list(ds.indexes) == ["layer"]  # a dimension coordinate; image_id is on the image dimension
    assert ds["image_id"].dims == ("image",) and ds["image_id"].values.tolist() == catalog_ids(demo_output)
    assert ds["layer"].values.tolist() == [0, 1] and ds["layer"].dtype == np.int32
    assert "hidden" in ds.mean(dim="token").data_vars  # a coordinate named hidden would vanish here
    group = zarr.open_group(demo_output / "features.zarr", mode="r")
    picked = ds["attn_base"].sel(layer=0).set_xindex("image_id").sel(image_id="COCO_val2014_000000000002")
    np.testing.assert_array_equal(picked.values, group["attn_base"][1, :, 0])
    assert ds["token_mask"].dtype == bool and ds["token_mask"].values.tolist() == expected_mask(demo_output).tolist()


def test_only_coordinates_share_a_name_with_a_dimension():
    """An array named like a dimension is that dimension's coordinate (1-D, on it): xarray makes it
    an index, and a reduction over another dimension keeps it."""
    dims = {d for spec in ARRAYS for d in spec.dims}
    shared = {spec.name: spec.dims for spec in ARRAYS if spec.name in dims}
    assert shared == {"layer": ("layer",)}
    assert set(COORDINATE_ARRAYS) == {"image_id", "layer"}
    assert {spec.name for spec in SHARD_ARRAYS} == {spec.name for spec in ARRAYS if spec.dims[0] == "image"}


def test_saldata_to_xarray_keeps_hidden(demo_output):
    ds = saldata.open(demo_output).to_xarray()
    assert "hidden" in ds.data_vars and ds["hidden"].dims == ("image", "token", "layer", "hidden_dim")
    assert "hidden" in ds.mean(dim="token").data_vars


def test_to_xarray_selects_by_image_id_and_layer(demo_output):
    output = saldata.open(demo_output)
    ds = output.to_xarray()
    assert list(ds.indexes) == ["image_id", "layer"]
    picked = ds.sel(image_id="COCO_val2014_000000000002", layer=0)
    n = int(picked["n_tokens"])
    assert n > 0
    np.testing.assert_array_equal(picked["attn_highres"].values[:n], output.group["attn_highres"][1, :n, 0])
    both = ds.sel(image_id=["COCO_val2014_000000000005", "COCO_val2014_000000000002"], layer=[1])
    assert both["hidden"].dims == ("image", "token", "layer", "hidden_dim") and both.sizes["layer"] == 1
    np.testing.assert_array_equal(both["token_ids"].values, output.group["token_ids"][[4, 1]])


def test_to_xarray_never_reads_padding_as_data(demo_output_eos):
    """Rows past an image's data are NaN in the maps and hidden states, so a reduction over tokens
    counts only real steps; the EOS step, at row n_tokens, is data."""
    output = saldata.open(demo_output_eos)
    ds = output.to_xarray()
    mask = expected_mask(demo_output_eos)
    assert (mask.sum(1) == output.group["n_tokens"][:] + 1).any(), "the fixture must hold EOS rows"
    assert ds["token_mask"].values.tolist() == mask.tolist()
    for name in PER_TOKEN_FLOATS:
        values = ds[name].values
        assert ds[name].dtype == np.float16, name
        stored = output.group[name][:]
        assert np.isnan(values[~mask]).all(), name
        np.testing.assert_array_equal(values[mask], stored[mask], err_msg=name)
    idx = int(np.flatnonzero(mask.sum(1) < mask.shape[1])[0])  # an image with padding rows
    rows = mask[idx].sum()
    mean = ds["hidden"].isel(image=idx).astype(np.float32).mean("token").values
    np.testing.assert_allclose(mean, output.group["hidden"][idx, :rows].astype(np.float32).mean(0), rtol=1e-6)
    raw = output.to_xarray(mask=False)
    np.testing.assert_array_equal(raw["attn_base"].values, output.group["attn_base"][:])


def test_to_xarray_is_chunked_by_store_shard(demo_output):
    """One dask chunk per Zarr shard along image (4 images, then 2) and whole along every other
    dimension: a few tasks per shard, not one per image and layer."""
    output = saldata.open(demo_output)
    ds = output.to_xarray()
    for name, variable in ds.data_vars.items():
        assert variable.chunks[0] == (4, 2), name
        assert all(len(c) == 1 for c in variable.chunks[1:]), name
        assert len(variable.data.__dask_graph__()) <= 6 * 2, name  # a handful of layers, each one task per shard
    plain = xr.open_zarr(demo_output / "features.zarr")
    assert plain["attn_highres"].chunks[:3] == ((1,) * 6, (12,), (1, 1))  # Zarr's chunks: one image, one layer
    shard = xr.open_zarr(demo_output / "features.zarr", chunks={"image": 4, "layer": -1})  # as the README shows
    assert shard["attn_highres"].chunks[:3] == ((4, 2), (12,), (2,))


# -- a schema-4 store written before image_id, token_mask and layer were stored ---------------------


@pytest.fixture
def older_output(demo_output_ray_free, tmp_path):
    """The demo output without the new arrays, as saldata wrote schema 4 before them: no
    ``coordinates`` attribute either, commit records that name none of their files, and no store record."""
    out = tmp_path / "older"
    shutil.copytree(demo_output_ray_free, out)
    (out / "commits" / "store.json").unlink()
    group = zarr.open_group(out / "features.zarr", mode="r+")
    group.attrs["schema_version"] = 4
    for name in NEW_ARRAYS:
        del group[name]
    for _, array in group.arrays():
        array.attrs.pop("coordinates", None)
    zarr.consolidate_metadata(out / "features.zarr", zarr_format=3)
    for path in (out / "commits").glob("shard-*.json"):
        record = CommitRecord.from_json(path.read_text())
        files = {k: v for k, v in record.files.items() if k.split("/")[1] not in NEW_ARRAYS}
        path.write_text(replace(record, files=files).to_json())
    return out


@pytest.mark.filterwarnings("ignore:Consolidated metadata:UserWarning")
def test_an_older_store_reads_the_same_through_to_xarray(demo_output_ray_free, older_output):
    new, old = (saldata.open(out).to_xarray() for out in (demo_output_ray_free, older_output))
    assert not {"image_id", "token_mask", "layer"} & set(zarr.open_group(older_output / "features.zarr").array_keys())
    assert list(old.indexes) == ["image_id", "layer"] and sorted(old.coords) == sorted(new.coords)
    assert old["image_id"].values.tolist() == new["image_id"].values.tolist() == catalog_ids(older_output)
    assert old["layer"].values.tolist() == [0, 1] and old["layer"].dtype == new["layer"].dtype
    assert old["token_mask"].values.tolist() == new["token_mask"].values.tolist()
    for name in PER_TOKEN_FLOATS:
        np.testing.assert_array_equal(old[name].values, new[name].values)  # NaN where padding, in both
        assert old[name].chunks == new[name].chunks, name
    picked = old.sel(image_id="COCO_val2014_000000000002", layer=0)
    np.testing.assert_array_equal(
        picked["hidden"].values, new.sel(image_id="COCO_val2014_000000000002", layer=0)["hidden"].values
    )
    plain = xr.open_zarr(older_output / "features.zarr")  # plain xarray: what it always gave
    assert not plain.coords and "image_id" not in plain
    output = saldata.open(older_output)
    np.testing.assert_array_equal(output.word_maps(0)[1], saldata.open(demo_output_ray_free).word_maps(0)[1])
    assert output.select(image_ids=["COCO_val2014_000000000002"]).idx.tolist() == [1]
