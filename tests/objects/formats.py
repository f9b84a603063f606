"""COCO- and Visual Genome-format files written by the tests, for the readers' demo output.

The demo's images are COCO ids 1..6 (idx 0..5), stored at 640x480; their files are 640x480,
800x600, 500x375, 1024x768, 640x427 and 480x640. Each annotation below has a known answer at
the stored size, worked out by hand in ``EXPECTED`` (pixels of its mask; its box).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np


def rle_counts(mask: np.ndarray) -> list[int]:
    """COCO's uncompressed RLE of a mask: run lengths in column-major order, starting with zeros."""
    flat = mask.flatten(order="F").astype(np.uint8)
    counts, current, run = [], 0, 0
    for value in flat:
        if value != current:
            counts.append(run)
            current, run = value, 0
        run += 1
    counts.append(run)
    return counts


def rectangle(size: tuple[int, int], x0: int, y0: int, x1: int, y1: int) -> np.ndarray:
    width, height = size
    mask = np.zeros((height, width), np.uint8)
    mask[y0:y1, x0:x1] = 1
    return mask


def coco_instances() -> dict:
    from pycocotools import mask as coco_mask

    compressed = coco_mask.encode(np.asfortranarray(rectangle((1024, 768), 256, 384, 512, 768)))
    return {
        "images": [
            {"id": 1, "width": 640, "height": 480, "file_name": "COCO_val2014_000000000001.jpg"},
            {"id": 2, "width": 800, "height": 600},
            {"id": 3, "width": 1000, "height": 750},  # the file is 500x375: the annotation's size differs
            {"id": 4, "width": 1024, "height": 768},
            {"id": 5, "width": 640, "height": 427},
            {"id": 6, "file_name": "no size"},
            {"id": 999, "width": 640, "height": 480},  # an image the output does not hold
        ],
        "categories": [{"id": 1, "name": "person", "supercategory": "person"}, {"id": 18, "name": "dog"}],
        "annotations": [
            # a polygon rectangle at the stored size: 200 x 100 pixels
            _ann(101, 1, 18, [100, 100, 200, 100], [[100, 100, 300, 100, 300, 200, 100, 200]]),
            # two polygons, scaled by 0.8: (80..240) x (80..160) and (400..480) x (320..400)
            _ann(
                102,
                2,
                1,
                [100, 100, 500, 400],
                [[100, 100, 300, 100, 300, 200, 100, 200], [500, 400, 600, 400, 600, 500, 500, 500]],
            ),
            # a crowd: uncompressed RLE at the annotation's 1000x750, scaled by 0.64 to (64..192) x (32..128)
            {
                **_ann(103, 3, 1, [100, 50, 200, 150], None),
                "iscrowd": 1,
                "segmentation": {"counts": rle_counts(rectangle((1000, 750), 100, 50, 300, 200)), "size": [750, 1000]},
            },
            # compressed RLE (a string), scaled by 0.625 to (160..320) x (240..480)
            _ann(104, 4, 18, [256, 384, 256, 384], {"counts": compressed["counts"].decode(), "size": [768, 1024]}),
            _ann(105, 5, 1, [10, 10, 0, 20], [[10, 10, 10, 30, 11, 30]]),  # a box of no area
            _ann(106, 5, 1, [700, 10, 20, 20], [[700, 10, 720, 10, 720, 30]]),  # outside the 640x427 image
            _ann(107, 6, 1, [10, 10, 20, 20], [[10, 10, 30, 10, 30, 30, 10, 30]]),  # its image has no size
            _ann(108, 999, 1, [10, 10, 20, 20], [[10, 10, 30, 10, 30, 30, 10, 30]]),  # not in the output
        ],
    }


def _ann(object_id: int, image: int, category: int, bbox: list, segmentation) -> dict:
    area = float(bbox[2] * bbox[3])
    return {
        "id": object_id,
        "image_id": image,
        "category_id": category,
        "bbox": bbox,
        "area": area,
        "segmentation": segmentation,
        "iscrowd": 0,
    }


# object_id -> (idx, mask pixels at 640x480, bbox at the stored size)
EXPECTED = {
    ("coco", 101): (0, 200 * 100, (100.0, 100.0, 200.0, 100.0)),
    ("coco", 102): (1, 160 * 80 + 80 * 80, (80.0, 80.0, 400.0, 320.0)),
    ("coco", 103): (2, 128 * 96, (64.0, 32.0, 128.0, 96.0)),
    ("coco", 104): (3, 160 * 240, (160.0, 240.0, 160.0, 240.0)),
    # VG image 1001 is COCO image 1 at 1280x960: scaled by 0.5
    ("visual_genome", 5001): (0, 128 * 96, (64.0, 48.0, 128.0, 96.0)),
    ("visual_genome", 101): (0, 32 * 16, (0.0, 0.0, 32.0, 16.0)),  # the same id as a COCO object of idx 0
}
REJECTED = {105: "no area", 106: "outside", 107: "no width and height"}


def write_coco(path: Path, data: dict | None = None) -> Path:
    path.write_text(json.dumps(data or coco_instances()))
    return path


def visual_genome_files(root: Path) -> Path:
    """image_data.json and objects.json: VG image 1001 is COCO image 1; 1002 is no COCO image."""
    root.mkdir(parents=True, exist_ok=True)
    (root / "image_data.json").write_text(
        json.dumps(
            [
                {"image_id": 1001, "width": 1280, "height": 960, "coco_id": 1, "url": "https://example.org/1001.jpg"},
                {"image_id": 1002, "width": 100, "height": 100, "coco_id": None},
            ]
        )
    )
    (root / "objects.json").write_text(
        json.dumps(
            [
                {
                    "image_id": 1001,
                    "objects": [
                        {
                            "object_id": 5001,
                            "x": 128,
                            "y": 96,
                            "w": 256,
                            "h": 192,
                            "names": ["dog"],
                            "synsets": ["dog.n.01"],
                        },
                        {
                            "object_id": 101,
                            "x": -10,
                            "y": 0,
                            "w": 74,
                            "h": 32,
                            "names": ["sky", "cloud"],
                            "synsets": [],
                        },
                        {
                            "object_id": 5003,
                            "x": 1300,
                            "y": 0,
                            "w": 10,
                            "h": 10,
                            "names": ["kite"],
                            "synsets": ["kite.n.03"],
                        },
                    ],
                },
                {"image_id": 1002, "objects": [{"object_id": 6001, "x": 1, "y": 1, "w": 5, "h": 5, "names": ["cat"]}]},
            ]
        )
    )
    return root
