"""Dataset registry: ``--dataset NAME`` or ``--dataset folder:PATH``."""

from __future__ import annotations

from pathlib import Path

from saldata.datasets.base import DatasetReader, ImageSource
from saldata.datasets.cat2000 import Cat2000Reader
from saldata.datasets.demo import DemoReader
from saldata.datasets.folder import FolderReader
from saldata.datasets.mit1003 import Mit1003Reader
from saldata.datasets.osie import OsieReader
from saldata.datasets.salicon import SaliconReader
from saldata.datasets.visual_genome import VisualGenomeReader
from saldata.errors import DatasetError

DATASETS: dict[str, type[DatasetReader]] = {
    r.name: r
    for r in (
        SaliconReader,
        Mit1003Reader,
        OsieReader,
        Cat2000Reader,
        VisualGenomeReader,
        DemoReader,
        FolderReader,
    )
}


def dataset_spec(name: str) -> str:
    """How ``--dataset`` names a registered dataset: the folder reader takes its path after a colon."""
    return f"{name}:PATH" if name == FolderReader.name else name


def open_dataset(spec: str, data_root: Path | None = None) -> DatasetReader:
    """The reader for ``spec``: a registered name, or ``folder:PATH``."""
    name, _, path = spec.partition(":")
    if name not in DATASETS:
        raise DatasetError(f"Unknown dataset {spec!r}; choose one of {', '.join(map(dataset_spec, DATASETS))}.")
    if name == "folder":
        return FolderReader(Path(path).expanduser() if path else data_root)
    return DATASETS[name](data_root)


def list_images(spec: str, data_root: Path | None, split: str | None) -> list[ImageSource]:
    reader = open_dataset(spec, data_root)
    return reader.list_images(split or reader.default_split)


__all__ = ["DATASETS", "DatasetReader", "ImageSource", "dataset_spec", "list_images", "open_dataset"]
