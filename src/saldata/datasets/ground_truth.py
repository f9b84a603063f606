"""Ground truth: a dataset's saliency map and fixations, brought to the stored image size.

Saliency maps are resized like the image (bilinear, 0..255). Fixations are points in the
ORIGINAL image's pixel coordinates; they are rescaled to the stored size and rasterised into
a binary map, never resampled as a picture (resampling a sparse map loses points). Points off
the image are clipped to its border and counted; a NaN or Inf coordinate fails the image's
fixations instead (cast to an index it would pass for a real fixation at column 0).
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from saldata.datasets.base import ImageSource

GT_OK = "ok"  # everything the dataset has for this image was loaded
GT_NONE = "none"  # the dataset has no ground truth here (e.g. a test split): not an error
GT_FAILED = "failed"  # it should exist but could not be read; gt_error says why


@dataclass(slots=True)
class GroundTruth:
    status: str
    saliency: np.ndarray | None = None  # (height, width) uint8
    fixations: np.ndarray | None = None  # (height, width) uint8, 0/1
    n_fixations: int | None = None
    # Fixation points outside the original image (see fixations_off_image), clipped to its
    # border in ``fixations``; 0 when none, None where no fixations were loaded.
    n_fixations_clipped: int | None = None
    error: str | None = None


class GroundTruthError(ValueError):
    """A ground-truth file exists but is not what its format promises."""


def salicon_fixations(path: str) -> tuple[np.ndarray, tuple[int, int] | None]:
    """SALICON 2017 ``.mat``: ``gaze[s].fixations`` are 1-based (x, y) per subject.

    With MATLAB squeezing, a subject with one fixation is a 1-D pair and one with none an
    empty array; one subject makes ``gaze`` a scalar struct. Returns 0-based (x, y) points and
    the (width, height) the points refer to, from ``resolution`` (height, width) when present.
    """
    mat = _loadmat(path)
    if "gaze" not in mat:
        raise GroundTruthError(f"no 'gaze' variable (found {', '.join(sorted(_public(mat))) or 'nothing'})")
    points = []
    for subject in np.atleast_1d(mat["gaze"]).ravel():
        fixations = getattr(subject, "fixations", None)
        if fixations is None:
            raise GroundTruthError("a gaze entry has no 'fixations' field")
        points.append(np.asarray(fixations, dtype=np.float64).reshape(-1, 2))
    size = None
    if "resolution" in mat:
        height, width = (int(v) for v in np.asarray(mat["resolution"]).ravel()[:2])
        size = (width, height)
    return (np.concatenate(points) - 1.0 if points else np.zeros((0, 2))), size


def points_image_fixations(path: str) -> tuple[np.ndarray, tuple[int, int] | None]:
    """MIT1003 ``_fixPts.jpg``: a binary map saved as JPEG, so thresholded at half intensity.

    JPEG ringing around a point stays far below 128; a point pixel stays well above it.
    """
    from PIL import Image

    with Image.open(path) as image:
        values = np.asarray(image.convert("L"))
    rows, cols = np.nonzero(values > 127)
    return np.stack([cols, rows], axis=1).astype(np.float64), (values.shape[1], values.shape[0])


def binary_mat_fixations(path: str) -> tuple[np.ndarray, tuple[int, int] | None]:
    """CAT2000 ``FIXATIONLOCS/<Category>/NNN.mat``: key ``fixLocs``, a binary map the image's size."""
    mat = _loadmat(path)
    if "fixLocs" not in mat:
        raise GroundTruthError(f"no 'fixLocs' variable (found {', '.join(sorted(_public(mat))) or 'nothing'})")
    locs = np.asarray(mat["fixLocs"])
    if locs.ndim != 2:
        raise GroundTruthError(f"'fixLocs' has shape {locs.shape}, expected a 2-D map")
    rows, cols = np.nonzero(locs)
    return np.stack([cols, rows], axis=1).astype(np.float64), (locs.shape[1], locs.shape[0])


def osie_fixations(path_and_image: str) -> tuple[np.ndarray, tuple[int, int] | None]:
    """OSIE ``fixations.mat#1001.jpg``: that image's entry of the one .mat (15 subjects, 1-based).

    A subject with a single fixation has scalar ``fix_x``/``fix_y``; the size is the image's own.
    """
    path, _, image = path_and_image.partition("#")
    entries = _osie_entries(path)
    if image not in entries:
        raise GroundTruthError(f"no entry for {image}")
    return entries[image], None


@functools.lru_cache(maxsize=2)  # one load per worker process, not one per image
def _osie_entries(path: str) -> dict[str, np.ndarray]:
    mat = _loadmat(path)
    if "fixations" not in mat:
        raise GroundTruthError(f"no 'fixations' variable (found {', '.join(sorted(_public(mat))) or 'nothing'})")
    entries = {}
    for entry in np.atleast_1d(mat["fixations"]).ravel():
        name, subjects = getattr(entry, "img", None), getattr(entry, "subjects", None)
        if name is None or subjects is None:
            raise GroundTruthError("an entry lacks 'img' or 'subjects'")
        points = [
            np.stack([np.atleast_1d(s.fix_x), np.atleast_1d(s.fix_y)], axis=1).astype(np.float64)
            for s in np.atleast_1d(subjects).ravel()
        ]
        entries[str(name)] = (np.concatenate(points) if points else np.zeros((0, 2))) - 1.0
    return entries


