"""Capture chosen layers' last-row attention and hidden state at every decoding step.

Asking ``generate`` for attentions under eager attention materialises every layer's full
(heads x seq x seq) matrix at prefill: ~11 GB per image for the 8B model. We only need, for
each chosen layer, the row of the query that produces the next token. So the model runs with
a registered attention implementation that forwards every call to the fast kernel (sdpa or
flash) and, for each module carrying a recorder, also computes softmax(q_last . K^T) for that
single query row: O(heads x seq) extra work per step and layer, so many layers cost one
prefill, not one each. Forward hooks take the chosen layers' hidden states at the last position.

The recorder works in one of two ways (``decode``, settings.py). ``steps``: attached to
``generate``, it records the last query row of every forward, one row per decoding step.
``chunk``: ``generate`` runs uncaptured, then ONE forward of the generated tokens over the cached
prompt computes every row at once (row t is the query at position P + t - 1; row 0 is the
prompt's last query), with the recorder taking every query row of that forward. Causal masking
gives each row exactly the keys its decoding step saw, so the two agree to float rounding; the
chunk needs no per-step Python work in the capture.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

CAPTURE_PREFIX = "saldata_capture"
_RECORDER_ATTR = "_saldata_recorder"


def capture_implementation(base: str = "sdpa") -> str:
    """Register (once) and return the attention implementation name wrapping ``base``."""
    from transformers import AttentionInterface
    from transformers.masking_utils import ALL_MASK_ATTENTION_FUNCTIONS, AttentionMaskInterface

    name = f"{CAPTURE_PREFIX}_{base}"
    if name in AttentionInterface._global_mapping:
        return name
    base_forward = AttentionInterface._global_mapping[base]

    def attention(module, query, key, value, attention_mask, *args, **kwargs):
        slot = getattr(module, _RECORDER_ATTR, None)
        if slot is not None:
            recorder, position = slot
            recorder.record_attention(position, query, key, attention_mask, kwargs.get("scaling"))
        return base_forward(_AsImplementation(module, base), query, key, value, attention_mask, *args, **kwargs)

    AttentionInterface.register(name, attention)
    AttentionMaskInterface.register(name, ALL_MASK_ATTENTION_FUNCTIONS._global_mapping[base])
    return name


class _AsImplementation:
    """An attention module as the wrapped kernel must see it: under the kernel's own implementation
    name. transformers' flash path looks its kernel up by ``module.config._attn_implementation``,
    which names the capture; unknown there, it would be fetched from the Hub as a kernel repo."""

    __slots__ = ("_module", "config")

    def __init__(self, module, implementation: str):
        self._module = module
        self.config = _ConfigAs(module.config, implementation)

    def __getattr__(self, name):
        return getattr(self._module, name)


class _ConfigAs:
    __slots__ = ("_config", "_attn_implementation")

    def __init__(self, config, implementation: str):
        self._config = config
        self._attn_implementation = implementation

    def __getattr__(self, name):
        return getattr(self._config, name)


@dataclass(slots=True)
class CaptureBuffers:
    """Where a batch's captured rows go: (batch, steps, layers, [heads,] ...) tensors reserved for the
    whole generation, written by step index. Their dtype is the dtype they are kept in (the store's
    float16 in the pipeline), so a batch's maps never exist in float32 outside one step's work.

    ``cells`` holds both grids side by side, base cells first, so a step's attention is one gather
    and one copy per layer; ``attn_base`` and ``attn_highres`` are its two halves. On a CPU the
    halves may instead be the caller's own arrays (``cells`` is then None) and a step writes both.
    """

    hidden: torch.Tensor  # (batch, steps, layers, hidden)
    attn_base: torch.Tensor  # (batch, steps, layers, heads, n_base)
    attn_highres: torch.Tensor  # (batch, steps, layers, heads, n_highres)
    cells: torch.Tensor | None = None  # (batch, steps, layers, heads, n_base + n_highres)

    @classmethod
    def on_device(cls, shapes: dict[str, tuple[int, ...]], dtype, device) -> CaptureBuffers:
        """Buffers for ``shapes`` (as the host arrays, grids flattened), the two grids in one tensor."""
        n_base = shapes["attn_base"][-1]
        cells = torch.empty(
            (*shapes["attn_base"][:-1], n_base + shapes["attn_highres"][-1]), dtype=dtype, device=device
        )
        hidden = torch.empty(shapes["hidden"], dtype=dtype, device=device)
        return cls(hidden, cells[..., :n_base], cells[..., n_base:], cells)

    def items(self):
        return (("hidden", self.hidden), ("attn_base", self.attn_base), ("attn_highres", self.attn_highres))

    def write_attention(self, steps: slice, position: int, cells: torch.Tensor) -> None:
        """Some steps' attention of one layer over both grids' cells, (batch, steps, heads, n_base + n_highres)."""
        if self.cells is not None:
            self.cells[:, steps, position].copy_(cells)
            return
        n_base = self.attn_base.shape[-1]
        self.attn_base[:, steps, position].copy_(cells[..., :n_base])
        self.attn_highres[:, steps, position].copy_(cells[..., n_base:])

    def clear_rows_from(self, rows: torch.Tensor) -> None:
        """Set every step at or past ``rows[b]`` to 0 (the store's fill value): steps a finished image
        ran on while others generated, and steps never reached when generation stopped early."""
        steps = self.hidden.shape[1]
        past = torch.arange(steps, device=rows.device)[None, :] >= rows[:, None]  # (batch, steps)
        for tensor in (
            self.hidden,
            *((self.cells,) if self.cells is not None else (self.attn_base, self.attn_highres)),
        ):
            tensor.masked_fill_(past.view(*past.shape, *(1,) * (tensor.dim() - 2)), 0)


@dataclass(slots=True)
class StepRecorder:
    """Writes, per decoding step and captured layer, the last-row attention and hidden state.

    ``cell_positions`` (batch, n_base + n_highres) are the key positions of the base grid's cells
    then the high-res grid's (the layout's cells among the image tokens, padding and newline
    tokens left out). Each row is written at its step's index into ``buffers``: no per-step
    lists, no host work. ``every_query``: take every query row of a forward as consecutive steps
    (the ``chunk`` decode), not only the last one.
    """

    cell_positions: torch.Tensor
    mean_heads: bool
    buffers: CaptureBuffers
    every_query: bool = False
    attention_steps: list[int] = field(init=False)  # rows written so far, per layer position
    hidden_steps: list[int] = field(init=False)

    def __post_init__(self):
        layers = self.buffers.hidden.shape[2]
        self.attention_steps = [0] * layers
        self.hidden_steps = [0] * layers

    def record_attention(self, position: int, query, key, attention_mask, scaling) -> None:
        batch, heads, _, head_dim = query.shape
        kv_heads, n_keys = key.shape[1], key.shape[-2]
        rows = query if self.every_query else query[:, :, -1:, :]
        n = rows.shape[2]
        scaling = head_dim**-0.5 if scaling is None else scaling
        # Group query heads by their key head instead of repeating K (GQA): head h uses kv head h // rep.
        q = rows.reshape(batch, kv_heads, (heads // kv_heads) * n, head_dim)
        scores = torch.matmul(q, key.transpose(2, 3)).reshape(batch, heads, n, n_keys) * scaling
        mask = _row_mask(attention_mask, n, n_keys, scores.device)
        if mask is not None:
            if mask.dtype == torch.bool:
                scores = scores.masked_fill(~mask, torch.finfo(scores.dtype).min)
            else:
                scores = scores + mask
        probs = torch.softmax(scores, dim=-1, dtype=torch.float32)
        cells = probs.gather(-1, self.cell_positions[:, None, None, :].expand(batch, heads, n, -1))
        if self.mean_heads:
            cells = cells.mean(dim=1, keepdim=True)
        self.buffers.write_attention(self._next(self.attention_steps, position, n), position, cells.transpose(1, 2))

    def hidden_hook(self, position: int):
        def record_hidden(module, args, output) -> None:
            hidden = output[0] if isinstance(output, tuple) else output
            rows = hidden if self.every_query else hidden[:, -1:, :]
            steps = self._next(self.hidden_steps, position, rows.shape[1])
            self.buffers.hidden[:, steps, position].copy_(rows.float())

        return record_hidden

    def _next(self, counts: list[int], position: int, n: int) -> slice:
        step = counts[position]
        if step + n > self.buffers.hidden.shape[1]:
            raise RuntimeError(
                f"generate ran more than the {self.buffers.hidden.shape[1]} steps reserved for the capture"
            )
        counts[position] = step + n
        return slice(step, step + n)


def _row_mask(attention_mask, n: int, n_keys: int, device) -> torch.Tensor | None:
    """The mask of the last ``n`` query rows over ``n_keys`` keys, broadcastable to (batch, heads, n, keys).

    sdpa may be handed no mask at all and rely on causality; a single last row attends every key
    then, but several rows (the chunk) need the causal mask made here: row i sees keys up to
    n_keys - n + i."""
    if attention_mask is None:
        if n == 1:
            return None
        keys = torch.arange(n_keys, device=device)
        return keys[None, :] <= (n_keys - n + torch.arange(n, device=device))[:, None]
    if attention_mask.dim() == 4:
        return attention_mask[:, :, -n:, :n_keys]
    # 2-D padding mask (flash attention): 1 = attend; causality is the kernel's, so add it for several rows
    padding = attention_mask[:, None, None, -n_keys:].bool()
    causal = _row_mask(None, n, n_keys, device)
    return padding if causal is None else padding & causal


class capture_layers:
    """Context manager: attach a recorder to decoder layers for the duration of a generate call.

    ``layers`` count decoder layers from 0, in layer-axis order; the last layer's hidden state is
    taken after the final norm, which is what Hugging Face returns as ``hidden_states[-1]``.
    """

    def __init__(self, language_model, layers: tuple[int, ...], recorder: StepRecorder):
        n_layers = len(language_model.layers)
        self.attention_modules = [language_model.layers[layer].self_attn for layer in layers]
        self.hidden_modules = [
            language_model.norm if layer == n_layers - 1 else language_model.layers[layer] for layer in layers
        ]
        self.recorder = recorder
        self._hooks = []

    def __enter__(self) -> StepRecorder:
        for position, (attention, hidden) in enumerate(zip(self.attention_modules, self.hidden_modules)):
            setattr(attention, _RECORDER_ATTR, (self.recorder, position))
            self._hooks.append(hidden.register_forward_hook(self.recorder.hidden_hook(position)))
        return self.recorder

    def __exit__(self, *exc) -> None:
        for module in self.attention_modules:
            delattr(module, _RECORDER_ATTR)
        for hook in self._hooks:
            hook.remove()
