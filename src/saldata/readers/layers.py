"""Which captured layer a reader means: ``layer=`` in every reader resolves here.

A store of schema 4 or later has a ``layer`` axis right after ``token`` on the per-token arrays
and a ``layers`` attribute naming the decoder layer at each position; an older store captured
one layer (attribute ``layer``) and has no such axis. Readers name a layer by its decoder
layer number (negative counts from the model's last layer) and default to the last captured.
"""

from __future__ import annotations

from dataclasses import dataclass

from saldata.errors import ConfigError, StoreError

PER_TOKEN_ARRAYS = ("hidden", "attn_base", "attn_highres")


@dataclass(frozen=True, slots=True)
class StoredLayers:
    layers: tuple[int, ...]  # decoder layer at each position of the layer axis
    n_decoder_layers: int | None  # the model's decoder layers (None: an older store does not say)
    has_axis: bool

    @classmethod
    def of(cls, attrs: dict) -> StoredLayers:
        if "layers" in attrs:
            return cls(tuple(int(x) for x in attrs["layers"]), attrs.get("n_decoder_layers"), True)
        if "layer" in attrs:
            return cls((int(attrs["layer"]),), None, False)
        raise StoreError("the store's attributes name no captured layer (neither 'layers' nor 'layer')")

    def position(self, layer: int | None = None) -> int:
        """Position on the layer axis of decoder layer ``layer`` (None: the last captured)."""
        if layer is None:
            return len(self.layers) - 1
        n = self.n_decoder_layers
        if n and not -n <= layer < n:  # never wrap: -40 on a 32-layer model is a typo, not layer 24
            raise ConfigError(
                f"layer {layer} is out of range: the model has {n} decoder layers (0..{n - 1}, or -1..-{n} from "
                f"the end); this output holds {self.described()}."
            )
        wanted = layer % n if layer < 0 and n else layer
        if wanted not in self.layers:
            raise ConfigError(f"layer {layer} was not captured; this output holds {self.described()}.")
        return self.layers.index(wanted)

    def resolve(self, layer: int | None = None) -> int:
        """The decoder layer number ``layer`` means (None: the last captured)."""
        return self.layers[self.position(layer)]

    def described(self) -> str:
        """``layer 1`` or ``layers 0, 1``."""
        return f"layer{'s' if len(self.layers) > 1 else ''} {', '.join(map(str, self.layers))}"

    def images_at(self, block, layer: int | None = None):
        """A block of whole images (image, token, [layer,] ...) at one layer; works on dask arrays too."""
        position = self.position(layer)  # checks the layer was captured, axis or not
        return block[:, :, position] if self.has_axis else block

    def rows(self, array, idx: int, n: int, layer: int | None = None):
        """``array[idx, :n]`` at one layer: the layer axis dropped, only that layer's chunks read."""
        position = self.position(layer)  # checks the layer was captured, axis or not
        return array[idx, :n, position] if self.has_axis else array[idx, :n]
