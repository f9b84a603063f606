"""Which catalog images an annotation belongs to, and the placing of a source's annotations on them.

A COCO annotation joins the images whose ``coco_id`` is its image id (SALICON outputs, and Visual
Genome outputs through ``image_data.json``). A Visual Genome object joins the images of a
``visual_genome`` output whose ``image_id`` is its image id, and the images whose ``coco_id`` is
the COCO id ``image_data.json`` gives its image (a SALICON output). Every committed image counts,
whatever its status: an object is the image's, not the model run's (as ``fixations`` are).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import pyarrow as pa

from saldata.objects.annotation import Annotation
from saldata.objects.placement import Placed, place

VISUAL_GENOME_DATASET = "visual_genome"
REJECTED_KEPT = 1000  # rejections listed one by one in the record; the count is always whole


@dataclass(slots=True)
class SourceResult:
    """One source's annotations on one output: rows to commit, and what could not be placed."""

    source: str
    rows: list[dict] = field(default_factory=list)  # objects rows, in (idx, object_id) order
    rles: list[str] = field(default_factory=list)  # each row's mask
    not_in_output: int = 0  # annotations of images this output does not hold: not placed, not an error
    rejected: list[dict] = field(default_factory=list)  # {object_id, image, idx, reason}, the first REJECTED_KEPT
    n_rejected: int = 0


class ImageIndex:
    """The output's images by COCO id and by Visual Genome id, from the catalog's images table."""

    def __init__(self, images: pa.Table):
        self.by_coco: dict[int, list[int]] = {}
        self.by_vg: dict[int, list[int]] = {}
        rows = images.select(["idx", "dataset", "image_id", "coco_id"]).to_pydict()
        for idx, dataset, image_id, coco in zip(rows["idx"], rows["dataset"], rows["image_id"], rows["coco_id"]):
            if coco is not None:
                self.by_coco.setdefault(coco, []).append(idx)
            if dataset == VISUAL_GENOME_DATASET and image_id.isdigit():
                self.by_vg.setdefault(int(image_id), []).append(idx)

    def targets(self, ann: Annotation) -> list[int]:
        found = self.by_coco.get(ann.coco_image, []) + self.by_vg.get(ann.vg_image, [])
        return sorted(set(found))


def place_source(
    source: str, annotations: list[Annotation], index: ImageIndex, stored: tuple[int, int]
) -> SourceResult:
    """Every annotation of ``source`` placed on each image it joins, or counted as not placed."""
    result = SourceResult(source)
    placed: list[tuple[int, int, Placed]] = []
    seen: set[tuple[int, int]] = set()
    for ann in annotations:
        targets = index.targets(ann)
        if not targets:
            result.not_in_output += 1
        for idx in targets:
            outcome = place(ann, idx, stored) if (idx, ann.object_id) not in seen else "its id is given twice"
            if isinstance(outcome, Placed):
                placed.append((idx, ann.object_id, outcome))
                seen.add((idx, ann.object_id))
                continue
            result.n_rejected += 1
            if len(result.rejected) < REJECTED_KEPT:
                result.rejected.append({"object_id": ann.object_id, "image": ann.image, "idx": idx, "reason": outcome})
    placed.sort(key=lambda p: (p[0], p[1]))
    result.rows = [p.row for *_, p in placed]
    result.rles = [p.rle for *_, p in placed]
    return result
