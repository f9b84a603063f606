"""The language-driven saliency trainer's SALICON loader, for the tests: what it globs, looks up,
loads, normalises and pads, the way it does.

Written from its ``dataloader.py`` (github.com/szzexpoi/language_att, class ``SALICON``), read
line by line; its code is not copied. ``trainer_items`` and ``annotation`` give the raw arrays
(numpy, nothing normalised) for exact comparisons with the store; ``SaliconLoader`` is the class
itself as a torch ``Dataset``: the same keys, files, shapes, dtypes, padding to ``max_len`` (never
cut) and the same fixation indexing, ``fix_map[int(y - 1), int(x - 1)]`` on a map sized by the
file's ``resolution``. Its two libraries that saldata does not install are replaced by their
arithmetic: cv2 (``imread`` of a PNG's first channel in BGR order, ``resize`` with INTER_LINEAR:
half-pixel centres, edges clamped) and torchvision (``Resize`` of a PIL image is PIL's bilinear
resize; ``ToTensor`` and ``Normalize`` with the ImageNet statistics).
"""

from __future__ import annotations

import json
import os
from glob import glob

import numpy as np
import scipy.io
from PIL import Image

LOADER_HIDDEN_SIZE = 4096  # what the loader pads hidden states to
TRAINER_MAP_SIZE = (240, 320)  # (height, width): main.py's --height and --width, and imagenet_transform's Resize
IMAGENET_MEAN, IMAGENET_STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)


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
    """The image, saliency map and fixation map the loader reads beside an item, at their own size."""
    image = np.asarray(Image.open(os.path.join(anno_path, "images", split, f"{image_id}.jpg")).convert("RGB"))
    saliency = np.asarray(Image.open(os.path.join(anno_path, "saliency_map", split, f"{image_id}.png")))
    fixations = fixation_map(os.path.join(anno_path, "fixation", split, f"{image_id}.mat"))
    return {"image": image, "saliency": saliency, "fixations": fixations}


def fixation_map(path) -> np.ndarray:
    """The loader's ``get_fixation``: a (h, w) float64 map of ``resolution`` with 1 at every
    fixation of every subject. As it does: ``simplify_cells``, subjects by ``range(len(gaze))``
    (one subject is a dict, and ``gaze[0]`` a KeyError), a subject's fixations one by one, a
    uint16 or uint8 scalar skipped (a lone fixation, squeezed to a pair), every other entry
    unpacked to (x, y) (a float pair cannot be: TypeError), and ``map[int(y - 1), int(x - 1)]``
    (a point past the map: IndexError; at 0: wraps round to the last row or column)."""
    mat = scipy.io.loadmat(path, simplify_cells=True)
    h, w = mat["resolution"]
    fix_map = np.zeros([h, w])  # a TypeError unless resolution holds integers
    for subject in range(len(mat["gaze"])):
        points = mat["gaze"][subject]["fixations"]
        for index in range(len(points)):
            if not isinstance(points[index], np.uint16) and not isinstance(points[index], np.uint8):
                x, y = points[index]
                fix_map[int(y - 1), int(x - 1)] = 1
    return fix_map


def cv2_imread_first_channel(path) -> np.ndarray:
    """``cv2.imread(path).astype('float32')[:, :, 0]``: colour, BGR order, so channel 0 is blue."""
    return np.asarray(Image.open(path).convert("RGB"))[:, :, 2].astype(np.float32)


def cv2_resize_linear(values: np.ndarray, width: int, height: int) -> np.ndarray:
    """``cv2.resize(values, (width, height))`` (INTER_LINEAR) of a float map: each output pixel samples
    the input at ``(i + 0.5) * scale - 0.5``, clamped to the edges, bilinearly; the dtype is kept."""

    def taps(n_out: int, n_in: int):
        at = np.clip((np.arange(n_out) + 0.5) * (n_in / n_out) - 0.5, 0, n_in - 1)
        low = np.floor(at).astype(np.int64)
        high = np.minimum(low + 1, n_in - 1)
        return low, high, at - low

    r0, r1, fr = taps(height, values.shape[0])
    c0, c1, fc = taps(width, values.shape[1])
    rows = values[r0] * (1 - fr)[:, None] + values[r1] * fr[:, None]
    return (rows[:, c0] * (1 - fc) + rows[:, c1] * fc).astype(values.dtype)


