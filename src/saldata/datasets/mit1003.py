"""MIT1003 (Judd et al. 2009). Image ids are the file stems; sizes vary (longer side 1024)."""

from __future__ import annotations

from saldata.datasets.base import DatasetReader, ImageSource, image_files


class Mit1003Reader(DatasetReader):
    name = "mit1003"
    layout = (
        "  DATA_ROOT/ALLSTIMULI/<stem>.jpeg\n"
        "  DATA_ROOT/ALLFIXATIONMAPS/<stem>_fixMap.jpg   (continuous map, ground truth)\n"
        "  DATA_ROOT/ALLFIXATIONMAPS/<stem>_fixPts.jpg   (fixation points, JPEG: thresholded)"
    )

    def list_images(self, split: str) -> list[ImageSource]:
        if self.root is None:
            raise self.fail("--data-root is required for this dataset.")
        if split not in self.splits:
            raise self.fail(f"Unknown split {split!r}; MIT1003 has only 'all'.")
        files = image_files(self.require_dir(self.root / "ALLSTIMULI", "Stimulus folder"))
        if not files:
            raise self.fail(f"No images in {self.root / 'ALLSTIMULI'}.")
        maps = self.root / "ALLFIXATIONMAPS"
        has_gt = maps.is_dir()
        return [
            ImageSource(
                self.name,
                split,
                p.stem,
                str(p.resolve()),
                saliency_path=str((maps / f"{p.stem}_fixMap.jpg").resolve()) if has_gt else None,
                fixations_path=str((maps / f"{p.stem}_fixPts.jpg").resolve()) if has_gt else None,
                fixations_format="points_image",
            )
            for p in files
        ]
