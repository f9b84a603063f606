"""SALICON (2017 release). Image ids are the file stems, e.g. ``COCO_val2014_000000000192``.

Every SALICON image is a COCO 2014 image, and its file name says which: the digits are the COCO
image id, which the catalog keeps as ``images.coco_id`` (``saldata objects`` joins COCO's
annotations by it).
"""

from __future__ import annotations

import re

from saldata.datasets.base import DatasetReader, ImageSource, expected_file

_COCO_NAME = re.compile(r"COCO_[a-z]+2014_(\d+)")


def coco_id_of(stem: str) -> int | None:
    """The COCO image id in a COCO 2014 file name (``COCO_train2014_000000102625`` -> 102625); None otherwise."""
    match = _COCO_NAME.fullmatch(stem)
    return int(match.group(1)) if match else None


class SaliconReader(DatasetReader):
    name = "salicon"
    splits = ("train", "val", "test")
    default_split = "val"
    layout = (
        "  DATA_ROOT/images/{train,val,test}/COCO_{split}2014_*.jpg\n"
        "  DATA_ROOT/fixations/{train,val}/COCO_*.mat   (ground truth, optional)\n"
        "  DATA_ROOT/maps/{train,val}/COCO_*.png        (ground truth, optional)"
    )

    def list_images(self, split: str) -> list[ImageSource]:
        root = self.require_root(split)
        files = self.images_in(root / "images" / split, f"Image folder for split {split!r}")
        # Ground truth is expected per image only where its folder exists (test has none).
        maps, fixations = root / "maps" / split, root / "fixations" / split
        return [
            self.source(
                split,
                p,
                saliency_path=expected_file(maps, f"{p.stem}.png"),
                fixations_path=expected_file(fixations, f"{p.stem}.mat"),
                fixations_format="salicon",
                coco_id=coco_id_of(p.stem),
            )
            for p in files
        ]
