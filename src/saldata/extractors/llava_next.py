"""The LLaVA-Next extractor: images in, generated tokens with their captured maps out."""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from saldata.extractors.capture import StepRecorder, capture_implementation, capture_layers
from saldata.extractors.image_inputs import ImageInputs, prepare_images
from saldata.extractors.kv_cache import generate_cache_argument, reserved_cache
from saldata.extractors.layout import ImageTokenLayout, layout_for
from saldata.extractors.models import ModelSettings, load_model
from saldata.extractors.prompts import Prompt
from saldata.extractors.settings import CaptureSettings, resolve_layers
from saldata.extractors.words import token_offsets


@dataclass(slots=True)
class TokenCapture:
    """One image's generation: n generated tokens (EOS excluded) and their per-token arrays, one row
    per captured layer after the token axis. When generation ended with EOS, the arrays hold one
    more row, n, for the step that produced it (``eos_id``)."""

    token_ids: np.ndarray  # (n,) int32
    tokens: list[str]  # each token decoded on its own
    text: str
    offsets: list[tuple[int, int]]  # each token's character span in ``text``
    hidden: np.ndarray  # (n [+ 1], layers, hidden) float32
    attn_base: np.ndarray  # (n [+ 1], layers, heads, base_rows, base_cols) float32
    attn_highres: np.ndarray  # (n [+ 1], layers, heads, highres_rows, highres_cols) float32
    eos_id: int | None = None  # the EOS token generation ended with; None: it ran to --max-new-tokens

    @property
    def ended_with_eos(self) -> bool:
        return self.eos_id is not None


