"""Small fixtures that mimic each dataset's real on-disk format exactly (generated, never real data)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import scipy.io
from PIL import Image


def _picture(path: Path, size: tuple[int, int], seed: int, fmt: str = "JPEG") -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    w, h = size
    base = np.zeros((h, w, 3), np.uint8) + rng.integers(0, 255, 3).astype(np.uint8)
    base[h // 4 : h // 2, w // 3 : w // 2] = rng.integers(0, 255, 3)
    Image.fromarray(base).save(path, fmt, quality=90)


def _saliency(path: Path, size: tuple[int, int], seed: int) -> np.ndarray:
    path.parent.mkdir(parents=True, exist_ok=True)
    w, h = size
    yy, xx = np.mgrid[0:h, 0:w]
    cx, cy = np.random.default_rng(seed).integers([0, 0], [w, h])
    values = np.uint8(255 * np.exp(-((xx - cx) ** 2 + (yy - cy) ** 2) / (2.0 * (h / 6) ** 2)))
    Image.fromarray(values).save(path, quality=90)
    return values


def _points(size: tuple[int, int], n: int, seed: int) -> np.ndarray:
    """n distinct 0-based (x, y) points well inside the image."""
    w, h = size
    rng = np.random.default_rng(seed)
    cells = rng.choice(w * h, size=n, replace=False)
    return np.stack([cells % w, cells // w], axis=1)


def make_mit1003(root: Path) -> dict[str, np.ndarray]:
    """ALLSTIMULI/*.jpeg (longer side 1024), ALLFIXATIONMAPS/<stem>_fixMap.jpg and _fixPts.jpg."""
    truth = {}
    for i, (stem, size) in enumerate(
        [
            ("i05june05_static_street_boston_p1010764", (1024, 768)),
            ("i1182314083", (768, 1024)),
            ("istatic_submitted_i1", (1024, 681)),
        ]
    ):
        _picture(root / "ALLSTIMULI" / f"{stem}.jpeg", size, i)
        _saliency(root / "ALLFIXATIONMAPS" / f"{stem}_fixMap.jpg", size, i)
        points = _points(size, 30, i)
        binary = np.zeros((size[1], size[0]), np.uint8)
        binary[points[:, 1], points[:, 0]] = 255
        Image.fromarray(binary).save(root / "ALLFIXATIONMAPS" / f"{stem}_fixPts.jpg", quality=75)
        truth[stem] = points
    return truth


def make_osie(root: Path, n: int = 3) -> dict[str, np.ndarray]:
    """data/stimuli/1001.jpg.. (800x600) and data/eye/fixations.mat: n x 1 cell of
    {img, subjects: 15 x 1 cell of {fix_x, fix_y, fix_duration}}, 1-based; one subject fixates once."""
    entries = {}
    truth = {}
    for i in range(n):
        name = f"{1001 + i}.jpg"
        _picture(root / "data" / "stimuli" / name, (800, 600), i)
        subjects = [_points((800, 600), 1 if s == 0 else 4, 100 * i + s) + 1.0 for s in range(15)]  # 1-based
        entries[name] = subjects
        truth[Path(name).stem] = np.concatenate(subjects) - 1
    write_osie_fixations(root / "data" / "eye" / "fixations.mat", entries)
    return truth


def write_osie_fixations(
    path: Path, entries: dict[str, list[np.ndarray]], durations: dict[str, list[np.ndarray]] | None = None
) -> None:
    """OSIE's fixations.mat: image name -> one (n, 2) array of 1-based (x, y) per subject,
    saved as an n x 1 cell of {img, subjects: cell of {fix_x, fix_y, fix_duration}}; durations
    in ms per subject (200 each where not given)."""
    cells = np.empty((len(entries), 1), dtype=object)
    for i, (name, points) in enumerate(entries.items()):
        subjects = np.empty((len(points), 1), dtype=object)
        for s, p in enumerate(points):
            p = np.asarray(p, dtype=np.float64).reshape(-1, 2)
            duration = np.full(len(p), 200.0) if durations is None else np.asarray(durations[name][s], np.float64)
            subjects[s, 0] = {
                "fix_x": p[:, 0].reshape(1, -1),
                "fix_y": p[:, 1].reshape(1, -1),
                "fix_duration": duration.reshape(1, -1),
            }
        cells[i, 0] = {"img": name, "subjects": subjects}
    path.parent.mkdir(parents=True, exist_ok=True)
    scipy.io.savemat(path, {"fixations": cells})


def make_salicon(
    root: Path, fixations: dict[str, list[np.ndarray]], size: tuple[int, int] = (640, 480), split: str = "val"
) -> None:
    """images/<split>/<stem>.jpg, maps/<split>/<stem>.png and fixations/<split>/<stem>.mat holding
    exactly ``fixations[stem]`` (one array of 1-based (x, y) per subject), for hand-picked points."""
    for i, (stem, subjects) in enumerate(fixations.items()):
        _picture(root / "images" / split / f"{stem}.jpg", size, i)
        _saliency(root / "maps" / split / f"{stem}.png", size, i)
        write_salicon_gaze(root / "fixations" / split / f"{stem}.mat", subjects, size)


def write_salicon_gaze(path: Path, subjects: list[np.ndarray], size: tuple[int, int]) -> None:
    """A SALICON 2017 .mat with exactly these 1-based (x, y) fixations per subject: ``gaze``
    (subjects x 1 struct: location, timestamp, fixations) and ``resolution`` = (height, width).
    Numbers are integers (uint16), as SALICON stores them, unless a point is not a whole pixel."""
    points = [np.asarray(p, dtype=np.float64).reshape(-1, 2) for p in subjects]
    every = np.concatenate([*points, np.zeros((0, 2))])
    whole = bool(np.isfinite(every).all() and (every == np.round(every)).all() and (every >= 0).all())
    dtype = np.uint16 if whole and (every < 2**16).all() else np.float64
    gaze = np.zeros((len(subjects), 1), dtype=[("location", "O"), ("timestamp", "O"), ("fixations", "O")])
    for s, p in enumerate(points):
        gaze[s, 0] = (p.astype(dtype), np.arange(len(p), dtype=np.float64).reshape(-1, 1), p.astype(dtype))
    path.parent.mkdir(parents=True, exist_ok=True)
    scipy.io.savemat(path, {"image": path.stem, "resolution": np.array([size[1], size[0]], np.uint16), "gaze": gaze})


def make_cat2000(root: Path) -> dict[str, np.ndarray]:
    """trainSet/{Stimuli,FIXATIONMAPS,FIXATIONLOCS}/<Category>/NNN.*, an Output/ folder to skip, a testSet."""
    truth = {}
    size = (1920, 1080)
    for i, key in enumerate(["Action/001", "Action/002", "Affective/001"]):
        _picture(root / "trainSet" / "Stimuli" / f"{key}.jpg", size, i)
        _saliency(root / "trainSet" / "FIXATIONMAPS" / f"{key}.jpg", size, i)
        points = _points(size, 25, i)
        locs = np.zeros((size[1], size[0]))
        locs[points[:, 1], points[:, 0]] = 1
        (root / "trainSet" / "FIXATIONLOCS" / key).parent.mkdir(parents=True, exist_ok=True)
        scipy.io.savemat(root / "trainSet" / "FIXATIONLOCS" / f"{key}.mat", {"fixLocs": locs}, do_compression=True)
        truth[key] = points
    _picture(root / "trainSet" / "Stimuli" / "Action" / "Output" / "001_SaliencyMap.jpg", (64, 36), 9)
    _picture(root / "testSet" / "Stimuli" / "Action" / "101.jpg", size, 7)
    return truth


def rasterise(points: np.ndarray, orig: tuple[int, int], size: tuple[int, int]) -> set[tuple[int, int]]:
    """(row, col) cells of 0-based (x, y) points, written independently of saldata's loader."""
    return {
        (min(int(y * size[1] // orig[1]), size[1] - 1), min(int(x * size[0] // orig[0]), size[0] - 1))
        for x, y in points
    }
