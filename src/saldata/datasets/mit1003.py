"""MIT1003 (Judd et al. 2009). Image ids are the file stems; sizes vary (longer side 1024)."""

from __future__ import annotations

from saldata.datasets.base import DatasetReader, ImageSource, expected_file


class Mit1003Reader(DatasetReader):
    name = "mit1003"
    layout = (
        "  DATA_ROOT/ALLSTIMULI/<stem>.jpeg\n"
        "  DATA_ROOT/ALLFIXATIONMAPS/<stem>_fixMap.jpg   (continuous map, ground truth)\n"
        "  DATA_ROOT/ALLFIXATIONMAPS/<stem>_fixPts.jpg   (fixation points, JPEG: thresholded)"
    )

    def list_images(self, split: str) -> list[ImageSource]:
        root = self.require_root(split)
        files = self.images_in(root / "ALLSTIMULI", "Stimulus folder")
        maps = root / "ALLFIXATIONMAPS"
        return [
            self.source(
                split,
                p,
                saliency_path=expected_file(maps, f"{p.stem}_fixMap.jpg"),
                fixations_path=expected_file(maps, f"{p.stem}_fixPts.jpg"),
                fixations_format="points_image",
            )
            for p in files
        ]
