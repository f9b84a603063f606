"""OSIE (Xu et al. 2014): 700 images 1001..1700.jpg at 800x600, one fixations.mat for all."""

from __future__ import annotations

from saldata.datasets.base import DatasetReader, ImageSource, expected_file


class OsieReader(DatasetReader):
    name = "osie"
    layout = (
        "  DATA_ROOT/data/stimuli/1001.jpg .. 1700.jpg\n"
        "  DATA_ROOT/data/eye/fixations.mat   (700x1 cell of {img, subjects: 15x1 cell of "
        "{fix_x, fix_y, fix_duration}}, 1-based; ground truth)"
    )

    def list_images(self, split: str) -> list[ImageSource]:
        root = self.require_root(split)
        files = self.images_in(root / "data" / "stimuli", "Stimulus folder")
        mat = expected_file(root / "data" / "eye", "fixations.mat")
        # One .mat for every image: the loader caches it per worker and picks this image's entry.
        return [self.source(split, p, fixations_path=mat and f"{mat}#{p.name}", fixations_format="osie") for p in files]
