"""What to capture: settings the driver builds and the model actor uses.

Kept free of torch so the driver and the CPU workers that decode and write never import it.
"""

from __future__ import annotations

from dataclasses import dataclass

from saldata.errors import ConfigError

HEADS_MODES = ("all", "mean")
DEFAULT_MAX_NEW_TOKENS = 64


@dataclass(frozen=True, slots=True)
class CaptureSettings:
    """What to capture. ``layer`` counts decoder layers from 0; negative values count from the end."""

    layer: int = -1
    heads: str = "all"
    max_new_tokens: int = DEFAULT_MAX_NEW_TOKENS
    force_new_tokens: bool = False  # benchmarks: suppress EOS so every image does equal work

    def __post_init__(self):
        if self.heads not in HEADS_MODES:
            raise ConfigError(f"--heads must be 'all' or 'mean', not {self.heads!r}.")
        if self.max_new_tokens < 1:
            raise ConfigError("--max-new-tokens must be at least 1.")
