"""The layer axis in the readers: a schema-4 store with two layers, and a schema-3 store (one layer,
no layer axis) rebuilt from it with plain zarr, which every reader still reads and resume refuses."""

from __future__ import annotations

import shutil

import numpy as np
import pytest
import zarr

import saldata
from saldata.errors import ConfigError
from saldata.readers.torch_dataset import SaliencyDataset
from saldata.schemas.store import ARRAYS

PER_TOKEN = ("hidden", "attn_base", "attn_highres")


@pytest.fixture
def schema3_output(demo_output_ray_free, tmp_path):
    """The demo output as schema 3 wrote it: layer 1 only, no layer axis, attribute ``layer``; no
    image_id, token_mask or layer arrays, no ``coordinates`` attribute."""
    out = tmp_path / "v3"
    shutil.copytree(demo_output_ray_free, out)
    group = zarr.open_group(out / "features.zarr", mode="r+")
    for name in ("image_id", "token_mask", "layer"):
        del group[name]
    for _, array in group.arrays():
        array.attrs.pop("coordinates", None)
    for spec in ARRAYS:
        if spec.name not in PER_TOKEN:
            continue
        values = group[spec.name][:, :, 1]  # decoder layer 1, the last of tiny-random's two
        old = group[spec.name]
        dims = tuple(d for d in old.metadata.dimension_names if d != "layer")
        del group[spec.name]
        group.create_array(spec.name, data=values, chunks=(1, *values.shape[1:]), dimension_names=dims)
    attrs = dict(group.attrs)
    del attrs["layers"], attrs["n_decoder_layers"]
    group.attrs.clear()
    group.attrs.update({**attrs, "layer": 1, "schema_version": 3})
    zarr.consolidate_metadata(out / "features.zarr", zarr_format=3)
    (out / "commits" / "store.json").unlink()  # schema 3 kept no store record
    return out


@pytest.mark.filterwarnings("ignore:Consolidated metadata:UserWarning")
def test_a_schema3_store_reads_like_layer_1_of_the_schema4_store(demo_output_ray_free, schema3_output):
    new, old = saldata.open(demo_output_ray_free), saldata.open(schema3_output)
    assert old.layers.layers == (1,) and not old.layers.has_axis
    for idx in (0, 3):
        np.testing.assert_array_equal(old.word_maps(idx)[1], new.word_maps(idx, layer=1)[1])
        np.testing.assert_array_equal(old.hidden(idx), new.hidden(idx, layer=-1))
        np.testing.assert_array_equal(old.token_maps(idx, "base", "all", layer=1), new.token_maps(idx, "base", "all"))
    with pytest.raises(ConfigError, match="layer 0 was not captured; this output holds layer 1[.]"):
        old.word_maps(0, layer=0)
    item_old, item_new = SaliencyDataset(schema3_output)[2], SaliencyDataset(demo_output_ray_free, layer=1)[2]
    for key in ("hidden", "attn_base", "attn_highres"):
        np.testing.assert_array_equal(item_old[key].numpy(), item_new[key].numpy())
    old_ds, new_ds = old.to_xarray(), new.to_xarray().sel(layer=1)
    assert old_ds["hidden"].dims == ("image", "token", "hidden_dim") and "layer" not in old_ds.coords
    for name in PER_TOKEN:  # padding NaN in both, from the mask each makes
        np.testing.assert_array_equal(old_ds[name].values, new_ds[name].values)
    picked = old_ds.sel(image_id="COCO_val2014_000000000002")
    np.testing.assert_array_equal(
        picked["hidden"].values, new_ds.sel(image_id="COCO_val2014_000000000002")["hidden"].values
    )


@pytest.mark.filterwarnings("ignore:Consolidated metadata:UserWarning")
def test_resume_refuses_a_schema3_output_naming_the_layer_axis(schema3_output):
    from dataclasses import replace

    from saldata.pipelines.preflight import preflight
    from tests.ray_free_run import readers_demo_config

    config = replace(readers_demo_config(schema3_output))
    with pytest.raises(ConfigError) as refused:
        preflight(config, overwrite=False)
    message = str(refused.value)
    assert "older saldata (store schema_version 3" in message and "layer axis" in message
    assert "--overwrite" in message


def test_layers_in_any_order_are_the_same_output_and_resume_each_other():
    from saldata.extractors.settings import parse_layers, resolve_layers

    assert resolve_layers(parse_layers("3,1,-1"), 8) == resolve_layers(parse_layers("7,1,3,3"), 8) == (1, 3, 7)
    assert resolve_layers(parse_layers("all"), 4) == (0, 1, 2, 3)
    with pytest.raises(ConfigError, match=r"^--layers 8, -9 is out of range: the model has 8 decoder layers"):
        resolve_layers((0, 8, -9), 8)


def test_a_layer_out_of_the_model_s_range_is_refused_not_wrapped(demo_output_ray_free):
    """tiny-random has 2 decoder layers: -3 is no layer (it must not wrap round to layer 1)."""
    output = saldata.open(demo_output_ray_free)
    assert output.layers.resolve(-1) == 1 and output.layers.resolve(-2) == 0
    for layer in (-3, -100, 2, 9):
        with pytest.raises(ConfigError, match=rf"layer {layer} (is out of range|was not captured)"):
            output.layers.resolve(layer)
    with pytest.raises(ConfigError, match="layer -3 is out of range: the model has 2 decoder layers"):
        output.token_maps(0, layer=-3)
    with pytest.raises(ConfigError, match="layer -3 is out of range"):
        SaliencyDataset(demo_output_ray_free, layer=-3)
