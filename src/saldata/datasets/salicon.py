"""SALICON (2017 release). Image ids are the file stems, e.g. ``COCO_val2014_000000000192``."""

from __future__ import annotations

from saldata.datasets.base import DatasetReader, ImageSource, image_files


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
        if self.root is None:
            raise self.fail("--data-root is required for this dataset.")
        if split not in self.splits:
            raise self.fail(f"Unknown split {split!r}; SALICON has {', '.join(self.splits)}.")
        folder = self.require_dir(self.root / "images" / split, f"Image folder for split {split!r}")
        files = image_files(folder)
        if not files:
            raise self.fail(f"No images in {folder}.")
        # Ground truth is expected per image only where its folder exists (test has none).
        maps, fixations = self.root / "maps" / split, self.root / "fixations" / split
        return [
            ImageSource(
                self.name,
                split,
                p.stem,
                str(p.resolve()),
                saliency_path=str((maps / f"{p.stem}.png").resolve()) if maps.is_dir() else None,
                fixations_path=str((fixations / f"{p.stem}.mat").resolve()) if fixations.is_dir() else None,
                fixations_format="salicon",
            )
            for p in files
        ]
