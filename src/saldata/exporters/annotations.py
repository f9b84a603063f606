"""``--annotations``: the annotation tree the trainer reads beside the language files.

Its loader reads ``images/{split}/<id>.jpg``, ``saliency_map/{split}/<id>.png`` and
``fixation/{split}/<id>.mat``. Images and saliency maps are symlinks to the dataset's own files
(both image readers it uses go by content, not by suffix). So is a fixation file the loader can
read as it is: a SALICON 2017 ``.mat`` (``gaze[s].fixations``; no other format has them) with
``resolution`` and the fixations stored as integers, as SALICON stores them, more than one
subject, and every fixation on the map ``resolution`` sizes (it marks
``map[int(y - 1), int(x - 1)]``: a point past the map is an IndexError, one at 0 or below wraps
round to the far edge).

A SALICON ``.mat`` it cannot read as it is (the real data has fixations outside the 640x480
frame; the demo's are floats) is written instead (``trainer_mat``), not linked: the same
variables and the same ``gaze`` structure, ``location`` and ``timestamp`` as they are, each
subject's ``fixations`` reduced to the points inside the frame (0-based ``x - 1`` in
``[0, width)`` and ``y - 1`` in ``[0, height)``: the rule of ``images.n_fixations_clipped``) as
uint16 whole pixels (``floor``, the pixel both the loader and saldata mark), and ``resolution``
as uint16 (the image's own size where the file has none, the frame saldata reads it in). A
subject keeps its place when none of its points stay. The export counts the points dropped.

No file is written or linked where no copy can help, and the export says how many and why: other
fixation formats, files missing or unreadable, coordinates that are not finite, and a file of one
subject (``loadmat(simplify_cells=True)`` reads its ``gaze`` as one dict, which the loader
indexes by subject number: a KeyError).
"""

from __future__ import annotations

import io
import json
from collections import Counter
from pathlib import Path

import numpy as np

from saldata.datasets.base import ImageSource
from saldata.datasets.ground_truth import salicon_fixations
from saldata.errors import ConfigError, SaldataError
from saldata.exporters.base import export_name
from saldata.exporters.destination import link_atomic
from saldata.storage.commits import write_atomic
from saldata.words import agree, plural

IMAGES_DIRNAME, SALIENCY_DIRNAME, FIXATION_DIRNAME = "images", "saliency_map", "fixation"
SALICON_FORMAT = "salicon"
LINK, WRITE, SKIP = "link", "write", "skip"  # what becomes of an image's fixation file (fixation_file_plan)
OFF_MAP = "fixations outside their resolution (the trainer's loader would index off its map)"
NOT_INTEGERS = "resolution or fixations not stored as integers, as SALICON stores them (the trainer relies on it)"
NO_RESOLUTION = "no resolution (the trainer's loader sizes its map with it)"
ONE_SUBJECT = "one subject only (the trainer's loader reads gaze as a list)"
NOT_FINITE = "fixation coordinates that are not finite (NaN or Inf)"


def link_annotations(dest: Path, output, rows: list[dict]) -> list[str]:
    """Link (or, for fixations, write) every row's image and ground truth under ``dest``; notes on what was done."""
    sources = dataset_sources(output, sorted({row["split"] for row in rows}))
    no_map, skipped, written, dropped = 0, Counter(), Counter(), 0
    for row in rows:
        split, name = row["split"], export_name(row["image_id"], row["source_path"])
        link_atomic(dest / IMAGES_DIRNAME / split / f"{name}.jpg", row["source_path"])
        source = sources.get((split, row["image_id"]))
        if source and source.saliency_path and Path(source.saliency_path).is_file():
            link_atomic(dest / SALIENCY_DIRNAME / split / f"{name}.png", source.saliency_path)
        else:
            no_map += 1
        target = dest / FIXATION_DIRNAME / split / f"{name}.mat"
        action, why = fixation_file_plan(source)
        if action == LINK:
            link_atomic(target, source.fixations_path)
        elif action == WRITE:
            data, off = trainer_mat(source, (row["orig_width"], row["orig_height"]))
            write_atomic(target, data)  # replaces a symlink an earlier export left there, never its target
            written[why] += 1
            dropped += off
        else:
            skipped[why] += 1
    linked = [dest / name for name in (IMAGES_DIRNAME, SALIENCY_DIRNAME, FIXATION_DIRNAME) if (dest / name).is_dir()]
    notes = [f"annotations: {', '.join(map(str, linked))} (symlinks{', and written .mat files' if written else ''})"]
    if no_map:
        notes.append(f"{plural(no_map, 'image')} {agree(no_map, 'has', 'have')} no saliency map file to link")
    if written:
        whys = "; ".join(f"{count} with {why}" for why, count in sorted(written.items()))
        notes.append(
            f"{sum(written.values())} fixation files written in bounds, not linked (the trainer's loader cannot "
            f"read the dataset's as they are): {whys}"
        )
        notes.append(
            f"{dropped} fixation points outside the frame dropped from the written files (the rest kept, as "
            "uint16 pixels, subjects and their order as in the dataset's)"
        )
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
    """Why an image's fixation file cannot be the trainer's ``.mat`` as it is; None when it can (it is linked)."""
    action, why = fixation_file_plan(source)
    return None if action == LINK else why


