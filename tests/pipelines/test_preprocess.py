"""Images become 640x480 RGB; an image already that size keeps its exact pixels."""

from __future__ import annotations

import numpy as np
from PIL import Image

from saldata.datasets.base import ImageSource
from saldata.pipelines.preprocess import load_image

SIZE = (640, 480)


def _source(path):
    return ImageSource("folder", "all", path.name, str(path))


def test_resizes_and_records_original_size(tmp_path):
    path = tmp_path / "big.png"
    Image.new("RGB", (800, 600), (200, 10, 10)).save(path)
    loaded = load_image(3, _source(path), SIZE)
    assert loaded.error is None and loaded.idx == 3
    assert loaded.pixels.shape == (480, 640, 3) and loaded.pixels.dtype == np.uint8
    assert loaded.orig_size == (800, 600)


def test_image_at_target_size_is_not_resampled(tmp_path):
    rng = np.random.default_rng(0)
    pixels = rng.integers(0, 256, (480, 640, 3), dtype=np.uint8)
    path = tmp_path / "exact.png"
    Image.fromarray(pixels).save(path)
    np.testing.assert_array_equal(load_image(0, _source(path), SIZE).pixels, pixels)


def test_grayscale_and_alpha_become_rgb(tmp_path):
    Image.new("L", (100, 80), 128).save(tmp_path / "g.png")
    Image.new("RGBA", (100, 80), (1, 2, 3, 0)).save(tmp_path / "a.png")
    for name in ("g.png", "a.png"):
        assert load_image(0, _source(tmp_path / name), SIZE).pixels.shape == (480, 640, 3)


def test_unreadable_file_is_an_error_naming_the_file(tmp_path):
    path = tmp_path / "broken.jpg"
    path.write_text("this is not a jpeg")
    loaded = load_image(0, _source(path), SIZE)
    assert loaded.pixels is None
    assert str(path) in loaded.error and "not an image" in loaded.error


def test_load_shard_runs_the_image_processor_when_asked(tmp_path, tiny_model_dir):
    """With a processor directory the worker ships model inputs instead of pixels; a bad file still fails alone."""
    from saldata.extractors.image_inputs import image_processor, prepare_images
    from saldata.pipelines.plan import ShardWork, plan_shards
    from saldata.pipelines.steps import load_shard

    rng = np.random.default_rng(5)
    Image.fromarray(rng.integers(0, 256, (480, 640, 3), dtype=np.uint8)).save(tmp_path / "good.png")
    (tmp_path / "bad.jpg").write_bytes(b"not an image")
    (shard,) = plan_shards([_source(tmp_path / "good.png"), _source(tmp_path / "bad.jpg")], 8)
    work = ShardWork(shard, ())

    plain = load_shard(work, SIZE)
    good, bad = load_shard(work, SIZE, tiny_model_dir)
    assert good.pixels is None and good.inputs.image_size == (480, 640)
    (expected,) = prepare_images(image_processor(tiny_model_dir), [plain[0].pixels])
    np.testing.assert_array_equal(good.inputs.pixel_values, expected.pixel_values)
    assert good.inputs.pixel_values.shape[1:] == (3, 336, 336) and good.inputs.pixel_values.dtype == np.float32
    assert bad.inputs is None and "bad.jpg" in bad.error
