"""SALICON (2017 release). Image ids are the file stems, e.g. ``COCO_val2014_000000000192``."""

from __future__ import annotations

from saldata.datasets.base import DatasetReader, ImageSource, expected_file


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
            )
            for p in files
        ]
