"""The full, typed configuration of one extraction run; saved with its output."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

from saldata.errors import ConfigError
from saldata.extractors.batching import AUTO, parse_batch_size
from saldata.extractors.image_inputs import PLACES
from saldata.extractors.models import ModelSettings
from saldata.extractors.prompts import Prompt, resolve_prompt
from saldata.extractors.settings import CaptureSettings
from saldata.pipelines.host_memory import parse_bytes

DEFAULT_IMAGE_SIZE = (640, 480)
DEFAULT_SHARD_SIZE = 64
DEFAULT_PREFETCH_SHARDS = 2


def format_size(size: tuple[int, int]) -> str:
    return f"{size[0]}x{size[1]}"


def parse_size(text: str) -> tuple[int, int]:
    """'640x480' -> (640, 480)."""
    try:
        width, height = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise ConfigError(f"--size must look like WIDTHxHEIGHT (e.g. 640x480), not {text!r}.") from None
    if width < 14 or height < 14:
        raise ConfigError(f"--size {text} is smaller than one vision patch.")
    return width, height


@dataclass(frozen=True, slots=True)
class ExtractConfig:
    dataset: str
    out: Path
    model: ModelSettings
    capture: CaptureSettings = field(default_factory=CaptureSettings)
    prompt: Prompt = field(default_factory=resolve_prompt)
    data_root: Path | None = None
    split: str | None = None
    image_size: tuple[int, int] = DEFAULT_IMAGE_SIZE
    batch_size: int | str = AUTO  # images per model call, or auto (extractors/batching.py)
    shard_size: int = DEFAULT_SHARD_SIZE
    limit: int | None = None
    address: str | None = None
    num_actors: int | None = None  # default: one per GPU, or one on CPU
    fail_fast: bool = False  # stop at the first image that fails (its shard is committed first)
    prefetch_shards: int = DEFAULT_PREFETCH_SHARDS  # per model actor; 1 = no overlap of decoding and model
    image_processor_on: str = "auto"  # workers, actor, or auto: workers when the model is on a GPU
    # Bytes the maps may take on the host per model actor (pipelines/host_memory.py); None: the default share
    host_memory: int | str | None = None

    def __post_init__(self):
        object.__setattr__(self, "batch_size", parse_batch_size(self.batch_size))  # "4" from a CLI is 4
        object.__setattr__(self, "host_memory", parse_bytes(self.host_memory))
        if self.host_memory is not None and self.host_memory < 1:
            raise ConfigError("--host-memory must be more than 0 bytes.")
        if self.shard_size < 1:
            raise ConfigError("--shard-size must be at least 1.")
        if self.limit is not None and self.limit < 1:
            raise ConfigError(f"--limit must be at least 1 (the first N images), not {self.limit}.")
        if self.num_actors is not None and self.num_actors < 1:
            raise ConfigError(f"--num-actors must be at least 1, not {self.num_actors}.")
        if self.prefetch_shards < 1:
            raise ConfigError("--prefetch-shards must be at least 1.")
        if self.image_processor_on not in PLACES:
            raise ConfigError(
                f"--image-processor-on must be one of {', '.join(PLACES)}, not {self.image_processor_on!r}."
            )
        if not self.prompt.text:
            raise ConfigError("The prompt is empty.")

    def to_json(self) -> str:
        return json.dumps(asdict(self), default=str, indent=2)
