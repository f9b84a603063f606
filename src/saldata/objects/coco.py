"""COCO instances files (``instances_val2014.json``): read once, whole, and indexed by image id.

The file is parsed once (a 450 MB file takes seconds and a few GB of memory, once per run, not per
image); its images give each annotation's image size, its categories each annotation's name.
A file that is not a COCO instances file is refused with one line naming it; a single annotation
that cannot be read is refused the same way, since a file with one is not what it claims to be.
"""

from __future__ import annotations

from pathlib import Path

from saldata.errors import ConfigError
from saldata.objects.annotation import COCO, Annotation, load_json, number, whole

WHAT = "COCO instances file (e.g. annotations/instances_val2014.json)"


def read_coco(path: Path) -> list[Annotation]:
    """Every annotation of a COCO instances file, in file order."""
    data = load_json(path, WHAT)
    if not isinstance(data, dict) or not all(isinstance(data.get(k), list) for k in ("images", "annotations")):
        raise ConfigError(
            f"{path} is not a COCO instances file (no 'images' and 'annotations' lists); give the {WHAT}."
        )
    sizes = {im.get("id"): _size(im) for im in data["images"] if isinstance(im, dict)}
    categories = {c.get("id"): c.get("name") for c in data.get("categories") or [] if isinstance(c, dict)}
    return [_annotation(path, i, ann, sizes, categories) for i, ann in enumerate(data["annotations"])]


def _size(image: dict) -> tuple[int, int] | None:
    width, height = image.get("width"), image.get("height")
    return (width, height) if whole(width) and whole(height) and width > 0 and height > 0 else None


def _annotation(path: Path, i: int, ann, sizes: dict, categories: dict) -> Annotation:
    def refuse(problem: str) -> ConfigError:
        return ConfigError(f"{path}: annotation {i} {problem}; is it a COCO instances file?")

    if not isinstance(ann, dict):
        raise refuse("is not an object")
    object_id, image, bbox = ann.get("id"), ann.get("image_id"), ann.get("bbox")
    if not whole(object_id) or not whole(image):
        raise refuse("has no integer id and image_id")
    if not (isinstance(bbox, list) and len(bbox) == 4 and all(map(number, bbox))):
        raise refuse(f"(id {object_id}) has no bbox of 4 numbers")
    name = categories.get(ann.get("category_id"))
    if not isinstance(name, str):
        raise refuse(f"(id {object_id}) names category {ann.get('category_id')!r}, which the file does not list")
    return Annotation(
        source=COCO,
        object_id=object_id,
        image=f"COCO image {image}",
        coco_image=image,
        vg_image=None,
        category=name,
        names=(name,),
        synsets=(),
        bbox=tuple(float(v) for v in bbox),
        size=sizes.get(image),
        segmentation=ann.get("segmentation"),
        iscrowd=bool(ann.get("iscrowd", 0)),
    )
