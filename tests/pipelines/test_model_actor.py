"""The model actor's batches: a batch that runs out of memory is retried in halves, nothing lost."""

from __future__ import annotations

import numpy as np
import torch

from saldata.datasets.base import ImageSource
from saldata.extractors.models import ModelSettings
from saldata.extractors.prompts import resolve_prompt
from saldata.extractors.settings import CaptureSettings
from saldata.pipelines.model_actor import ExtractorActor
from saldata.pipelines.preprocess import LoadedImage


class MemoryBudget:
    """The extractor on a device that holds ``images`` per call: a larger call fails in torch's allocator."""

    def __init__(self, extractor, images: int):
        self.extractor, self.images, self.calls = extractor, images, []

    def __getattr__(self, name):  # layout, map_shapes, device: the extractor's own
        return getattr(self.extractor, name)

    def __call__(self, inputs, out=None):
        self.calls.append(len(inputs))
        if len(inputs) > self.images:
            torch.empty(2**62, dtype=torch.uint8)  # raises: DefaultCPUAllocator can't allocate memory
        return self.extractor(inputs, out=out)


def loaded(rgb_images, count):
    return [
        LoadedImage(i, ImageSource("test", "all", f"im{i}", f"/data/im{i}.png"), rgb_images[i % 3], (640, 480), 0.0)
        for i in range(count)
    ]


def test_out_of_memory_batch_is_retried_in_halves(tiny_model_dir, rgb_images):
    actor = ExtractorActor(
        tiny_model_dir, ModelSettings("tiny-random"), CaptureSettings(max_new_tokens=3), resolve_prompt(), 4
    )
    budget = actor.extractor = MemoryBudget(actor.extractor, images=2)
    output = actor.process(loaded(rgb_images, 5))
    outcomes = output.outcomes
    assert [o.error for o in outcomes] == [None] * 5
    assert budget.calls == [4, 2, 2, 1]  # 4 failed; then 2, 2 and the last image, at the kept size
    assert actor.stats()["batch_size"] == 2
    (alone,), _ = budget.extractor([rgb_images[0]])
    np.testing.assert_array_equal(outcomes[0].capture.token_ids, alone.token_ids)
    highres = output.maps["attn_highres"][3, : alone.rows].astype(np.float32)  # image 3 is image 0
    assert np.abs(highres - alone.attn_highres).max() < 1e-5


def test_a_single_image_that_does_not_fit_fails_alone(tiny_model_dir, rgb_images):
    actor = ExtractorActor(
        tiny_model_dir, ModelSettings("tiny-random"), CaptureSettings(max_new_tokens=3), resolve_prompt(), 2
    )
    budget = actor.extractor = MemoryBudget(actor.extractor, images=0)
    outcomes = actor.process(loaded(rgb_images, 3)).outcomes
    assert budget.calls == [2, 1, 1, 1]
    assert all("/data/im" in o.error and "model failed" in o.error for o in outcomes)
    assert all("can't allocate memory" in o.error for o in outcomes)


def test_shard_maps_are_the_capture_in_the_stored_dtype_and_reused_blocks_keep_no_stale_rows(
    tiny_model_dir, rgb_images
):
    """The actor's block holds each image's float32 capture cast to float16 exactly as numpy casts it
    (the store's bits before the block existed), padding rows 0, and a failed image's row 0 even when
    the reused block held another image's maps there in the shard before."""
    from saldata.schemas.store import ARRAY_SPECS

    settings = CaptureSettings(max_new_tokens=4, layers=(0, -1))
    actor = ExtractorActor(tiny_model_dir, ModelSettings("tiny-random"), settings, resolve_prompt(), 2)
    first = actor.process(loaded(rgb_images, 4))
    block_before = {name: array.copy() for name, array in first.maps.items()}
    images = loaded(rgb_images, 4)
    images[1].error = "/data/im1.png: cannot decode"  # rows 0 and 2: a batch around a failed image
    second = actor.process(images)
    assert [o.error is None for o in second.outcomes] == [True, False, True, True]
    for name, maps in second.maps.items():
        assert maps.dtype == ARRAY_SPECS[name].numpy_dtype()
        assert np.any(block_before[name][1] != 0) and not np.any(maps[1])  # the failed row was cleared
    for row in (0, 2, 3):
        (alone,), _ = actor.extractor([rgb_images[row % 3]])
        for name in ("hidden", "attn_base", "attn_highres"):
            expected = np.zeros_like(second.maps[name][row])
            expected[: alone.rows] = getattr(alone, name).astype(np.float16)
            if row == 3:  # alone in its batch, as in the call above: bit for bit
                np.testing.assert_array_equal(second.maps[name][row], expected)
            else:  # batched with another image: equal but for the last bits, and in its own row
                got, want = second.maps[name][row].astype(np.float32), expected.astype(np.float32)
                np.testing.assert_allclose(got, want, rtol=1e-2, atol=1e-3)
            assert not np.any(second.maps[name][row][alone.rows :])
