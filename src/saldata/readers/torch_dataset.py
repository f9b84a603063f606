"""A torch ``Dataset`` over an extraction output, for saliency trainers.

Each item is one image: hidden states and attention maps padded to ``max_len`` with a mask,
each map normalised on its own, the image at a chosen size, and its ground truth. The Zarr
store is opened lazily in each worker process (handles are not pickled), so it works with
``DataLoader(num_workers=N)``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset

from saldata.datasets.ground_truth import GT_OK, fixation_map
from saldata.errors import ConfigError, ImageLoadError
from saldata.readers.checked import CheckedGroup
from saldata.readers.output import Output
from saldata.storage.zarr_store import open_store

NORMALIZATIONS = ("max", "sum")


class SaliencyDataset(Dataset):
    """Items are dicts of tensors (``T`` = max_len, ``H`` x ``W`` = image_size as height x width):

    ``hidden`` (T, D), ``attn_base`` (T, 24, 24), ``attn_highres`` (T, R, C) (heads averaged,
    or (T, heads, ...) with ``heads="all"``), ``mask`` (T,) bool, ``length`` (the rows filled:
    the image's tokens, cut at ``max_len``), ``n_tokens`` (the image's tokens, uncut: greater
    than ``length`` where ``max_len`` cut them), ``image`` (3, H, W) in [0, 1], ``saliency``
    (H, W) in [0, 1], ``fixations`` (H, W) 0/1, ``has_ground_truth``, ``idx``; and ``image_id``
    (str). Maps and hidden states are those of one captured decoder ``layer`` (negative counts
    from the model's end; default the last captured). A ``split`` the output lacks is refused,
    naming the splits it has.
    """

    def __init__(
        self,
        out: Path | str,
        *,
        split: str | None = None,
        where: str | None = None,
        max_len: int | None = None,
        normalize: str = "max",
        image_size: tuple[int, int] | None = None,
        heads: str = "mean",
        layer: int | None = None,
        storage_options: dict | None = None,
    ):
        if normalize not in NORMALIZATIONS:
            raise ConfigError(f"normalize must be one of {NORMALIZATIONS}, not {normalize!r}.")
        if heads not in ("mean", "all"):
            raise ConfigError(f"heads must be 'mean' or 'all', not {heads!r}.")
        if max_len is not None and (not isinstance(max_len, (int, np.integer)) or max_len < 1):
            raise ConfigError(f"max_len must be a number of tokens >= 1 (or None: the output's), not {max_len!r}.")
        output = Output(out, storage_options)
        output.require("hidden", "attn_base", "attn_highres", "saliency_map", "fixation_map")
        self.path = output.path
        self.rows = output.select(split=split, where=where).images.to_pylist()
        self.max_len = int(max_len or output.attrs["max_new_tokens"])
        self.stored_size = tuple(output.attrs["image_size"])
        self.image_size = tuple(image_size or self.stored_size)  # (width, height)
        self.normalize = normalize
        self.heads = heads
        self.stored_layers = output.layers
        self.layer = output.layers.resolve(layer)  # an uncaptured layer fails here, not in a worker
        self._group = None

    def __len__(self) -> int:
        return len(self.rows)

    def __getstate__(self):
        state = self.__dict__.copy()
        state["_group"] = None  # each worker opens its own handle
        return state

    def __getitem__(self, i: int) -> dict:
        row = self.rows[i]
        if self._group is None:
            self._group = CheckedGroup(open_store(self.path), self.path)  # a damaged chunk is named
        group = self._group
        idx, n = row["idx"], min(row["n_tokens"], self.max_len)
        hidden = np.zeros((self.max_len, group["hidden"].shape[-1]), np.float32)
        hidden[:n] = self.stored_layers.rows(group["hidden"], idx, n, self.layer)
        item = {
            "idx": idx,
            "image_id": row["image_id"],
            "length": n,
            "n_tokens": row["n_tokens"],  # beside length: what max_len cut is never hidden
            "mask": torch.arange(self.max_len) < n,
            "hidden": torch.from_numpy(hidden),
            "attn_base": torch.from_numpy(self._maps(group["attn_base"], idx, n)),
            "attn_highres": torch.from_numpy(self._maps(group["attn_highres"], idx, n)),
            "image": torch.from_numpy(self._image(row)).permute(2, 0, 1).float() / 255.0,
            "has_ground_truth": row["gt_status"] == GT_OK,
        }
        saliency, fixations = self._ground_truth(group, idx)
        item["saliency"], item["fixations"] = torch.from_numpy(saliency), torch.from_numpy(fixations)
        return item

    def _maps(self, array, idx: int, n: int) -> np.ndarray:
        maps = np.asarray(self.stored_layers.rows(array, idx, n, self.layer), dtype=np.float32)  # (n, heads, r, c)
        if self.heads == "mean":
            maps = maps.mean(axis=1)
        totals = (
            maps.max(axis=(-2, -1), keepdims=True)
            if self.normalize == "max"
            else maps.sum(axis=(-2, -1), keepdims=True)
        )
        maps = np.divide(maps, totals, out=np.zeros_like(maps), where=totals > 0)
        padded = np.zeros((self.max_len, *maps.shape[1:]), np.float32)
        padded[:n] = maps
        return padded

    def _image(self, row: dict) -> np.ndarray:
        from saldata.datasets.base import ImageSource
        from saldata.pipelines.preprocess import load_image

        source = ImageSource(row["dataset"], row["split"], row["image_id"], row["source_path"])
        loaded = load_image(row["idx"], source, self.image_size)
        if loaded.error:
            raise ImageLoadError(loaded.error)
        return np.array(loaded.pixels)  # writable: torch refuses to wrap a read-only buffer

    def _ground_truth(self, group, idx: int) -> tuple[np.ndarray, np.ndarray]:
        saliency = np.asarray(group["saliency_map"][idx])
        fixations = np.asarray(group["fixation_map"][idx])
        if self.image_size != self.stored_size:
            from PIL import Image

            saliency = np.asarray(Image.fromarray(saliency).resize(self.image_size, Image.Resampling.BILINEAR))
            rows, cols = np.nonzero(fixations)  # re-rasterise points: resampling a sparse map loses them
            fixations = fixation_map(
                np.stack([cols, rows], axis=1).astype(np.float64), self.stored_size, self.image_size
            )
        return saliency.astype(np.float32) / 255.0, fixations.astype(np.float32)
