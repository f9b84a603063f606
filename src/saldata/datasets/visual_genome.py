"""Visual Genome (Krishna et al. 2017): 108k images in two folders; ids are the VG image ids.

No eye-tracking ground truth. ``image_data.json``, where present, gives each image's ``coco_id``
(about half are COCO images), which the catalog keeps as ``images.coco_id``; its ``objects.json``
is added with ``saldata objects OUT --visual-genome DATA_ROOT``.
"""

from __future__ import annotations

from saldata.datasets.base import DatasetReader, ImageSource, image_files

FOLDERS = ("VG_100K", "VG_100K_2")


class VisualGenomeReader(DatasetReader):
    name = "visual_genome"
    layout = (
        "  DATA_ROOT/VG_100K/<image_id>.jpg and DATA_ROOT/VG_100K_2/<image_id>.jpg   (either folder may be absent)\n"
        "  DATA_ROOT/image_data.json   (optional: each image's coco_id; with objects.json, for saldata objects)"
    )

    def list_images(self, split: str) -> list[ImageSource]:
        from saldata.objects.visual_genome import IMAGE_DATA, read_image_data

        root = self.require_root(split)
        files = [p for folder in FOLDERS if (root / folder).is_dir() for p in image_files(root / folder)]
        if not files:
            raise self.fail(f"No images in {root / FOLDERS[0]} or {root / FOLDERS[1]}.")
        named = [p for p in files if p.stem.isdigit()]
        if len(named) < len(files):
            odd = next(p for p in files if not p.stem.isdigit())
            raise self.fail(f"{odd} is not named by a Visual Genome image id (<digits>.jpg).")
        seen: dict[int, object] = {}
        for p in named:
            if int(p.stem) in seen:
                raise self.fail(f"Image {p.stem} is in both {seen[int(p.stem)]} and {p}; keep one.")
            seen[int(p.stem)] = p
        # read through saldata's own reader: a bad image_data.json is refused with one line naming it
        images = read_image_data(root) if (root / IMAGE_DATA).is_file() else {}
        return [
            self.source(split, p, coco_id=images[int(p.stem)].coco_id if int(p.stem) in images else None)
            for p in sorted(named, key=lambda p: int(p.stem))
        ]