def fixation_file_plan(source: ImageSource | None) -> tuple[str, str | None]:
    """What the export does with an image's fixation file: (LINK, None) when the loader reads it as it is,
    (WRITE, why not) when a copy it reads can be written (``trainer_mat``), (SKIP, why) when none can."""
    if source is None or not source.fixations_path:
        return SKIP, "the dataset has none"
    if source.fixations_format != SALICON_FORMAT:
        return SKIP, f"{source.fixations_format} fixations, not SALICON .mat files (the trainer reads only those)"
    if not Path(source.fixations_path).is_file():
        return SKIP, "missing from the dataset"
    import scipy.io

    try:
        raw = scipy.io.loadmat(source.fixations_path, variable_names=["resolution", "gaze"])
        points = salicon_fixations(source.fixations_path)
    except (OSError, ValueError, TypeError, NotImplementedError):  # GroundTruthError is a ValueError
        return SKIP, "unreadable .mat files"
    if not np.isfinite(points.xy).all():
        return SKIP, NOT_FINITE
    if np.asarray(raw["gaze"]).size == 1:
        return SKIP, ONE_SUBJECT
    if points.frame is None:
        return WRITE, NO_RESOLUTION
    if not _stored_as_integers(raw):
        return WRITE, NOT_INTEGERS
    # The loader marks map[int(y - 1), int(x - 1)]: a point off the map would index past it or wrap round.
    width, height = points.frame
    cells = np.trunc(points.xy).astype(np.int64)
    if ((cells < 0) | (cells >= (width, height))).any():
        return WRITE, OFF_MAP
    return LINK, None


def trainer_mat(source: ImageSource, image_size: tuple[int, int]) -> tuple[bytes, int]:
    """The bytes of a SALICON 2017 ``.mat`` the trainer's loader reads, made from ``source``'s (see the
    module's docstring), and how many fixation points it drops for lying outside the frame.

    The frame is the file's ``resolution`` (height, width), or ``image_size`` = (width, height) of
    the image where it has none. For a ``source`` that ``fixation_file_plan`` says to write.
    """
    import scipy.io

    mat = scipy.io.loadmat(source.fixations_path)
    variables = {name: value for name, value in mat.items() if not name.startswith("__")}
    width, height = salicon_fixations(source.fixations_path).frame or image_size
    gaze = variables["gaze"].copy()
    dropped = 0
    for index in np.ndindex(gaze.shape):
        xy = np.asarray(gaze["fixations"][index], dtype=np.float64).reshape(-1, 2)  # 1-based (x, y)
        inside = (xy >= 1).all(axis=1) & (xy[:, 0] < width + 1) & (xy[:, 1] < height + 1)
        dropped += int(np.count_nonzero(~inside))
        gaze["fixations"][index] = np.floor(xy[inside]).astype(np.uint16)
    variables["gaze"] = gaze
    variables["resolution"] = np.array([[height, width]], dtype=np.uint16)
    buffer = io.BytesIO()
    scipy.io.savemat(buffer, variables)
    return buffer.getvalue(), dropped


def _stored_as_integers(raw: dict) -> bool:
    """``resolution`` and every subject's ``fixations`` hold integers: the loader sizes its map with
    ``np.zeros([h, w])``, and tells a subject's single fixation (a pair) from a list of them by its
    integer type."""
    resolution, gaze = raw.get("resolution"), raw.get("gaze")
    if resolution is None or gaze is None or "fixations" not in (gaze.dtype.names or ()):
        return False
    arrays = [np.asarray(resolution), *(np.asarray(f) for f in gaze["fixations"].ravel())]
    return all(a.size == 0 or np.issubdtype(a.dtype, np.integer) for a in arrays)
