"""SaliencyDataset through a real DataLoader with worker processes, checked against the store."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import zarr
from torch.utils.data import DataLoader

from saldata.readers.torch_dataset import SaliencyDataset

ROOT = Path(__file__).resolve().parents[2]


def test_batches_from_worker_processes_match_the_store(demo_output):
    group = zarr.open_group(demo_output / "features.zarr", mode="r")
    data = SaliencyDataset(demo_output, max_len=16, normalize="max")
    loader = DataLoader(data, batch_size=3, num_workers=2)
    batches = list(loader)
    assert sum(len(b["idx"]) for b in batches) == 6
    batch = batches[0]
    assert batch["hidden"].shape == (3, 16, 64) and batch["attn_highres"].shape == (3, 16, 36, 48)
    assert batch["attn_base"].shape == (3, 16, 24, 24) and batch["image"].shape == (3, 3, 480, 640)
    for row, idx in enumerate(batch["idx"].tolist()):
        n = int(group["n_tokens"][idx])
        assert batch["length"][row] == n and batch["mask"][row].tolist() == [True] * n + [False] * (16 - n)
        last = group["hidden"][idx, :n, -1].astype(np.float32)  # the default: the last captured layer
        np.testing.assert_array_equal(batch["hidden"][row, :n].numpy(), last)
        assert (batch["hidden"][row, n:] == 0).all() and (batch["attn_highres"][row, n:] == 0).all()
        peaks = batch["attn_highres"][row, :n].amax(dim=(-2, -1))
        torch.testing.assert_close(peaks, torch.ones(n))
        expected = group["attn_highres"][idx, :n, -1].astype(np.float32).mean(axis=1)
        expected /= expected.max(axis=(-2, -1), keepdims=True)
        np.testing.assert_allclose(batch["attn_highres"][row, :n].numpy(), expected, rtol=1e-5)
        np.testing.assert_array_equal(batch["saliency"][row].numpy() * 255, group["saliency_map"][idx])
        assert batch["fixations"][row].sum() == group["fixation_map"][idx].sum() > 0
    assert batch["has_ground_truth"].all()


def test_layer_choice_reads_that_layer_and_refuses_one_not_captured(demo_output):
    from saldata.errors import ConfigError

    group = zarr.open_group(demo_output / "features.zarr", mode="r")
    item = SaliencyDataset(demo_output, layer=0, normalize="sum")[1]
    n = item["length"]
    np.testing.assert_array_equal(item["hidden"][:n].numpy(), group["hidden"][1, :n, 0].astype(np.float32))
    other = SaliencyDataset(demo_output, layer=1, normalize="sum")[1]
    assert (item["hidden"][:n] - other["hidden"][:n]).abs().max() > 1e-2
    with pytest.raises(ConfigError, match="layer 5 is out of range: the model has 2 decoder layers"):
        SaliencyDataset(demo_output, layer=5)


def test_sum_normalisation_per_head_and_image_size(demo_output):
    group = zarr.open_group(demo_output / "features.zarr", mode="r")
    data = SaliencyDataset(demo_output, normalize="sum", heads="all", image_size=(320, 240))
    item = data[2]
    n = item["length"]
    assert item["attn_base"].shape == (12, 4, 24, 24)
    torch.testing.assert_close(item["attn_base"][:n].sum(dim=(-2, -1)), torch.ones(n, 4))
    assert item["image"].shape == (3, 240, 320) and item["saliency"].shape == (240, 320)
    # fixations are re-rasterised, not resampled: every stored point survives (up to merging)
    stored = int(group["fixation_map"][2].sum())
    assert 0 < item["fixations"].sum() <= stored and set(item["fixations"].unique().tolist()) <= {0.0, 1.0}


def test_bad_options_are_refused(demo_output):
    with pytest.raises(ValueError, match="normalize"):
        SaliencyDataset(demo_output, normalize="softmax")


@pytest.mark.slow  # a training script in a fresh process (torch and workers start up): 7 s
def test_example_trains_one_epoch(demo_output):
    proc = subprocess.run(
        [sys.executable, str(ROOT / "examples" / "train_demo.py"), str(demo_output), "--workers", "2"],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "one epoch over 6 images done" in proc.stdout and "KL" in proc.stdout


def test_a_split_the_output_lacks_is_refused_naming_the_splits_present(demo_output):
    from saldata.errors import ConfigError

    with pytest.raises(ConfigError, match="no image of split 'vall'.*it has: val"):
        SaliencyDataset(demo_output, split="vall")


def test_max_len_cuts_and_items_carry_the_true_length(demo_output):
    from saldata.errors import ConfigError

    group = zarr.open_group(demo_output / "features.zarr", mode="r")
    item = SaliencyDataset(demo_output, max_len=10)[0]
    n_tokens = int(group["n_tokens"][0])
    assert n_tokens > 10  # the demo's images have 12 tokens: the cut is real
    assert item["length"] == 10 and item["n_tokens"] == n_tokens and item["mask"].sum() == 10
    assert SaliencyDataset(demo_output)[0]["n_tokens"] == SaliencyDataset(demo_output)[0]["length"] == n_tokens
    for bad in (0, -3):
        with pytest.raises(ConfigError, match="max_len"):
            SaliencyDataset(demo_output, max_len=bad)
