"""Every image under a folder, recursively; ids are paths relative to the folder."""

from __future__ import annotations

from saldata.datasets.base import DatasetReader, ImageSource, image_files


class FolderReader(DatasetReader):
    name = "folder"
    layout = "  PATH/**/*.{jpg,jpeg,png,bmp,webp,tif,tiff}   (any depth; ids are relative paths)"

    def root_setting(self) -> str:
        return f"--dataset folder:{self.root}"

    def list_images(self, split: str) -> list[ImageSource]:
        if self.root is None:
            raise self.fail("Give the folder as --dataset folder:PATH.")
        self.require_existing_root()
        root = self.root
        files = image_files(root, recursive=True)
        if not files:
            raise self.fail(f"No images under {root}.")
        return [ImageSource(self.name, split, p.relative_to(root).as_posix(), str(p.resolve())) for p in files]
