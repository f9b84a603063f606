"""Capture one layer's last-row attention and hidden state at every decoding step.

Asking ``generate`` for attentions under eager attention materialises every layer's full
(heads x seq x seq) matrix at prefill: ~11 GB per image for the 8B model. We only need, for
one layer, the row of the query that produces the next token. So the model runs with a
registered attention implementation that forwards every call to the fast kernel (sdpa or
flash) and, for the one module carrying a recorder, also computes softmax(q_last . K^T)
for that single query row: O(heads x seq) extra work per step. A forward hook takes the
chosen layer's hidden state at the last position.
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
        recorder = getattr(module, _RECORDER_ATTR, None)
        if recorder is not None:
            recorder.record_attention(query, key, attention_mask, kwargs.get("scaling"))
        return base_forward(module, query, key, value, attention_mask, *args, **kwargs)

    AttentionInterface.register(name, attention)
    AttentionMaskInterface.register(name, ALL_MASK_ATTENTION_FUNCTIONS._global_mapping[base])
    return name


@dataclass(slots=True)
class StepRecorder:
    """Collects, per decoding step, the target layer's last-row attention and hidden state.

    ``image_positions`` (batch, n_image_tokens) selects the key columns to keep, so only the
    image part of each row leaves the attention call.
    """

    image_positions: torch.Tensor
    mean_heads: bool
    attention: list[torch.Tensor] = field(default_factory=list)
    hidden: list[torch.Tensor] = field(default_factory=list)

    def record_attention(self, query, key, attention_mask, scaling) -> None:
        batch, heads, _, head_dim = query.shape
        kv_heads = key.shape[1]
        scaling = head_dim**-0.5 if scaling is None else scaling
        # Group query heads by their key head instead of repeating K (GQA): head h uses kv head h // rep.
        q = query[:, :, -1, :].reshape(batch, kv_heads, heads // kv_heads, head_dim)
        scores = torch.matmul(q, key.transpose(2, 3)).reshape(batch, heads, -1) * scaling
        if attention_mask is not None:
            if attention_mask.dim() == 4:
                mask = attention_mask[:, :, -1, : key.shape[-2]]
            else:  # 2-D padding mask (flash attention): 1 = attend
                mask = attention_mask[:, None, -key.shape[-2] :].bool()
            if mask.dtype == torch.bool:
                scores = scores.masked_fill(~mask, torch.finfo(scores.dtype).min)
            else:
                scores = scores + mask
        probs = torch.softmax(scores, dim=-1, dtype=torch.float32)
        index = self.image_positions[:, None, :].expand(batch, heads, -1)
        image_probs = probs.gather(-1, index)
        if self.mean_heads:
            image_probs = image_probs.mean(dim=1, keepdim=True)
        self.attention.append(image_probs)

    def record_hidden(self, module, args, output) -> None:
        hidden = output[0] if isinstance(output, tuple) else output
        self.hidden.append(hidden[:, -1, :].float())

    def stacked(self) -> tuple[torch.Tensor, torch.Tensor]:
        """(batch, steps, heads, n_image_tokens) attention and (batch, steps, hidden) states."""
        return torch.stack(self.attention, dim=1), torch.stack(self.hidden, dim=1)


class capture_layer:
    """Context manager: attach a recorder to one decoder layer for the duration of a generate call.

    ``layer`` counts decoder layers from 0; the last layer's hidden state is taken after the
    final norm, which is what Hugging Face returns as ``hidden_states[-1]``.
    """

    def __init__(self, language_model, layer: int, recorder: StepRecorder):
        n_layers = len(language_model.layers)
        self.attention_module = language_model.layers[layer].self_attn
        self.hidden_module = language_model.norm if layer == n_layers - 1 else language_model.layers[layer]
        self.recorder = recorder
        self._hook = None

    def __enter__(self) -> StepRecorder:
        setattr(self.attention_module, _RECORDER_ATTR, self.recorder)
        self._hook = self.hidden_module.register_forward_hook(self.recorder.record_hidden)
        return self.recorder

    def __exit__(self, *exc) -> None:
        delattr(self.attention_module, _RECORDER_ATTR)
        self._hook.remove()