FIXATION_LOADERS: dict[str, Callable[[str], tuple[np.ndarray, tuple[int, int] | None]]] = {
    "salicon": salicon_fixations,
    "points_image": points_image_fixations,
    "binary_mat": binary_mat_fixations,
    "osie": osie_fixations,
}


def load_ground_truth(source: ImageSource, orig_size: tuple[int, int], size: tuple[int, int]) -> GroundTruth:
    """The image's ground truth at ``size`` = (width, height); ``orig_size`` is the source image's."""
    if source.saliency_path is None and source.fixations_path is None:
        return GroundTruth(GT_NONE)
    gt = GroundTruth(GT_OK)
    problems = []
    if source.saliency_path is not None:
        try:
            gt.saliency = saliency_map(source.saliency_path, size)
        except Exception as exc:
            problems.append(f"{source.saliency_path}: cannot read saliency map ({_why(exc)})")
    if source.fixations_path is not None:
        try:
            points, points_size = FIXATION_LOADERS[source.fixations_format or "salicon"](source.fixations_path)
            not_finite = int(np.count_nonzero(~np.isfinite(points)))
            if not_finite:  # NaN would land on column 0 as a real fixation: none of this file's points are kept
                problems.append(f"{source.fixations_path}: {_not_finite(not_finite)}")
            else:
                frame = points_size or orig_size
                fixations, clipped = fixation_map(points, frame, size), fixations_off_image(points, frame)
                gt.fixations, gt.n_fixations, gt.n_fixations_clipped = fixations, len(points), clipped
        except Exception as exc:
            problems.append(f"{source.fixations_path}: cannot read fixations ({_why(exc)})")
    if problems:
        gt.status, gt.error = GT_FAILED, "; ".join(problems)
    return gt


def saliency_map(path: str, size: tuple[int, int]) -> np.ndarray:
    from PIL import Image

    with Image.open(path) as image:
        image.load()
        if image.mode in ("I;16", "I;16B", "I", "F"):  # 16-bit / float maps: rescale, do not clip
            values = np.asarray(image, dtype=np.float64)
            top = values.max()
            image = Image.fromarray(np.uint8(np.round(255 * values / top)) if top > 0 else np.uint8(values * 0))
        gray = image.convert("L")
        if gray.size != size:
            gray = gray.resize(size, Image.Resampling.BILINEAR)
        return np.asarray(gray, dtype=np.uint8)


def fixation_map(points: np.ndarray, points_size: tuple[int, int], size: tuple[int, int]) -> np.ndarray:
    """Rasterise 0-based (x, y) points given in a ``points_size`` image into a binary ``size`` map.

    Points outside the image are clipped to its border, as the SALICON tools do; the points
    clipped are those ``fixations_off_image`` counts. Non-finite points are refused, not cast.
    """
    if not np.isfinite(points).all():
        raise GroundTruthError(_not_finite(int(np.count_nonzero(~np.isfinite(points)))))
    width, height = size
    out = np.zeros((height, width), np.uint8)
    if len(points):
        cols = np.floor(points[:, 0] * width / points_size[0]).astype(np.int64).clip(0, width - 1)
        rows = np.floor(points[:, 1] * height / points_size[1]).astype(np.int64).clip(0, height - 1)
        out[rows, cols] = 1
    return out


def fixations_off_image(points: np.ndarray, points_size: tuple[int, int]) -> int:
    """How many 0-based (x, y) points lie outside the ``points_size`` = (width, height) image.

    The rule, in the original image's pixels (the loaders have already made 1-based data 0-based):
    a point is off the image iff ``x < 0 or x >= width or y < 0 or y >= height``; a point off on
    both axes counts once. These are the points ``fixation_map`` clips: for a stored size (w, h),
    ``floor(x * w / width)`` lies in [0, w) exactly when x lies in [0, width), so the count does
    not depend on the stored size. (A float a hair below ``width`` whose scaled index rounds up
    to w is counted as inside, and the clip puts it in the last column, where it belongs.)
    """
    width, height = points_size
    x, y = points[:, 0], points[:, 1]
    return int(np.count_nonzero((x < 0) | (x >= width) | (y < 0) | (y >= height)))


def _not_finite(count: int) -> str:
    return f"{count} fixation coordinate{'s are' if count != 1 else ' is'} not finite (NaN or Inf)"


def _loadmat(path: str) -> dict:
    import scipy.io

    return scipy.io.loadmat(path, squeeze_me=True, struct_as_record=False)


def _public(mat: dict) -> list[str]:
    return [k for k in mat if not k.startswith("__")]


def _why(exc: Exception) -> str:
    return str(exc) if isinstance(exc, GroundTruthError) else f"{type(exc).__name__}: {exc}"
