"""saldata.open: catalog tables, lazy arrays, selections and word maps, checked against plain zarr."""

from __future__ import annotations

import json

import dask.array as da
import numpy as np
import pyarrow.dataset as pads
import pytest
import zarr

import saldata
from saldata.errors import StoreError


@pytest.fixture(scope="module")
def output(demo_output):
    return saldata.open(demo_output)


def test_tables_and_attributes(output, demo_output):
    assert output.images.num_rows == 6 and output.attrs["model"] == "tiny-random"
    direct = pads.dataset(demo_output / "catalog" / "words", format="parquet").to_table()
    assert output.words.num_rows == direct.num_rows > 0
    assert output.images.to_pandas()["status"].eq("done").all()


def test_arrays_are_lazy_and_chunked_by_zarr_shard(output, demo_output):
    group = zarr.open_group(demo_output / "features.zarr", mode="r")
    arrays = output.arrays
    assert isinstance(arrays["attn_highres"], da.Array)
    assert arrays["attn_highres"].chunks[0] == (4, 2)  # shard size 4, six images
    assert arrays["attn_highres"].chunks[1:] == tuple((n,) for n in group["attn_highres"].shape[1:])
    np.testing.assert_array_equal(arrays["hidden"][3].compute(), group["hidden"][3])


def test_select_by_split_id_and_sql(output, demo_output):
    group = zarr.open_group(demo_output / "features.zarr", mode="r")
    picked = output.select(image_ids=["COCO_val2014_000000000005", "COCO_val2014_000000000002"])
    assert picked.idx.tolist() == [1, 4]
    np.testing.assert_array_equal(picked.arrays["token_ids"].compute(), group["token_ids"][[1, 4]])
    assert len(output.select(split="val")) == 6  # split="train", which it lacks, raises (below)
    assert output.select(where="orig_width > 700").idx.tolist() == [1, 3]
    with pytest.raises(StoreError, match="nope"):
        output.select(image_ids=["nope"])


@pytest.mark.parametrize("reduce", ["sum", "mean"])
def test_word_maps_reduce_their_tokens_maps(output, demo_output, reduce):
    group = zarr.open_group(demo_output / "features.zarr", mode="r")
    idx = int(output.words.column("idx")[0].as_py())
    words, maps = output.word_maps(idx, reduce=reduce)
    assert len(words) == maps.shape[0] and maps.shape[1:] == (36, 48)
    assert output.attrs["layers"] == [0, 1]
    for layer, position in ((None, 1), (1, 1), (-1, 1), (0, 0), (-2, 0)):  # default: the last captured
        words, maps = output.word_maps(idx, reduce=reduce, layer=layer)
        tokens = group["attn_highres"][idx, :, position].astype(np.float32).mean(axis=1)  # head mean
        for w, m in zip(words, maps):
            span = tokens[w["first_position"] : w["last_position"] + 1]
            np.testing.assert_allclose(m, span.sum(0) if reduce == "sum" else span.mean(0), rtol=1e-6)
    layer0, layer1 = (output.word_maps(idx, layer=layer)[1] for layer in (0, 1))
    assert not np.allclose(layer0, layer1, rtol=1e-3, atol=0)  # the two layers differ, so a wrong pick is seen


def test_to_xarray_names_dimensions(output):
    ds = output.to_xarray()
    assert ds["attn_base"].dims == ("image", "token", "layer", "head", "base_row", "base_col")
    assert ds["layer"].values.tolist() == [0, 1]
    np.testing.assert_array_equal(ds["attn_base"].sel(layer=0).isel(image=2).values, output.group["attn_base"][2, :, 0])
    assert ds["saliency_map"].dims == ("image", "height", "width")
    assert ds.image_id.values[1] == "COCO_val2014_000000000002"
    assert int(ds["n_tokens"].sel(image=ds.image_id == "COCO_val2014_000000000002").compute()[0]) > 0


def test_open_a_missing_output_names_it(tmp_path):
    with pytest.raises(StoreError, match=str(tmp_path)):
        saldata.open(tmp_path)


def test_an_older_store_without_ground_truth_is_named(demo_output, tmp_path):
    import shutil

    from saldata.readers.torch_dataset import SaliencyDataset

    out = tmp_path / "old"
    shutil.copytree(demo_output, out)
    shutil.rmtree(out / "features.zarr" / "saliency_map")
    (out / "commits" / "store.json").unlink()  # nor a store record
    root = out / "features.zarr" / "zarr.json"  # stores of that age had no consolidated metadata
    root.write_text(json.dumps({k: v for k, v in json.loads(root.read_text()).items() if k != "consolidated_metadata"}))
    group = zarr.open_group(out / "features.zarr", mode="r+")
    group.attrs["schema_version"] = 1
    with pytest.raises(StoreError, match="schema_version 1.*saliency_map"):
        SaliencyDataset(out)
    group.attrs["schema_version"] = 99
    with pytest.raises(StoreError, match="upgrade saldata"):
        saldata.open(out)


def test_select_a_split_the_output_lacks_names_the_splits_present(output):
    from saldata.errors import ConfigError

    for split in ("train", "vall"):
        with pytest.raises(ConfigError, match=f"no image of split '{split}'.*it has: val"):
            output.select(split=split)
    assert len(output.select(split="val", where="orig_width > 9999")) == 0  # a split present: no error


READ_BY_IMAGE = {
    "token_maps": lambda o, **key: o.token_maps(**key, layer=0),
    "word_maps": lambda o, **key: o.word_maps(**key)[1],
    "hidden": lambda o, **key: o.hidden(**key),
}


@pytest.mark.parametrize("reader", READ_BY_IMAGE)
def test_maps_and_hidden_take_an_image_id(output, reader):
    from saldata.errors import ConfigError

    read = READ_BY_IMAGE[reader]
    by_id = read(output, image_id="COCO_val2014_000000000003")
    np.testing.assert_array_equal(by_id, read(output, idx=2))
    assert not np.array_equal(by_id, read(output, idx=3))
    with pytest.raises(StoreError, match="no committed image with id nope"):
        read(output, image_id="nope")
    with pytest.raises(ConfigError, match="idx or its image_id"):
        read(output, idx=2, image_id="COCO_val2014_000000000003")
    with pytest.raises(ConfigError, match="idx or its image_id"):
        read(output)


@pytest.mark.parametrize("reader", READ_BY_IMAGE)
@pytest.mark.parametrize("idx", [6, -1, 1000])
def test_an_index_out_of_range_is_one_line(output, reader, idx):
    from saldata.errors import ConfigError

    with pytest.raises(IndexError) as caught:  # what zarr raised before, still caught by `except IndexError`
        READ_BY_IMAGE[reader](output, idx=idx)
    assert isinstance(caught.value, ConfigError)
    message = str(caught.value)
    assert len(message.splitlines()) == 1 and f"idx {idx} is out of range" in message and "0..5" in message
