"""CAT2000 (Borji & Itti 2015): 20 categories of 1920x1080 images; ids are Category/NNN."""

from __future__ import annotations

from saldata.datasets.base import DatasetReader, ImageSource, expected_file, image_files

SPLIT_FOLDERS = {"train": "trainSet", "test": "testSet"}


class Cat2000Reader(DatasetReader):
    name = "cat2000"
    splits = ("train", "test")
    default_split = "train"
    layout = (
        "  DATA_ROOT/trainSet/Stimuli/<Category>/NNN.jpg        (Output/ folders are skipped)\n"
        "  DATA_ROOT/trainSet/FIXATIONMAPS/<Category>/NNN.jpg   (ground truth)\n"
        "  DATA_ROOT/trainSet/FIXATIONLOCS/<Category>/NNN.mat   (key fixLocs: binary map; ground truth)\n"
        "  DATA_ROOT/testSet/Stimuli/<Category>/NNN.jpg"
    )

    def list_images(self, split: str) -> list[ImageSource]:
        base = self.require_root(split) / SPLIT_FOLDERS[split]
        stimuli = self.require_dir(base / "Stimuli", f"Stimulus folder for split {split!r}")
        maps, locs = base / "FIXATIONMAPS", base / "FIXATIONLOCS"
        sources = []
        for category in sorted(p for p in stimuli.iterdir() if p.is_dir() and p.name != "Output"):
            for image in image_files(category):
                key = f"{category.name}/{image.stem}"
                sources.append(
                    self.source(
                        split,
                        image,
                        key,
                        saliency_path=expected_file(maps, f"{key}.jpg"),
                        fixations_path=expected_file(locs, f"{key}.mat"),
                        fixations_format="binary_mat",
                        category=category.name,
                    )
                )
        if not sources:
            raise self.fail(f"No images under {stimuli}/<Category>/.")
        return sources
