"""Images per model call: parsing, sizing from memory, halving on out-of-memory."""

from __future__ import annotations

import pytest
import torch

from saldata.errors import ConfigError
from saldata.extractors.batching import AUTO, AUTO_CAP, BatchSizer, fitting_batch, parse_batch_size
from saldata.extractors.models import ModelSettings, load_model

GB = 1024**3


def allocator_failure() -> RuntimeError:
    """What torch's allocator raises when memory runs out (a real failure, not a stand-in)."""
    try:
        torch.empty(2**62, dtype=torch.uint8)
    except RuntimeError as exc:
        return exc
    raise AssertionError("an allocation of 4 EiB succeeded")


@pytest.mark.parametrize(("value", "parsed"), [("auto", AUTO), ("4", 4), (4, 4), ("1", 1)])
def test_parse_batch_size(value, parsed):
    assert parse_batch_size(value) == parsed


@pytest.mark.parametrize(("value", "message"), [("0", "at least 1"), ("-2", "at least 1"), ("four", "'four'")])
def test_parse_batch_size_names_the_flag_and_the_problem(value, message):
    with pytest.raises(ConfigError, match="--batch-size") as info:
        parse_batch_size(value)
    assert message in str(info.value)


def test_fitting_batch_fills_the_free_memory_with_headroom():
    # The 8B model on an H100 measured ~0.9 GB per image at its peak, with ~62 GB free after loading.
    assert fitting_batch(62 * GB, 0.9 * GB) == AUTO_CAP
    assert fitting_batch(6.5 * GB, 0.9 * GB) == 6  # a 24 GB card: 0.85 x 6.5 / 0.9 = 6.1
    assert fitting_batch(0.5 * GB, 0.9 * GB) == 1  # never below one image
    assert fitting_batch(10 * GB, 0.0) == AUTO_CAP  # nothing measured on this device


@pytest.fixture(scope="module")
def tiny_model(tiny_model_dir):
    model, _ = load_model(ModelSettings("tiny-random", device="cpu"), tiny_model_dir, "sdpa")
    return model


def test_auto_is_one_image_per_call_on_cpu(tiny_model):
    sizer = BatchSizer(AUTO, tiny_model)
    assert (sizer.size, sizer.probing) == (1, False)
    assert BatchSizer(6, tiny_model).size == 6


def test_out_of_memory_halves_the_size_and_other_errors_do_not(tiny_model):
    sizer = BatchSizer(8, tiny_model)
    assert sizer.shrink(allocator_failure(), attempted=8) and sizer.size == 4
    assert sizer.shrink(allocator_failure(), attempted=3) and sizer.size == 1  # halves what failed
    assert not sizer.shrink(allocator_failure(), attempted=1)  # one image that does not fit fails
    assert not BatchSizer(8, tiny_model).shrink(ValueError("bad pixels"), attempted=8)
