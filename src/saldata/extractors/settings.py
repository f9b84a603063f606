"""What to capture: settings the driver builds and the model actor uses.

Kept free of torch so the driver and the CPU workers that decode and write never import it.
"""

from __future__ import annotations

from dataclasses import dataclass

from saldata.errors import ConfigError

HEADS_MODES = ("all", "mean")
# How the maps are computed (extractors/capture.py). chunk: generate uncaptured, then every row in one forward
# of the generated tokens; steps: record a row inside every decoding step (the path before chunk, kept for
# one release; tests hold the two equal).
DECODE_CHUNK, DECODE_STEPS = "chunk", "steps"
DECODE_MODES = (DECODE_CHUNK, DECODE_STEPS)
DEFAULT_MAX_NEW_TOKENS = 64
ALL_LAYERS = "all"
LAST_LAYER = (-1,)


@dataclass(frozen=True, slots=True)
class CaptureSettings:
    """What to capture. ``layers`` are decoder layers counted from 0 (negative values count from
    the end), or ``"all"``; ``resolve_layers`` turns them into the stored layer axis."""

    layers: tuple[int, ...] | str = LAST_LAYER
    heads: str = "all"
    max_new_tokens: int = DEFAULT_MAX_NEW_TOKENS
    force_new_tokens: bool = False  # benchmarks: suppress EOS so every image does equal work
    decode: str = DECODE_CHUNK

    def __post_init__(self):
        if self.heads not in HEADS_MODES:
            raise ConfigError(f"--heads must be 'all' or 'mean', not {self.heads!r}.")
        if self.decode not in DECODE_MODES:
            raise ConfigError(f"--decode must be 'chunk' or 'steps', not {self.decode!r}.")
        if self.max_new_tokens < 1:
            raise ConfigError("--max-new-tokens must be at least 1.")
        if self.layers != ALL_LAYERS and (not isinstance(self.layers, tuple) or not self.layers):
            raise ConfigError(f"--layers must be a comma list of layer numbers or 'all', not {self.layers!r}.")


def parse_layers(text: str) -> tuple[int, ...] | str:
    """``--layers``: ``all``, or a comma list of decoder layers such as ``0,4,-1``."""
    if text.strip().lower() == ALL_LAYERS:
        return ALL_LAYERS
    try:
        layers = tuple(int(part) for part in text.split(","))
    except ValueError:
        raise ConfigError(f"--layers {text!r} is not a comma list of layer numbers (e.g. 0,4,-1) or 'all'.") from None
    return layers


def layer_choice(layer: int | None, layers: str | None) -> tuple[int, ...] | str:
    """The layers asked for by ``--layer N`` or ``--layers LIST`` (one of them; the last layer by default)."""
    if layer is not None and layers is not None:
        raise ConfigError("Give --layer or --layers, not both (--layer N is --layers N).")
    if layers is not None:
        return parse_layers(layers)
    return LAST_LAYER if layer is None else (layer,)


def resolve_layers(layers: tuple[int, ...] | str, n_layers: int, model: str = "the model") -> tuple[int, ...]:
    """The stored layer axis: 0-based decoder layers, ascending, each once.

    Ascending order makes ``--layers 3,1`` and ``--layers 1,3`` the same output (and resumable as
    each other); the store's ``layers`` attribute says which layer each position holds.
    """
    if layers == ALL_LAYERS:
        return tuple(range(n_layers))
    bad = tuple(layer for layer in layers if not -n_layers <= layer < n_layers)
    if bad:
        raise LayerRangeError(bad, n_layers, model, "--layer" if len(layers) == 1 else "--layers")
    return tuple(sorted({layer % n_layers for layer in layers}))


class LayerRangeError(ConfigError):
    """Layers the model does not have. The settings hold layers, not the flag that gave them (``--layer N``
    is ``--layers N``), so the message guesses it from their count; the CLI, which knows, says ``given_as``."""

    def __init__(self, bad: tuple[int, ...], n_layers: int, model: str, flag: str):
        self.bad, self.n_layers, self.model, self.flag = bad, n_layers, model, flag
        super().__init__(
            f"{flag} {', '.join(map(str, bad))} is out of range: {model} has {n_layers} decoder layers "
            f"(0..{n_layers - 1}, or -1..-{n_layers} from the end)."
        )

    def __reduce__(self):  # pickled (a model actor raises it) with its fields, not its message
        return LayerRangeError, (self.bad, self.n_layers, self.model, self.flag)

    def given_as(self, flag: str) -> LayerRangeError:
        return LayerRangeError(self.bad, self.n_layers, self.model, flag)
