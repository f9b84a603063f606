"""Ground truth: a dataset's saliency map and fixations, brought to the stored image size.

Saliency maps are resized like the image (bilinear, 0..255). Fixations are points in the
ORIGINAL image's pixel coordinates; they are rescaled to the stored size and rasterised into
a binary map, never resampled as a picture (resampling a sparse map loses points). Points off
the image are clipped to its border and counted; a NaN or Inf coordinate fails the image's
fixations instead (cast to an index it would pass for a real fixation at column 0), as does a
frame (SALICON's ``resolution``) that is not a positive size. The points
themselves, with their subject, order and duration, are kept for the catalog's fixations table.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass, replace

import numpy as np

from saldata.datasets.base import ImageSource

GT_OK = "ok"  # everything the dataset has for this image was loaded
GT_NONE = "none"  # the dataset has no ground truth here (e.g. a test split): not an error
GT_FAILED = "failed"  # it should exist but could not be read; gt_error says why


class GroundTruthError(ValueError):
    """A ground-truth file exists but is not what its format promises."""


@dataclass(frozen=True, slots=True, eq=False)  # arrays: no field-wise ==
class FixationPoints:
    """One image's fixations as its file holds them: every point, in file order, duplicates kept.

    ``xy`` are 0-based (x, y) in the pixels of a ``frame`` = (width, height) image (None: the
    source image's own size, filled in by ``load_ground_truth``). ``subject`` numbers subjects
    0, 1, ... in their order in the file (a subject without fixations still takes its number);
    None where the format has no subjects (a binary map). ``duration_ms`` is None where the
    format has no durations, NaN for a point whose subject lacks them.
    """

    xy: np.ndarray  # (n, 2) float64
    frame: tuple[int, int] | None = None
    subject: np.ndarray | None = None  # (n,) int32
    duration_ms: np.ndarray | None = None  # (n,) float64

    def __post_init__(self):
        n = len(self.xy)
        if self.xy.shape != (n, 2) or any(a is not None and a.shape != (n,) for a in (self.subject, self.duration_ms)):
            raise GroundTruthError(f"fixation arrays disagree in length ({self._shapes()})")

    def __len__(self) -> int:
        return len(self.xy)

    @property
    def fixation_index(self) -> np.ndarray:
        """Each point's order within its subject (within the image where there are no subjects)."""
        if self.subject is None:
            return np.arange(len(self), dtype=np.int32)
        index = np.zeros(len(self), np.int32)
        for s in np.unique(self.subject):
            mine = self.subject == s
            index[mine] = np.arange(np.count_nonzero(mine))
        return index

    def _shapes(self) -> str:
        named = {"xy": self.xy, "subject": self.subject, "duration_ms": self.duration_ms}
        return ", ".join(f"{k} {v.shape}" for k, v in named.items() if v is not None)


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
    # The points behind ``fixations`` (their frame filled in) and the same points at the stored
    # size (``stored_points``: floor gives the pixels set in ``fixations``); None exactly when it is.
    points: FixationPoints | None = None
    stored_xy: np.ndarray | None = None


def salicon_fixations(path: str) -> FixationPoints:
    """SALICON 2017 ``.mat``: ``gaze[s].fixations`` are 1-based (x, y) per subject.

    With MATLAB squeezing, a subject with one fixation is a 1-D pair and one with none an
    empty array; one subject makes ``gaze`` a scalar struct. The frame is ``resolution``
    (height, width) when present. The file has no fixation durations (``timestamp`` times the
    raw gaze samples of ``location``, not the fixations).
    """
    mat = _loadmat(path)
    if "gaze" not in mat:
        raise GroundTruthError(f"no 'gaze' variable (found {', '.join(sorted(_public(mat))) or 'nothing'})")
    points = []
    for subject in np.atleast_1d(mat["gaze"]).ravel():
        fixations = getattr(subject, "fixations", None)
        if fixations is None:
            raise GroundTruthError("a gaze entry has no 'fixations' field")
        points.append(np.asarray(fixations, dtype=np.float64).reshape(-1, 2) - 1.0)
    size = _salicon_frame(mat["resolution"]) if "resolution" in mat else None
    return _by_subject(points, None, size)


def _salicon_frame(resolution) -> tuple[int, int]:
    """``resolution`` (height, width) as a (width, height) frame, refused unless both are finite and
    positive: points are scaled by it, so a 0x0 or negative frame would put every one in a corner."""
    values = np.asarray(resolution, dtype=np.float64).ravel()
    if len(values) < 2 or not (np.isfinite(values[:2]).all() and (values[:2] >= 1).all()):
        shown = ", ".join(f"{v:g}" for v in values)
        raise GroundTruthError(f"'resolution' is [{shown}]: not a positive (height, width)")
    height, width = (int(v) for v in values[:2])
    return width, height


def points_image_fixations(path: str) -> FixationPoints:
    """MIT1003 ``_fixPts.jpg``: a binary map saved as JPEG, so thresholded at half intensity.

    JPEG ringing around a point stays far below 128; a point pixel stays well above it. A map
    has no subjects: points come in row-major order of their pixels, one per pixel.
    """
    from PIL import Image

    with Image.open(path) as image:
        values = np.asarray(image.convert("L"))
    return _map_points(values > 127)


def binary_mat_fixations(path: str) -> FixationPoints:
    """CAT2000 ``FIXATIONLOCS/<Category>/NNN.mat``: key ``fixLocs``, a binary map the image's size."""
    mat = _loadmat(path)
    if "fixLocs" not in mat:
        raise GroundTruthError(f"no 'fixLocs' variable (found {', '.join(sorted(_public(mat))) or 'nothing'})")
    locs = np.asarray(mat["fixLocs"])
    if locs.ndim != 2:
        raise GroundTruthError(f"'fixLocs' has shape {locs.shape}, expected a 2-D map")
    return _map_points(locs != 0)


def osie_fixations(path_and_image: str) -> FixationPoints:
    """OSIE ``fixations.mat#1001.jpg``: that image's entry of the one .mat (15 subjects, 1-based).

    A subject with a single fixation has scalar ``fix_x``/``fix_y``/``fix_duration``; the frame
    is the image's own. ``fix_duration`` is in milliseconds.
    """
    path, _, image = path_and_image.partition("#")
    entries = _osie_entries(path)
    if image not in entries:
        raise GroundTruthError(f"no entry for {image}")
    return entries[image]


@functools.lru_cache(maxsize=2)  # one load per worker process, not one per image
def _osie_entries(path: str) -> dict[str, FixationPoints]:
    mat = _loadmat(path)
    if "fixations" not in mat:
        raise GroundTruthError(f"no 'fixations' variable (found {', '.join(sorted(_public(mat))) or 'nothing'})")
    entries = {}
    for entry in np.atleast_1d(mat["fixations"]).ravel():
        name, subjects = getattr(entry, "img", None), getattr(entry, "subjects", None)
        if name is None or subjects is None:
            raise GroundTruthError("an entry lacks 'img' or 'subjects'")
        points, durations = [], []
        for s in np.atleast_1d(subjects).ravel():
            xy = np.stack([np.atleast_1d(s.fix_x), np.atleast_1d(s.fix_y)], axis=1).astype(np.float64) - 1.0
            duration = getattr(s, "fix_duration", None)  # a subject without them: unknown, not refused
            points.append(xy)
            durations.append(np.full(len(xy), np.nan) if duration is None else np.atleast_1d(duration).astype(float))
        try:
            entries[str(name)] = _by_subject(points, durations, None)
        except GroundTruthError as exc:
            raise GroundTruthError(f"entry {name}: {exc}") from None
    return entries


def _by_subject(points: list[np.ndarray], durations: list[np.ndarray] | None, frame) -> FixationPoints:
    """One FixationPoints from each subject's 0-based (n, 2) points (and durations), in file order."""
    subject = np.repeat(np.arange(len(points), dtype=np.int32), [len(p) for p in points])
    xy = np.concatenate(points) if points else np.zeros((0, 2))
    duration = None if durations is None else (np.concatenate(durations) if durations else np.zeros(0))
    return FixationPoints(xy, frame, subject, duration)


def _map_points(mask: np.ndarray) -> FixationPoints:
    rows, cols = np.nonzero(mask)  # row-major order
    return FixationPoints(np.stack([cols, rows], axis=1).astype(np.float64), (mask.shape[1], mask.shape[0]))


FIXATION_LOADERS: dict[str, Callable[[str], FixationPoints]] = {
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
            points = FIXATION_LOADERS[source.fixations_format or "salicon"](source.fixations_path)
            not_finite = int(np.count_nonzero(~np.isfinite(points.xy)))
            if not_finite:  # NaN would land on column 0 as a real fixation: none of this file's points are kept
                problems.append(f"{source.fixations_path}: {_not_finite(not_finite)}")
            else:
                points = replace(points, frame=points.frame or orig_size)
                gt.points, gt.stored_xy = points, stored_points(points.xy, points.frame, size)
                gt.fixations, gt.n_fixations = mark_pixels(gt.stored_xy, size), len(points)
                gt.n_fixations_clipped = fixations_off_image(points.xy, points.frame)
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
    return mark_pixels(stored_points(points, points_size, size), size)


def stored_points(points: np.ndarray, points_size: tuple[int, int], size: tuple[int, int]) -> np.ndarray:
    """0-based (x, y) points of a ``points_size`` image as float points of the ``size`` image.

    Each coordinate is scaled (``x * width / points_width``; left as it is where the width is
    the same, so a point of an image stored at its original size keeps its exact value), then
    a point off the image is clipped into it: below 0 to 0 (-0.0 too), at or past ``width`` to
    ``width - 1``. So ``floor`` of a stored point is always a pixel of the image, the one
    ``fixation_map`` marks for it.
    """
    out = np.empty(points.shape, np.float64)
    for axis in (0, 1):
        values, length = points[:, axis].astype(np.float64), size[axis]
        if length != points_size[axis]:
            values = values * length / points_size[axis]
        out[:, axis] = np.where(values <= 0, 0.0, np.where(values >= length, length - 1.0, values))
    return out


def mark_pixels(stored: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """The binary (height, width) map of points already brought into a ``size`` image (``stored_points``)."""
    width, height = size
    out = np.zeros((height, width), np.uint8)
    if len(stored):
        out[np.floor(stored[:, 1]).astype(np.int64), np.floor(stored[:, 0]).astype(np.int64)] = 1
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
