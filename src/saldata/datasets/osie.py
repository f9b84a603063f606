"""OSIE (Xu et al. 2014): 700 images 1001..1700.jpg at 800x600, one fixations.mat for all."""

from __future__ import annotations

from saldata.datasets.base import DatasetReader, ImageSource, image_files


class OsieReader(DatasetReader):
    name = "osie"
    layout = (
        "  DATA_ROOT/data/stimuli/1001.jpg .. 1700.jpg\n"
        "  DATA_ROOT/data/eye/fixations.mat   (700x1 cell of {img, subjects: 15x1 cell of "
        "{fix_x, fix_y, fix_duration}}, 1-based; ground truth)"
    )

    def list_images(self, split: str) -> list[ImageSource]:
        if self.root is None:
            raise self.fail("--data-root is required for this dataset.")
        if split not in self.splits:
            raise self.fail(f"Unknown split {split!r}; OSIE has only 'all'.")
        folder = self.require_dir(self.root / "data" / "stimuli", "Stimulus folder")
        files = image_files(folder)
        if not files:
            raise self.fail(f"No images in {folder}.")
        mat = self.root / "data" / "eye" / "fixations.mat"
        return [
            ImageSource(
                self.name,
                split,
                p.stem,
                str(p.resolve()),
                # one .mat for every image: the loader caches it per worker and picks this image's entry
                fixations_path=f"{mat.resolve()}#{p.name}" if mat.parent.is_dir() else None,
                fixations_format="osie",
            )
            for p in files
        ]
