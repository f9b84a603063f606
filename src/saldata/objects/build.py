"""``saldata objects``' work: read the sources once, then, under the output lock, place and commit."""

from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

from saldata.errors import ConfigError
from saldata.objects.annotation import COCO, VISUAL_GENOME
from saldata.objects.join import ImageIndex, SourceResult, place_source
from saldata.objects.table import ObjectsRecord, commit_sources

COCO_ID_SINCE = 7  # the store schema_version from which the catalog has images.coco_id


@dataclass(frozen=True, slots=True)
class ObjectsReport:
    results: list[SourceResult]
    record: ObjectsRecord


def add_objects(out, *, coco: Path | None = None, visual_genome: Path | None = None) -> ObjectsReport:
    """Place the given sources' annotations on ``out``'s images and commit them (replacing those sources' rows)."""
    from saldata.objects.coco import read_coco
    from saldata.objects.visual_genome import read_visual_genome
    from saldata.readers.output import Output
    from saldata.storage.catalog import read_table
    from saldata.storage.lock import output_lock

    if coco is None and visual_genome is None:
        raise ConfigError(
            "give --coco FILE (a COCO instances file) and/or --visual-genome DIR (its image_data.json "
            "and objects.json)."
        )
    output = Output(out)  # a missing or damaged output is refused here, before a source is read
    version = output.attrs.get("schema_version")
    if not isinstance(version, int) or version < COCO_ID_SINCE:
        raise ConfigError(
            f"{output.path} was written by an older saldata (store schema_version {version}) whose catalog has no "
            "images.coco_id to join annotations by; re-extract it with saldata extract --overwrite first."
        )
    if visual_genome is not None and not Path(visual_genome).is_dir():
        raise ConfigError(
            f"--visual-genome {visual_genome} is not a folder; give the folder that holds image_data.json and objects.json."
        )
    # The files are read (seconds for COCO's hundreds of MB) before the lock is taken: a bad one costs nothing.
    sources = {}
    if coco is not None:
        sources[COCO] = (read_coco(Path(coco)), [str(Path(coco).resolve())])
    if visual_genome is not None:
        root = Path(visual_genome).resolve()
        sources[VISUAL_GENOME] = (read_visual_genome(root), [str(root / "image_data.json"), str(root / "objects.json")])
    stored = tuple(output.attrs["image_size"])
    run_id = f"objects-{datetime.now(timezone.utc):%Y%m%dT%H%M%S}-{os.getpid()}"
    with output_lock(output.path, run_id) as lock:
        index = ImageIndex(read_table(output.path, "images"))  # read under the lock: the images now committed
        results = [place_source(name, annotations, index, stored) for name, (annotations, _) in sources.items()]
        inputs = {name: paths for name, (_, paths) in sources.items()}
        record = commit_sources(output.path, results, inputs, before_switch=lock.check)
    return ObjectsReport(results, record)
