"""The run's image list, in idx order, and its digest: what a run and a resume must agree on."""

from __future__ import annotations

import hashlib

from saldata.datasets import ImageSource, list_images
from saldata.pipelines.config import ExtractConfig


def list_sources(config: ExtractConfig) -> list[ImageSource]:
    """The run's images in idx order; fails fast, before anything heavy, on a bad dataset."""
    sources = list_images(config.dataset, config.data_root, config.split)
    return sources[: config.limit] if config.limit is not None else sources


def sources_digest(sources: list[ImageSource]) -> str:
    """Which images, in which order: a resumed output must be made of the same list."""
    listing = "\n".join(f"{s.dataset}\t{s.split}\t{s.image_id}" for s in sources)
    return hashlib.sha256(listing.encode()).hexdigest()[:16]
