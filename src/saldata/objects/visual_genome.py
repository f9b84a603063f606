"""Visual Genome's ``image_data.json`` and ``objects.json``: read once, whole, indexed by image id.

``image_data.json`` gives each image's size and its ``coco_id`` (null where the image is not a
COCO image); the dataset reader (``datasets/visual_genome.py``) reads it too, for the catalog's
``coco_id``. Objects are boxes (``x, y, w, h`` in the image's pixels) with names and synsets.
Versions 1.2 and later name the image key ``image_id`` and an object's names ``names``; earlier
files say ``id`` and ``name``: both are read.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from saldata.errors import ConfigError
from saldata.objects.annotation import VISUAL_GENOME, Annotation, load_json, number, whole

IMAGE_DATA = "image_data.json"
OBJECTS = "objects.json"


@dataclass(frozen=True, slots=True)
class VgImage:
    size: tuple[int, int] | None  # (width, height)
    coco_id: int | None


def read_image_data(root: Path) -> dict[int, VgImage]:
    """Each Visual Genome image id's size and COCO id, from ``root/image_data.json``."""
    path = Path(root) / IMAGE_DATA
    data = load_json(path, "Visual Genome image_data.json")
    if not isinstance(data, list):
        raise ConfigError(f"{path} is not Visual Genome's image_data.json (not a list of images).")
    images = {}
    for i, entry in enumerate(data):
        image = _image_id(entry)
        if image is None:
            raise ConfigError(f"{path}: entry {i} has no integer image_id; is it Visual Genome's image_data.json?")
        width, height, coco = entry.get("width"), entry.get("height"), entry.get("coco_id")
        size = (width, height) if whole(width) and whole(height) and width > 0 and height > 0 else None
        images[image] = VgImage(size, coco if whole(coco) else None)
    return images


def read_visual_genome(root: Path) -> list[Annotation]:
    """Every object of ``root/objects.json``, sized by ``root/image_data.json``, in file order."""
    images = read_image_data(root)
    path = Path(root) / OBJECTS
    data = load_json(path, "Visual Genome objects.json")
    if not isinstance(data, list):
        raise ConfigError(f"{path} is not Visual Genome's objects.json (not a list of images).")
    annotations = []
    for i, entry in enumerate(data):
        image = _image_id(entry)
        if image is None or not isinstance(entry.get("objects"), list):
            raise ConfigError(
                f"{path}: entry {i} has no image_id and objects list; is it Visual Genome's objects.json?"
            )
        known = images.get(image)
        annotations += [_object(path, image, known, obj) for obj in entry["objects"]]
    return annotations


def _image_id(entry) -> int | None:
    if not isinstance(entry, dict):
        return None
    image = entry.get("image_id", entry.get("id"))
    return image if whole(image) else None


def _object(path: Path, image: int, known: VgImage | None, obj) -> Annotation:
    box = [obj.get(k) for k in ("x", "y", "w", "h")] if isinstance(obj, dict) else []
    if not whole(obj.get("object_id") if isinstance(obj, dict) else None) or not all(map(number, box)) or not box:
        raise ConfigError(
            f"{path}: an object of image {image} has no integer object_id and numbers x, y, w, h; "
            "is it Visual Genome's objects.json?"
        )
    names = obj.get("names", [obj["name"]] if "name" in obj else [])
    names = tuple(n for n in names if isinstance(n, str)) if isinstance(names, list) else ()
    synsets = tuple(s for s in obj.get("synsets") or [] if isinstance(s, str))
    return Annotation(
        source=VISUAL_GENOME,
        object_id=obj["object_id"],
        image=f"VG image {image}",
        coco_image=known.coco_id if known else None,
        vg_image=image,
        category=names[0] if names else None,
        names=names,
        synsets=synsets,
        bbox=tuple(float(v) for v in box),
        size=known.size if known else None,
    )
