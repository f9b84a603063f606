"""The layout must say where LLaVA-Next's own packing puts every grid cell."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from saldata.extractors.layout import layout_for

SIZES = [(640, 480), (480, 640), (336, 336), (1000, 200), (800, 600), (123, 457)]


@pytest.fixture(scope="module")
def tiny(tiny_model_dir):
    from transformers import AutoProcessor, LlavaNextForConditionalGeneration

    model = LlavaNextForConditionalGeneration.from_pretrained(tiny_model_dir).eval()
    return model, AutoProcessor.from_pretrained(tiny_model_dir)


def test_research_geometry_for_640x480(tiny):
    layout = layout_for(tiny[0].config, (640, 480))
    assert layout.base_grid == (24, 24)
    assert layout.highres_grid == (36, 48)
    assert layout.n_tokens == 24 * 24 + 36 * (48 + 1)


@pytest.mark.parametrize("size", SIZES)
def test_encoded_features_land_where_the_layout_says(tiny, size):
    """Features that encode (crop, row, col) go through the model's own pack_image_features."""
    model, _ = tiny
    layout = layout_for(model.config, size)
    side = layout.patches_per_crop
    n_crops = 1 + layout.crop_grid[0] * layout.crop_grid[1]
    crop, row, col = np.meshgrid(np.arange(n_crops), np.arange(side), np.arange(side), indexing="ij")
    dim = model.config.text_config.hidden_size
    features = torch.zeros(n_crops, side * side, dim)
    features[..., 0] = torch.as_tensor(crop.reshape(n_crops, -1), dtype=torch.float32)
    features[..., 1] = torch.as_tensor(row.reshape(n_crops, -1), dtype=torch.float32)
    features[..., 2] = torch.as_tensor(col.reshape(n_crops, -1), dtype=torch.float32)
    newline = torch.full((dim,), -1.0)
    width, height = size
    packed, lens = model.model.pack_image_features(
        [features], torch.tensor([[height, width]]), "default", image_newline=newline
    )
    packed = packed[0].numpy()
    assert int(lens[0]) == layout.n_tokens

    base = packed[layout.base_positions]
    assert (base[..., 0] == 0).all()
    assert (base[..., 1] == np.arange(side)[:, None]).all() and (base[..., 2] == np.arange(side)[None, :]).all()

    hr = packed[layout.highres_positions]
    crops_across = layout.crop_grid[1]
    mosaic_row = (hr[..., 0] - 1) // crops_across * side + hr[..., 1]
    mosaic_col = (hr[..., 0] - 1) % crops_across * side + hr[..., 2]
    rows, cols = layout.highres_grid
    top, left = layout.highres_origin
    assert (hr[..., 0] >= 1).all()
    assert (mosaic_row == top + np.arange(rows)[:, None]).all()
    assert (mosaic_col == left + np.arange(cols)[None, :]).all()
    assert (packed[layout.newline_positions] == -1).all()


@pytest.mark.parametrize("size", SIZES)
def test_processor_inserts_as_many_image_tokens_as_the_layout_has(tiny, size):
    model, processor = tiny
    image = np.zeros((size[1], size[0], 3), dtype=np.uint8)
    inputs = processor(images=[image], text=["<image>\nhi"], return_tensors="pt")
    n_image = int((inputs["input_ids"] == model.config.image_token_id).sum())
    assert n_image == layout_for(model.config, size).n_tokens


def test_unsupported_strategy_is_refused(tiny):
    from saldata.errors import ConfigError

    config = tiny[0].config.__class__.from_dict(tiny[0].config.to_dict())
    config.vision_feature_select_strategy = "full"
    with pytest.raises(ConfigError, match="full"):
        layout_for(config, (640, 480))
