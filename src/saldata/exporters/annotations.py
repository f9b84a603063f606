"""``--annotations``: the annotation tree the trainer reads beside the language files, as symlinks.

Its loader reads ``images/{split}/<id>.jpg``, ``saliency_map/{split}/<id>.png`` and
``fixation/{split}/<id>.mat``. Each is a symlink to the dataset's own file (both image readers it
uses go by content, not by suffix). A fixation file is linked only where it is a SALICON 2017
``.mat`` the loader can read: ``gaze[s].fixations`` (no other format has them) and ``resolution``
stored as integers, as SALICON stores them, and every fixation on the map that ``resolution``
sizes (it indexes ``[int(y - 1), int(x - 1)]``).
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import numpy as np

from saldata.datasets.base import ImageSource
from saldata.datasets.ground_truth import salicon_fixations
from saldata.errors import ConfigError, SaldataError
from saldata.exporters.destination import link_atomic

IMAGES_DIRNAME, SALIENCY_DIRNAME, FIXATION_DIRNAME = "images", "saliency_map", "fixation"
SALICON_FORMAT = "salicon"


def link_annotations(dest: Path, output, rows: list[dict], name_of: Callable[[str], str]) -> list[str]:
    """Link every row's image and ground truth under ``dest``; notes on what could not be linked."""
    sources = dataset_sources(output, sorted({row["split"] for row in rows}))
    no_map, skipped = 0, Counter()
    for row in rows:
        split, name = row["split"], name_of(row["image_id"])
        link_atomic(dest / IMAGES_DIRNAME / split / f"{name}.jpg", row["source_path"])
        source = sources.get((split, row["image_id"]))
        if source and source.saliency_path and Path(source.saliency_path).is_file():
            link_atomic(dest / SALIENCY_DIRNAME / split / f"{name}.png", source.saliency_path)
        else:
            no_map += 1
        problem = salicon_mat_problem(source)
        if problem is None:
            link_atomic(dest / FIXATION_DIRNAME / split / f"{name}.mat", source.fixations_path)
        else:
            skipped[problem] += 1
    linked = [dest / name for name in (IMAGES_DIRNAME, SALIENCY_DIRNAME, FIXATION_DIRNAME) if (dest / name).is_dir()]
    notes = [f"annotations: {', '.join(map(str, linked))} (symlinks)"]
    if no_map:
        notes.append(f"{no_map} images have no saliency map file to link")
    notes += [f"{count} fixation files not linked: {why}" for why, count in sorted(skipped.items())]
    return notes


def dataset_sources(output, splits: list[str]) -> dict[tuple[str, str], ImageSource]:
    """(split, image_id) -> where the dataset keeps that image's files, listed as the extraction listed them."""
    from saldata.datasets import list_images
    from saldata.pipelines.resume import RUN_CONFIG_FILE

    path = output.path / RUN_CONFIG_FILE
    try:
        run = json.loads(path.read_text())
        root = Path(run["data_root"]) if run.get("data_root") else None
        sources = [s for split in splits for s in list_images(run["dataset"], root, split)]
    except (OSError, ValueError, KeyError) as exc:
        if isinstance(exc, SaldataError):
            why = str(exc).splitlines()[0]
        else:
            why = f"{path} cannot be read ({type(exc).__name__})"
        raise ConfigError(f"--annotations needs the dataset {output.path} was extracted from: {why}") from None
    return {(s.split, s.image_id): s for s in sources}


def salicon_mat_problem(source: ImageSource | None) -> str | None:
    """Why an image's fixation file cannot be the trainer's ``.mat``; None when it can."""
    if source is None or not source.fixations_path:
        return "the dataset has none"
    if source.fixations_format != SALICON_FORMAT:
        return f"{source.fixations_format} fixations, not SALICON .mat files (the trainer reads only those)"
    if not Path(source.fixations_path).is_file():
        return "missing from the dataset"
    import scipy.io

    try:
        raw = scipy.io.loadmat(source.fixations_path, variable_names=["resolution", "gaze"])
        points = salicon_fixations(source.fixations_path)
    except (OSError, ValueError, TypeError, NotImplementedError):  # GroundTruthError is a ValueError
        return "unreadable .mat files"
    if not _stored_as_integers(raw):
        return "resolution or fixations not stored as integers, as SALICON stores them (the trainer relies on it)"
    # The loader marks map[int(y - 1), int(x - 1)]: a point off the map would index past it or wrap round.
    width, height = points.frame
    cells = np.trunc(points.xy).astype(np.int64)
    if ((cells < 0) | (cells >= (width, height))).any():
        return "fixations outside their resolution (the trainer's loader would index off its map)"
    return None


def _stored_as_integers(raw: dict) -> bool:
    """``resolution`` and every subject's ``fixations`` hold integers: the loader sizes its map with
    ``np.zeros([h, w])``, and tells a subject's single fixation (a pair) from a list of them by its
    integer type."""
    resolution, gaze = raw.get("resolution"), raw.get("gaze")
    if resolution is None or gaze is None or "fixations" not in (gaze.dtype.names or ()):
        return False
    arrays = [np.asarray(resolution), *(np.asarray(f) for f in gaze["fixations"].ravel())]
    return all(a.size == 0 or np.issubdtype(a.dtype, np.integer) for a in arrays)
