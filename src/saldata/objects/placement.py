"""Placing one annotation on a stored image: its box and its mask at the stored size, or why not.

The stored image is the source file stretched to the stored size (``pipelines/preprocess.py``:
a plain resize, no letterbox), and the file is the annotation's image at the size the annotation
file gives it (SALICON stretched COCO's images to 640x480). So a point (x, y) of the annotation
lands at (x * width / ann_width, y * height / ann_height), each axis on its own, whatever the
file's own size: the same mapping the fixations get (``fixations.x``). Nothing is guessed: an
annotation without its image's size, with a box of no area, or one wholly outside its image, is
refused with the reason. A box reaching past the image is clipped to it (Visual Genome has many
a pixel or two over the edge); what lies outside was never in the picture.

Masks are rasterised by pycocotools, as COCO's own tools do: polygons scaled to the stored size
and filled there; an RLE mask (crowds, compressed or not) decoded at its own size and sampled at
the centre of each stored pixel; a Visual Genome box filled. A mask that covers no stored pixel
(an object smaller than a pixel at this size) is refused: it has no area to score against.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from saldata.objects.annotation import Annotation, number
from saldata.objects.rle import decode


@dataclass(frozen=True, slots=True)
class Placed:
    row: dict  # an objects row (schemas.catalog.OBJECTS)
    rle: str  # the mask's compressed RLE counts at the stored size (an object_masks row's rle)


def place(ann: Annotation, idx: int, stored: tuple[int, int]) -> Placed | str:
    """``ann`` on image ``idx`` stored at ``stored`` = (width, height); the reason in words when it cannot be."""
    if ann.size is None:
        return "the file gives its image no width and height"
    (aw, ah), (width, height) = ann.size, stored
    x, y, w, h = ann.bbox
    if not (w > 0 and h > 0):
        return f"its box has no area ({w:g} x {h:g})"
    x0, y0, x1, y1 = max(x, 0.0), max(y, 0.0), min(x + w, aw), min(y + h, ah)
    if x0 >= x1 or y0 >= y1:
        return f"its box ({x:g}, {y:g}, {w:g}, {h:g}) lies outside its {aw}x{ah} image"
    sx, sy = width / aw, height / ah
    box = (x0 * sx, y0 * sy, (x1 - x0) * sx, (y1 - y0) * sy)
    rle = _mask(ann, box, (sx, sy), stored)
    if isinstance(rle, str):
        return rle
    from pycocotools import mask as coco_mask

    area = int(coco_mask.area(rle))
    if area == 0:
        return f"its mask covers no pixel at the stored size {width}x{height}"
    row = {
        "idx": idx,
        "object_id": ann.object_id,
        "source": ann.source,
        "category": ann.category,
        "names": list(ann.names),
        "synsets": list(ann.synsets),
        "bbox_x": box[0],
        "bbox_y": box[1],
        "bbox_w": box[2],
        "bbox_h": box[3],
        "area_fraction": area / (width * height),
        "iscrowd": ann.iscrowd,
    }
    return Placed(row, rle["counts"].decode("ascii"))


def _mask(ann: Annotation, box, scale, stored: tuple[int, int]) -> dict | str:
    """The mask as a compressed RLE at the stored size, or why it cannot be made."""
    from pycocotools import mask as coco_mask

    width, height = stored
    seg = ann.segmentation
    try:
        if seg is None or seg == []:  # Visual Genome, or a COCO annotation without a mask: the box
            return coco_mask.frPyObjects(np.array([box], dtype=np.float64), height, width)[0]
        if isinstance(seg, list):
            return _polygons(seg, scale, stored)
        if isinstance(seg, dict):
            return _rle(seg, ann.size, stored)
    except (ValueError, TypeError, KeyError, IndexError, OverflowError) as exc:  # pycocotools on a bad mask
        return f"its segmentation cannot be read ({type(exc).__name__}: {exc})"
    return f"its segmentation is a {type(seg).__name__}, neither polygons nor RLE"


def _polygons(polygons: list, scale, stored: tuple[int, int]) -> dict | str:
    from pycocotools import mask as coco_mask

    (sx, sy), (width, height) = scale, stored
    scaled = []
    for polygon in polygons:
        if not (isinstance(polygon, list) and all(map(number, polygon)) and len(polygon) % 2 == 0):
            return "its segmentation has a polygon that is not a flat list of x, y numbers"
        if len(polygon) >= 6:  # a polygon of fewer than 3 points encloses nothing (and 4 numbers would read as a box)
            points = np.asarray(polygon, dtype=np.float64).reshape(-1, 2) * (sx, sy)
            scaled.append(points.ravel().tolist())
    if not scaled:
        return "its segmentation has no polygon of 3 points or more"
    return coco_mask.merge(coco_mask.frPyObjects(scaled, height, width))


def _rle(rle: dict, size: tuple[int, int], stored: tuple[int, int]) -> dict | str:
    """An RLE mask (COCO's crowds: counts a list; or compressed: a string) at the stored size."""
    from pycocotools import mask as coco_mask

    (aw, ah), (width, height) = size, stored
    if list(rle.get("size") or []) != [ah, aw]:
        return f"its RLE mask is {rle.get('size')!r} (height, width), its image {ah}x{aw}"
    counts = rle.get("counts")
    if isinstance(counts, list):
        compressed = coco_mask.frPyObjects(rle, ah, aw)
    elif isinstance(counts, str):
        compressed = {"size": [ah, aw], "counts": counts.encode("ascii")}
    else:
        return "its RLE mask has no counts"
    if (aw, ah) == (width, height):
        return compressed
    full = decode(compressed)
    rows = np.minimum(((np.arange(height) + 0.5) * ah / height).astype(np.int64), ah - 1)
    cols = np.minimum(((np.arange(width) + 0.5) * aw / width).astype(np.int64), aw - 1)
    return coco_mask.encode(np.asfortranarray(full[rows][:, cols]))
