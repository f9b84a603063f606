"""Outputs the export tests read, built without Ray (tests/ray_free_run.py), once per session."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
import zarr

from tests.datasets.formats import make_salicon
from tests.ray_free_run import build

# A SALICON-layout fixture: three val images with ground truth, one whose ground truth is missing,
# and (SALICON_OFF_FRAME) two with fixations outside the frame.
SALICON_SUBJECTS = [np.array([[100, 200], [320, 240], [640, 480]]), np.array([[1, 1]]), np.zeros((0, 2))]
SALICON_STEMS = ("COCO_val2014_000000000139", "COCO_val2014_000000000285", "COCO_val2014_000000000632")
SALICON_WITHOUT_TRUTH = "COCO_val2014_000000000724"
SALICON_TRAIN_STEMS = ("COCO_train2014_000000000009", "COCO_train2014_000000000025")
# Val images whose fixations leave the 640x480 frame, as the real data's do (1-based (x, y) per subject):
# the trainer's loader indexes past its map (IndexError) or wraps round (at 0, or negative).
SALICON_OFF_FRAME = {
    "COCO_val2014_000000000776": [  # whole and non-negative: uint16, as SALICON stores them
        np.array([[100, 200], [644, 300], [0, 5], [320, 481], [640, 480], [1, 1]]),  # 3 off: x 644, x 0, y 481
        np.array([[650, 10], [20, 30]]),  # 1 off: one point stays, a lone pair
        np.array([[5, 0]]),  # 1 off (y 0): none stays
        np.zeros((0, 2)),
    ],
    "COCO_val2014_000000000785": [  # a negative coordinate: stored as float64
        np.array([[-2, 10], [10, 20], [30, 40]]),  # 1 off
        np.array([[700, 500], [600, 400], [1, 480]]),  # 1 off
    ],
}
SALICON_OFF_FRAME_DROPPED = 7


def pick_eos(token_ids: np.ndarray) -> tuple[int, int, int]:
    """(eos, late, first): a token that one description first generates at step 2 or later (so it
    ends there, its EOS step a row of its own) and another generates first (so it ends at once)."""
    for late, row in enumerate(token_ids):
        for step, token in enumerate(row.tolist()):
            if step < 2 or token in row[:step]:
                continue
            first = [i for i, other in enumerate(token_ids) if i != late and int(other[0]) == token]
            if first:
                return token, late, first[0]
    raise AssertionError("no demo token ends one description late and another at once: pick the EOS another way")


@pytest.fixture(scope="session")
def late_eos_output(tmp_path_factory, tiny_model_dir, demo_output_ray_free):
    """The readers' demo output, made with a tiny-random whose EOS ends one description after
    some tokens and another at its first token, while the rest run to --max-new-tokens."""
    ids = np.asarray(zarr.open_group(demo_output_ray_free / "features.zarr", mode="r")["token_ids"][:])
    eos, _, _ = pick_eos(ids)
    model = tmp_path_factory.mktemp("late-eos-model") / "tiny-random-late-eos"
    shutil.copytree(tiny_model_dir, model)
    config = json.loads((model / "generation_config.json").read_text())
    (model / "generation_config.json").write_text(json.dumps({**config, "eos_token_id": eos}))
    return build(tmp_path_factory.mktemp("late-eos") / "demo", model=str(model))


@pytest.fixture(scope="session")
def salicon_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("salicon")
    make_salicon(root, {stem: SALICON_SUBJECTS for stem in (*SALICON_STEMS, SALICON_WITHOUT_TRUTH)})
    make_salicon(root, SALICON_OFF_FRAME)
    (root / "maps" / "val" / f"{SALICON_WITHOUT_TRUTH}.png").unlink()
    (root / "fixations" / "val" / f"{SALICON_WITHOUT_TRUTH}.mat").unlink()
    make_salicon(root, dict.fromkeys(SALICON_TRAIN_STEMS, SALICON_SUBJECTS), split="train")
    return root


@pytest.fixture(scope="session")
def salicon_output(tmp_path_factory, tiny_model_dir, salicon_root):
    """The SALICON fixture extracted like the readers' demo (tiny-random, both layers)."""
    return build(tmp_path_factory.mktemp("salicon-out") / "out", dataset="salicon", data_root=salicon_root)


@pytest.fixture(scope="session")
def salicon_train_output(tmp_path_factory, tiny_model_dir, salicon_root):
    """The fixture's train split, another output (an output holds one split), same settings."""
    out = tmp_path_factory.mktemp("salicon-train") / "out"
    return build(out, dataset="salicon", data_root=salicon_root, split="train")