class SaliconLoader:
    """The trainer's ``SALICON(language_path, anno_path, img_h, img_w, split, max_len)`` dataset: the
    same constructor arguments (``hidden_size`` stands for the 4096 its padding writes), the same
    items: (hidden_state, base_attention, patch_attention, valid_len, saliency_map, fixation_map,
    image, image id). A torch ``Dataset`` by its interface (``__getitem__``, ``__len__``)."""

    def __init__(
        self,
        language_path,
        anno_path,
        img_h: int,
        img_w: int,
        split: str,
        max_len: int = 60,
        hidden_size: int = LOADER_HIDDEN_SIZE,
    ):
        self.language_path, self.anno_path = str(language_path), str(anno_path)
        self.img_h, self.img_w, self.split, self.max_len, self.hidden_size = img_h, img_w, split, max_len, hidden_size
        with open(os.path.join(self.language_path, "salicon_valid.json")) as f:
            valid = json.load(f)[split]
        found = glob(os.path.join(self.language_path, "hidden_state", split, "*"))
        self.img_pool = [os.path.basename(p) for p in found if valid[os.path.basename(p)]]

    def __len__(self) -> int:
        return len(self.img_pool)

    def __getitem__(self, index: int):
        import torch

        img_id = self.img_pool[index]
        stem = img_id[:-4]
        image = Image.open(os.path.join(self.anno_path, "images", self.split, stem + ".jpg")).convert("RGB")
        image = image.resize((TRAINER_MAP_SIZE[1], TRAINER_MAP_SIZE[0]), Image.Resampling.BILINEAR)
        pixels = torch.from_numpy(np.asarray(image, np.float32) / 255).permute(2, 0, 1)
        pixels = (pixels - torch.tensor(IMAGENET_MEAN)[:, None, None]) / torch.tensor(IMAGENET_STD)[:, None, None]

        mapping = np.load(os.path.join(self.language_path, "attention", self.split, img_id), allow_pickle=True).item()
        patch = torch.from_numpy(mapping["patch"])
        patch = patch / (torch.amax(patch, dim=(2, 3), keepdim=True) + 1e-7)  # in the stored dtype, as it does
        seq, head, p_h, p_w = patch.shape
        valid_len = seq
        if seq < self.max_len:
            patch = torch.cat([patch, torch.zeros(self.max_len - seq, head, p_h, p_w)], dim=0)
        base = torch.from_numpy(mapping["base"])
        base = base / (torch.amax(base, dim=(2, 3), keepdim=True) + 1e-7)
        _, _, b_h, b_w = base.shape
        if seq < self.max_len:
            base = torch.cat([base, torch.zeros(self.max_len - seq, head, b_h, b_w)], dim=0)
        hidden = torch.from_numpy(np.load(os.path.join(self.language_path, "hidden_state", self.split, img_id)))
        if seq < self.max_len:
            hidden = torch.cat([hidden, torch.zeros(self.max_len - seq, self.hidden_size)], dim=0)

        saliency = cv2_imread_first_channel(os.path.join(self.anno_path, "saliency_map", self.split, stem + ".png"))
        saliency = cv2_resize_linear(saliency, self.img_w, self.img_h)
        saliency /= saliency.max()
        saliency = torch.from_numpy(saliency)

        fixations = fixation_map(os.path.join(self.anno_path, "fixation", self.split, stem + ".mat"))
        fixations = cv2_resize_linear(fixations, self.img_w, self.img_h)
        fixations[fixations > 0.1] = 1
        fixations[fixations != 1] = 0  # a float64 numpy map, as it returns it (the collate makes it a tensor)
        return hidden.float(), base.float(), patch.float(), valid_len, saliency, fixations, pixels, stem
