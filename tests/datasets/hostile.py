"""Every kind of bad file a real folder holds, generated; and what saldata must make of each."""

from __future__ import annotations

import io
import struct
import zlib
from pathlib import Path

import numpy as np
from PIL import Image

# file name -> None (processed) or the words its failure reason must contain
EXPECTED: dict[str, str | None] = {
    "corrupt.jpg": "not an image",
    "truncated.jpg": "truncated image data",
    "empty.jpg": "empty file (0 bytes)",
    "notes.jpg": "not an image",
    "bomb.png": "decompression bomb refused",
    "unreadable.jpg": "permission denied",
    "cmyk.jpg": None,
    "alpha.png": None,
    "gray16.png": None,
    "gray.jpg": None,
    "palette.png": None,
    "palette_transparent.png": None,
    "one_pixel.png": None,
    "exif_rotated.jpg": None,
    "with space.jpg": None,
    "ünïcödé.jpg": None,
    "a/same.jpg": None,
    "b/same.jpg": None,
}


def jpeg_bytes(size=(640, 480), seed=0, **save) -> bytes:
    pixels = np.random.default_rng(seed).integers(0, 255, (size[1], size[0], 3), dtype=np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, "JPEG", **save)
    return buffer.getvalue()


def png_header_only(width: int, height: int) -> bytes:
    """A tiny PNG whose header claims width x height: a decompression bomb's calling card."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\x00" * 64)) + chunk(b"IEND", b"")
    )


# As stored, before the EXIF tag turns it: top-left, top-right, bottom-left, bottom-right.
EXIF_QUADRANTS = ((255, 0, 0), (0, 255, 0), (0, 0, 255), (255, 255, 255))


def exif_rotated(path: Path) -> np.ndarray:
    """A 640x480 JPEG whose EXIF orientation (6) says: rotate 90 degrees clockwise to view.

    Its quadrants have four different colours, so the picture differs along both axes: a
    transpose, the opposite rotation or a flip each put a different colour in some corner, and
    none can pass for the rotation. Returns the upright pixels a viewer shows (480 wide, 640 tall).
    """
    stored = np.zeros((480, 640, 3), np.uint8)
    for (rows, cols), colour in zip(
        [(slice(0, 240), slice(0, 320)), (slice(0, 240), slice(320, None)), (slice(240, None), slice(0, 320)),
         (slice(240, None), slice(320, None))], EXIF_QUADRANTS, strict=True
    ):  # fmt: skip
        stored[rows, cols] = colour
    exif = Image.Exif()
    exif[0x0112] = 6
    Image.fromarray(stored).save(path, "JPEG", quality=95, exif=exif.tobytes())
    return np.rot90(stored, k=-1)


def make_hostile_folder(root: Path) -> None:
    root.mkdir(parents=True)
    good = jpeg_bytes()
    data = bytearray(good)
    data[2:200] = bytes(198)  # markers and tables wiped
    (root / "corrupt.jpg").write_bytes(bytes(data))
    (root / "truncated.jpg").write_bytes(good[: len(good) // 2])
    (root / "empty.jpg").write_bytes(b"")
    (root / "notes.jpg").write_text("shopping list: eggs, milk\n")
    (root / "bomb.png").write_bytes(png_header_only(20000, 20000))
    (root / "unreadable.jpg").write_bytes(good)
    (root / "unreadable.jpg").chmod(0)
    Image.new("CMYK", (300, 200), (0, 255, 255, 0)).save(root / "cmyk.jpg", quality=95)  # pure red in CMYK
    Image.new("RGBA", (200, 100), (0, 0, 255, 0)).save(root / "alpha.png")  # fully transparent blue
    Image.fromarray(np.full((120, 160), 40000, np.uint16)).save(root / "gray16.png")
    Image.new("L", (640, 480), 77).save(root / "gray.jpg")
    Image.new("RGB", (90, 60), (0, 128, 0)).convert("P", palette=Image.Palette.ADAPTIVE).save(root / "palette.png")
    transparent = Image.new("P", (40, 40), 0)
    transparent.putpalette([0, 0, 0, 255, 0, 0] + [0] * 762)
    transparent.save(root / "palette_transparent.png", transparency=0)
    Image.new("RGB", (1, 1), (10, 200, 30)).save(root / "one_pixel.png")
    exif_rotated(root / "exif_rotated.jpg")
    for name in ("with space.jpg", "ünïcödé.jpg", "a/same.jpg", "b/same.jpg"):
        (root / name).parent.mkdir(exist_ok=True)
        (root / name).write_bytes(jpeg_bytes(seed=len(name)))


def make_fail_fast_folder(root: Path) -> dict[str, str | None]:
    """Good images, then a run of bad files that fail before the model, then good ones again.

    Returns file name -> None or failure words, in the folder's (sorted) order. Cut into shards of
    two, the first bad file shares its shard with a good image, which the model must run, while
    the next shards hold bad files only: they need no model time and write less, so they reach
    their commits first unless the run orders its stop. Only such a run names the first bad file
    and commits no shard after it.
    """
    root.mkdir(parents=True)
    good = jpeg_bytes()
    files: dict[str, tuple[bytes, str | None]] = {
        "00_good.jpg": (jpeg_bytes(seed=1), None),
        "01_good.jpg": (jpeg_bytes(seed=2), None),
        "02_good.jpg": (jpeg_bytes(seed=3), None),
        "03_empty.jpg": (b"", "empty file (0 bytes)"),
        "04_notes.jpg": (b"shopping list: eggs, milk\n", "not an image"),
        "05_truncated.jpg": (good[: len(good) // 2], "truncated image data"),
        "06_bomb.png": (png_header_only(20000, 20000), "decompression bomb refused"),
        "07_empty.jpg": (b"", "empty file (0 bytes)"),
        "08_notes.jpg": (b"not a picture\n", "not an image"),
        "09_empty.jpg": (b"", "empty file (0 bytes)"),
        "10_good.jpg": (jpeg_bytes(seed=4), None),
        "11_good.jpg": (jpeg_bytes(seed=5), None),
    }
    for name, (data, _) in files.items():
        (root / name).write_bytes(data)
    return {name: reason for name, (_, reason) in files.items()}
