"""The language-driven saliency trainer's SALICON loader, written from its contract (issue #16) for
the tests: what it globs, looks up, loads and pads. numpy stands in for torch; nothing is normalised."""

from __future__ import annotations

import json
import os
from glob import glob

import numpy as np
import scipy.io
from PIL import Image

LOADER_HIDDEN_SIZE = 4096  # what the loader pads hidden states to


def trainer_items(language_path, split: str, max_len: int, hidden_size: int = LOADER_HIDDEN_SIZE) -> list[dict]:
    """Every item the loader would serve for ``split``: a file under hidden_state/ whose key in
    salicon_valid.json is true (a file without a key is a KeyError, as in the loader)."""
    with open(os.path.join(language_path, "salicon_valid.json")) as f:
        valid = json.load(f)[split]
    pool = [os.path.basename(p) for p in glob(os.path.join(language_path, "hidden_state", split, "*"))]
    items = []
    for name in sorted(n for n in pool if valid[n]):
        attention = np.load(os.path.join(language_path, "attention", split, name), allow_pickle=True).item()
        patch, base = attention["patch"].astype(np.float32), attention["base"].astype(np.float32)
        hidden = np.load(os.path.join(language_path, "hidden_state", split, name)).astype(np.float32)
        seq = len(patch)
        if seq < max_len:  # padded, never truncated
            patch = np.concatenate([patch, np.zeros((max_len - seq, *patch.shape[1:]), np.float32)])
            base = np.concatenate([base, np.zeros((max_len - seq, *base.shape[1:]), np.float32)])
            hidden = np.concatenate([hidden, np.zeros((max_len - seq, hidden_size), np.float32)])
        items.append({"id": name[:-4], "hidden": hidden, "base": base, "patch": patch, "valid_len": seq})
    return items


def batch(items: list[dict]) -> dict:
    """What a DataLoader's default collate does with the items: stack each field (fails on ragged shapes)."""
    return {key: np.stack([item[key] for item in items]) for key in ("hidden", "base", "patch")}


def annotation(anno_path, split: str, image_id: str) -> dict:
    """The image, saliency map and fixation map the loader reads beside an item."""
    image = np.asarray(Image.open(os.path.join(anno_path, "images", split, f"{image_id}.jpg")).convert("RGB"))
    saliency = np.asarray(Image.open(os.path.join(anno_path, "saliency_map", split, f"{image_id}.png")))
    mat = scipy.io.loadmat(os.path.join(anno_path, "fixation", split, f"{image_id}.mat"), simplify_cells=True)
    h, w = mat["resolution"]
    fixations = np.zeros([h, w])  # a TypeError unless resolution holds integers
    for subject in np.atleast_1d(mat["gaze"]):
        points = np.asarray(subject["fixations"])
        if points.ndim == 2:  # a squeezed single fixation (a pair of integers) is skipped, as the loader does
            for x, y in points:
                fixations[int(y - 1), int(x - 1)] = 1
    return {"image": image, "saliency": saliency, "fixations": fixations}
