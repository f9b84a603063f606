"""One object annotation as a source file gives it, before it is placed on a stored image."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from saldata.errors import ConfigError, first_line

COCO = "coco"
VISUAL_GENOME = "visual_genome"
SOURCES = (COCO, VISUAL_GENOME)


@dataclass(frozen=True, slots=True)
class Annotation:
    """An object in its source's own pixels: ``bbox`` (x, y, w, h) and ``segmentation`` refer to an
    image of ``size`` (width, height), the size the annotation file gives its image."""

    source: str
    object_id: int
    image: str  # how the source names the image, for reports: "COCO image 102625", "VG image 1"
    coco_image: int | None  # the COCO image id it belongs to (joined with images.coco_id)
    vg_image: int | None  # the Visual Genome image id (joined with a visual_genome output's image_id)
    category: str | None
    names: tuple[str, ...]
    synsets: tuple[str, ...]
    bbox: tuple[float, float, float, float]
    size: tuple[int, int] | None  # None: the file gives its image no size, so it cannot be placed
    segmentation: object = None  # COCO polygons (list) or RLE (dict); None: the box is the mask
    iscrowd: bool = False


def load_json(path: Path, what: str):
    """A JSON file read once, whole; one ``ConfigError`` line naming it when it is missing or not JSON."""
    try:
        with open(path, "rb") as f:
            return json.load(f)
    except FileNotFoundError:
        raise ConfigError(f"{path} does not exist; give the {what}.") from None
    except IsADirectoryError:
        raise ConfigError(f"{path} is a folder; give the {what} (a JSON file).") from None
    except OSError as exc:
        raise ConfigError(f"{path} cannot be read ({first_line(exc)}).") from None
    except (ValueError, RecursionError) as exc:  # bad JSON, bad UTF-8
        raise ConfigError(f"{path} is not JSON ({first_line(exc)}); give the {what}.") from None


def number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def whole(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)
