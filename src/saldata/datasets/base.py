"""Dataset readers: one class per dataset, one method each (``list_images``)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

from saldata.errors import DatasetError

IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff"})


@dataclass(frozen=True, slots=True)
class ImageSource:
    """One image to process, as the dataset names it."""

    dataset: str
    split: str
    image_id: str
    path: str
    # Ground truth, where the dataset has it for this split; the format names the loader.
    saliency_path: str | None = None
    fixations_path: str | None = None
    fixations_format: str | None = None
    category: str | None = None
    coco_id: int | None = None  # the COCO image id, where the dataset knows it (SALICON, Visual Genome)


class DatasetReader:
    """Base of all readers. Subclasses set ``name`` and ``layout`` and implement ``list_images``.

    ``list_images`` returns images in a stable order (the catalog's ``idx`` follows it) and
    raises ``DatasetError`` when the folder is not laid out as ``layout`` describes.
    """

    name: ClassVar[str]
    layout: ClassVar[str]
    splits: ClassVar[tuple[str, ...]] = ("all",)
    default_split: ClassVar[str] = "all"

    def __init__(self, root: Path | None):
        self.root = root

    def list_images(self, split: str) -> list[ImageSource]:
        raise NotImplementedError

    def fail(self, problem: str) -> DatasetError:
        return DatasetError(f"{problem}\nThe {self.name} dataset is expected to look like:\n{self.layout}")

    def require_dir(self, path: Path, what: str) -> Path:
        if not path.is_dir():
            raise self.fail(f"{what} not found: {path}")
        return path

    def require_root(self, split: str) -> Path:
        """The data root, after checking one was given, exists, and ``split`` is one of this dataset's."""
        if self.root is None:
            raise self.fail("--data-root is required for this dataset.")
        self.require_existing_root()
        if split not in self.splits:
            raise self.fail(f"Unknown split {split!r}; {self.name} has {', '.join(self.splits)}.")
        return self.root

    def root_setting(self) -> str:
        """The root as the user gave it, for messages."""
        return f"--data-root {self.root}"

    def require_existing_root(self) -> None:
        """A root that is not there is named as given: not as the first subfolder looked for in it."""
        if not self.root.is_dir():
            problem = "is not a folder" if self.root.exists() else "does not exist"
            raise DatasetError(
                f"{self.root_setting()} {problem}; give the folder that holds the {self.name} dataset "
                "(saldata datasets shows its layout)."
            )

    def source(self, split: str, path: Path, image_id: str | None = None, **ground_truth) -> ImageSource:
        """An ``ImageSource`` of this dataset; the id defaults to the file stem."""
        return ImageSource(self.name, split, image_id or path.stem, str(path.resolve()), **ground_truth)

    def images_in(self, folder: Path, what: str) -> list[Path]:
        """The image files directly in ``folder`` (sorted); a missing or empty folder is an error."""
        files = image_files(self.require_dir(folder, what))
        if not files:
            raise self.fail(f"No images in {folder}.")
        return files


def expected_file(folder: Path, name: str) -> str | None:
    """Where a ground-truth file must be if the dataset ships that folder; None when it does not."""
    return str((folder / name).resolve()) if folder.is_dir() else None


def image_files(folder: Path, recursive: bool = False) -> list[Path]:
    pattern = "**/*" if recursive else "*"
    return sorted(p for p in folder.glob(pattern) if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())
