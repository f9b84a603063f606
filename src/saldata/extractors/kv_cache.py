"""A key/value cache that reserves room for the whole generation up front.

Hugging Face's default ``DynamicLayer`` grows by ``torch.cat`` at every step, so each new token
copies the whole cache: for a 2,362-token LLaVA-Next prompt that is most of a decoding step's
memory traffic on a CPU (the cache is read once for attention and copied once more to grow it),
and the old and new copies briefly coexist. Static caches avoid the copy but hand attention a
padded, masked key range, which costs the prefill its causal fast path and exposes padding to
the capture. This layer does neither: it writes each step into a buffer sized for the prompt
plus ``max_new_tokens`` and returns views of the filled part, so attention (and the capture)
sees exactly what the dynamic cache would, bit for bit.
"""

from __future__ import annotations

import torch
from transformers.cache_utils import Cache, DynamicLayer


class ReservedLayer(DynamicLayer):
    """A ``DynamicLayer`` whose keys and values are views into a buffer reserved once."""

    def __init__(self, capacity: int):
        super().__init__()
        self.capacity = capacity
        self._key_buffer: torch.Tensor | None = None
        self._value_buffer: torch.Tensor | None = None

    def update(self, key_states: torch.Tensor, value_states: torch.Tensor, *args, **kwargs):
        if not self.is_initialized:
            self.lazy_initialization(key_states, value_states)
        length = self.get_seq_length()
        end = length + key_states.shape[-2]
        if not self._holds_current(key_states, length, end):
            # First call, or an inherited method (crop, batch selection) replaced the views, or
            # the generation outgrew the reservation: reserve anew around what the cache holds,
            # growing geometrically so that outgrowing it does not mean a copy per step.
            room = self.capacity if self._key_buffer is None else self._key_buffer.shape[-2]
            if end > room:
                room = max(end, room + room // 2)
            self._reserve(key_states, value_states, room, length)
        self._key_buffer[..., length:end, :].copy_(key_states)
        self._value_buffer[..., length:end, :].copy_(value_states)
        self.keys = self._key_buffer[..., :end, :]
        self.values = self._value_buffer[..., :end, :]
        return self.keys, self.values

    def _holds_current(self, key_states: torch.Tensor, length: int, end: int) -> bool:
        """Whether the buffer holds what the cache holds so far and has room up to ``end``."""
        buffer = self._key_buffer
        return (
            buffer is not None
            and end <= buffer.shape[-2]
            and buffer.shape[:-2] == key_states.shape[:-2]
            and buffer.dtype == key_states.dtype
            and buffer.device == key_states.device
            and (length == 0 or self.keys.data_ptr() == buffer.data_ptr())
        )

    def _reserve(self, key_states: torch.Tensor, value_states: torch.Tensor, capacity: int, length: int) -> None:
        def buffer(states: torch.Tensor, kept: torch.Tensor) -> torch.Tensor:
            shape = (*states.shape[:-2], capacity, states.shape[-1])
            reserved = torch.empty(shape, dtype=states.dtype, device=states.device)
            if length:
                reserved[..., :length, :].copy_(kept)
            return reserved

        self._key_buffer = buffer(key_states, self.keys)
        self._value_buffer = buffer(value_states, self.values)


def reserved_cache(text_config, prompt_tokens: int, new_tokens: int) -> Cache:
    """A cache for every decoder layer of ``text_config`` with room for the prompt and ``new_tokens``."""
    capacity = prompt_tokens + new_tokens
    return Cache(layers=[ReservedLayer(capacity) for _ in range(text_config.num_hidden_layers)])
