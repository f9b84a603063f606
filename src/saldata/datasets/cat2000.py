"""CAT2000 (Borji & Itti 2015): 20 categories of 1920x1080 images; ids are Category/NNN."""

from __future__ import annotations

from saldata.datasets.base import DatasetReader, ImageSource, image_files

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
        if self.root is None:
            raise self.fail("--data-root is required for this dataset.")
        if split not in self.splits:
            raise self.fail(f"Unknown split {split!r}; CAT2000 has {', '.join(self.splits)}.")
        base = self.root / SPLIT_FOLDERS[split]
        stimuli = self.require_dir(base / "Stimuli", f"Stimulus folder for split {split!r}")
        maps, locs = base / "FIXATIONMAPS", base / "FIXATIONLOCS"
        sources = []
        for category in sorted(p for p in stimuli.iterdir() if p.is_dir() and p.name != "Output"):
            for image in image_files(category):
                key = f"{category.name}/{image.stem}"
                sources.append(
                    ImageSource(
                        self.name,
                        split,
                        key,
                        str(image.resolve()),
                        saliency_path=str((maps / f"{key}.jpg").resolve()) if maps.is_dir() else None,
                        fixations_path=str((locs / f"{key}.mat").resolve()) if locs.is_dir() else None,
                        fixations_format="binary_mat",
                        category=category.name,
                    )
                )
        if not sources:
            raise self.fail(f"No images under {stimuli}/<Category>/.")
        return sources