class LlavaNextExtractor:
    """Loads the model once; each call runs one batch of same-size RGB images through ``generate``."""

    def __init__(self, model_dir: Path, model: ModelSettings, capture: CaptureSettings, prompt: Prompt):
        import torch

        self.capture = capture
        self.model, self.processor = load_model(model, model_dir, capture_implementation(model.attention))
        self.config = self.model.config
        self.language_model = self.model.model.language_model
        self.layers = resolve_layers(capture.layers, len(self.language_model.layers))
        self.heads = 1 if capture.heads == "mean" else self.config.text_config.num_attention_heads
        self.hidden_size = self.config.text_config.hidden_size
        self.prompt_text = self.processor.apply_chat_template(
            [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": prompt.text}]}],
            add_generation_prompt=True,
        )
        eos = self.model.generation_config.eos_token_id
        self.eos_ids = {eos} if isinstance(eos, int) else set(eos or [])
        tokenizer = self.processor.tokenizer
        pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else next(iter(self.eos_ids), 0)
        self.generation_kwargs = dict(
            max_new_tokens=capture.max_new_tokens,
            min_new_tokens=capture.max_new_tokens if capture.force_new_tokens else None,
            do_sample=False,
            num_beams=1,
            temperature=None,
            top_p=None,
            top_k=None,
            eos_token_id=sorted(self.eos_ids) or None,
            pad_token_id=pad,
            return_dict_in_generate=True,
        )
        self.device = self.model.get_input_embeddings().weight.device
        self._prompt_cache: dict[tuple[int, int], np.ndarray] = {}
        self._torch = torch

    def layout(self, image_size: tuple[int, int]) -> ImageTokenLayout:
        return layout_for(self.config, image_size)

    def __call__(self, images: list[np.ndarray] | list[ImageInputs]) -> tuple[list[TokenCapture], float]:
        """Captures for a batch of images of one size, and the batch's seconds.

        Images are HxWx3 uint8 arrays, or ``ImageInputs`` already made by a CPU worker.
        """
        torch = self._torch
        start = time.perf_counter()
        if not isinstance(images[0], ImageInputs):
            images = prepare_images(self.processor.image_processor, images)
        sizes = {im.image_size for im in images}
        if len(sizes) != 1:
            raise ValueError(f"A batch must hold images of one size, got {sorted(sizes)}")
        height, width = sizes.pop()
        layout = self.layout((width, height))
        prompt_ids = torch.as_tensor(self._prompt_ids(height, width))
        inputs = {
            "input_ids": prompt_ids.repeat(len(images), 1).to(self.device),
            "attention_mask": torch.ones(len(images), len(prompt_ids), dtype=torch.long, device=self.device),
            "pixel_values": torch.from_numpy(np.stack([im.pixel_values for im in images])).to(
                device=self.device, dtype=self.model.dtype
            ),
            "image_sizes": torch.tensor([[height, width]] * len(images), device=self.device),
        }
        image_positions = self._image_positions(inputs["input_ids"], layout)
        recorder = StepRecorder(image_positions, self.capture.heads == "mean", len(self.layers))
        cache = reserved_cache(self.config.text_config, len(prompt_ids), self.capture.max_new_tokens)
        with torch.inference_mode(), capture_layers(self.language_model, self.layers, recorder):
            out = self.model.generate(**inputs, **self.generation_kwargs, **{generate_cache_argument(): cache})
        attention, hidden = recorder.stacked()
        generated = out.sequences[:, inputs["input_ids"].shape[1] :]
        base = _select(attention, layout.base_positions)
        highres = _select(attention, layout.highres_positions)
        captures = self._split(generated.cpu().numpy(), hidden.cpu().numpy(), base.cpu().numpy(), highres.cpu().numpy())
        return captures, time.perf_counter() - start

    def _prompt_ids(self, height: int, width: int) -> np.ndarray:
        """The prompt's token ids with the image placeholder expanded for this image size.

        The same for every image of a size, so made once per size by the processor itself
        (which alone knows how many image tokens it inserts), on a blank image.
        """
        key = (height, width)
        if key not in self._prompt_cache:
            blank = np.zeros((height, width, 3), np.uint8)
            ids = self.processor(images=[blank], text=[self.prompt_text], return_tensors="np")["input_ids"][0]
            self._prompt_cache[key] = ids
        return self._prompt_cache[key]

    def _image_positions(self, input_ids, layout: ImageTokenLayout):
        is_image = input_ids == self.config.image_token_id
        counts = is_image.sum(dim=1)
        if not bool((counts == layout.n_tokens).all()):
            raise RuntimeError(
                f"The processor inserted {counts.tolist()} image tokens but the layout for "
                f"{layout.image_size[0]}x{layout.image_size[1]} expects {layout.n_tokens}; "
                "processor and model config disagree."
            )
        return is_image.nonzero()[:, 1].view(input_ids.shape[0], layout.n_tokens)

    def _split(self, generated, hidden, base, highres) -> list[TokenCapture]:
        tokenizer = self.processor.tokenizer
        captures = []
        for row, ids in enumerate(generated):
            n = next((i for i, t in enumerate(ids) if int(t) in self.eos_ids), len(ids))
            eos_id = int(ids[n]) if n < len(ids) else None
            rows = n + (eos_id is not None)  # the EOS step's maps are kept, its token is not text
            ids = ids[:n].astype(np.int32)
            text = tokenizer.decode(ids.tolist(), skip_special_tokens=True)
            captures.append(
                TokenCapture(
                    token_ids=ids,
                    tokens=[tokenizer.decode([int(t)]) for t in ids],
                    text=text,
                    offsets=token_offsets(tokenizer, ids.tolist(), text),
                    hidden=hidden[row, :rows],
                    attn_base=base[row, :rows],
                    attn_highres=highres[row, :rows],
                    eos_id=eos_id,
                )
            )
        return captures


def _select(attention, positions: np.ndarray):
    """(..., n_image) -> (..., rows, cols) at the layout's positions."""
    import torch

    index = torch.as_tensor(positions.ravel(), device=attention.device)
    return attention.index_select(-1, index).unflatten(-1, positions.shape)
