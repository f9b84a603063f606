"""The LLaVA-Next extractor: images in, generated tokens with their captured maps out."""

from __future__ import annotations

import time
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from saldata.extractors.capture import CaptureBuffers, StepRecorder, capture_implementation, capture_layers
from saldata.extractors.image_inputs import ImageInputs, prepare_images
from saldata.extractors.kv_cache import reserved_cache
from saldata.extractors.layout import ImageTokenLayout, layout_for
from saldata.extractors.models import ModelSettings, load_model
from saldata.extractors.prompts import Prompt
from saldata.extractors.settings import DECODE_CHUNK, CaptureSettings, resolve_layers
from saldata.extractors.words import token_offsets


@dataclass(slots=True)
class TokenCapture:
    """One image's generation: n generated tokens (EOS excluded) and their per-token arrays, one row
    per captured layer after the token axis. When generation ended with EOS, the arrays hold one
    more row, n, for the step that produced it (``eos_id``).

    The arrays are views into the batch's maps (see ``LlavaNextExtractor.__call__``); the pipeline
    ships those maps whole and drops the views (``without_maps``)."""

    token_ids: np.ndarray  # (n,) int32
    tokens: list[str]  # each token decoded on its own
    text: str
    offsets: list[tuple[int, int]]  # each token's character span in ``text``
    hidden: np.ndarray | None  # (n [+ 1], layers, hidden)
    attn_base: np.ndarray | None  # (n [+ 1], layers, heads, base_rows, base_cols)
    attn_highres: np.ndarray | None  # (n [+ 1], layers, heads, highres_rows, highres_cols)
    eos_id: int | None = None  # the EOS token generation ended with; None: it ran to --max-new-tokens

    @property
    def ended_with_eos(self) -> bool:
        return self.eos_id is not None

    @property
    def rows(self) -> int:
        """Rows of the per-token arrays that hold data: the tokens, and the EOS step when there was one."""
        return len(self.token_ids) + self.ended_with_eos

    def without_maps(self) -> TokenCapture:
        return replace(self, hidden=None, attn_base=None, attn_highres=None)


class LlavaNextExtractor:
    """Loads the model once; each call runs one batch of same-size RGB images through ``generate``."""

    def __init__(
        self,
        model_dir: Path,
        model: ModelSettings,
        capture: CaptureSettings,
        prompt: Prompt,
        device_buffers: bool | None = None,
    ):
        """``device_buffers``: capture into buffers on the model's device and copy them out once per
        batch (None: on a GPU); else straight into the caller's arrays (only where the device is the host)."""
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
        self.device_buffers = self.device.type != "cpu" if device_buffers is None else device_buffers
        if not self.device_buffers and self.device.type != "cpu":
            raise ValueError("The capture can write into host arrays only when the model runs on the CPU.")
        self._prompt_cache: dict[tuple[int, int], np.ndarray] = {}
        self._torch = torch

    def layout(self, image_size: tuple[int, int]) -> ImageTokenLayout:
        return layout_for(self.config, image_size)

    def map_shapes(self, layout: ImageTokenLayout) -> dict[str, tuple[int, ...]]:
        """Each captured array's shape for one image, as the store holds it: (steps, layers, ...)."""
        steps, layers = self.capture.max_new_tokens, len(self.layers)
        return {
            "hidden": (steps, layers, self.hidden_size),
            "attn_base": (steps, layers, self.heads, *layout.base_grid),
            "attn_highres": (steps, layers, self.heads, *layout.highres_grid),
        }

    def __call__(
        self, images: list[np.ndarray] | list[ImageInputs], out: dict[str, np.ndarray] | None = None
    ) -> tuple[list[TokenCapture], float]:
        """Captures for a batch of images of one size, and the batch's seconds.

        Images are HxWx3 uint8 arrays, or ``ImageInputs`` already made by a CPU worker. ``out``
        holds the batch's maps, (batch, *map_shapes) per array, in the dtype they are kept in (the
        store's float16 in the pipeline; float32 when None, then allocated here). Every step at or
        past an image's last row is 0, the store's fill value. On a GPU the maps are captured into
        device buffers of that dtype and copied into ``out`` once per batch; on a CPU the capture
        writes into ``out`` itself.
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
        if out is None:
            out = {name: np.empty((len(images), *shape), np.float32) for name, shape in self.map_shapes(layout).items()}
        prompt_ids = torch.as_tensor(self._prompt_ids(height, width))
        inputs = {
            "input_ids": prompt_ids.repeat(len(images), 1).to(self.device),
            "attention_mask": torch.ones(len(images), len(prompt_ids), dtype=torch.long, device=self.device),
            "pixel_values": torch.from_numpy(np.stack([im.pixel_values for im in images])).to(
                device=self.device, dtype=self.model.dtype
            ),
            "image_sizes": torch.tensor([[height, width]] * len(images), device=self.device),
        }
        host = _flat_grids({name: torch.from_numpy(array) for name, array in out.items()})
        buffers = (
            CaptureBuffers.on_device({n: t.shape for n, t in host.items()}, host["hidden"].dtype, self.device)
            if self.device_buffers
            else CaptureBuffers(**host)
        )
        cells = np.concatenate([layout.base_positions.ravel(), layout.highres_positions.ravel()])
        image_positions = self._image_positions(inputs["input_ids"], layout)
        recorder = StepRecorder(
            image_positions[:, torch.as_tensor(cells, device=self.device)],
            self.capture.heads == "mean",
            buffers,
            every_query=self.capture.decode == DECODE_CHUNK,
        )
        cache = reserved_cache(self.config.text_config, len(prompt_ids), self.capture.max_new_tokens)
        with torch.inference_mode():
            if recorder.every_query:
                result = self.model.generate(**inputs, **self.generation_kwargs, cache=cache)
                self._capture_chunk(result.sequences, inputs["input_ids"].shape[1], cache, recorder)
            else:
                with capture_layers(self.language_model, self.layers, recorder):
                    result = self.model.generate(**inputs, **self.generation_kwargs, cache=cache)
            generated = result.sequences[:, inputs["input_ids"].shape[1] :].cpu().numpy()
            ends = [self._end(ids) for ids in generated]
            buffers.clear_rows_from(torch.tensor([n + (eos is not None) for n, eos in ends], device=self.device))
            if self.device_buffers:  # the one device-to-host copy of the batch's maps
                for name, tensor in buffers.items():
                    host[name].copy_(tensor, non_blocking=host[name].is_pinned())
                if self.device.type == "cuda":
                    torch.cuda.synchronize(self.device)
        captures = [
            self._capture(ids, n, eos, {k: v[row] for k, v in out.items()})
            for row, (ids, (n, eos)) in enumerate(zip(generated, ends))
        ]
        return captures, time.perf_counter() - start

    def _capture_chunk(self, sequences, prompt_length: int, cache, recorder: StepRecorder) -> None:
        """Every captured row in one forward of the generated tokens over the cached prompt.

        Row t is the query that produced generated token t: position prompt_length - 1 + t, whose
        input is the token before it. The cache is cut back to the prompt less its last token, and
        the forward writes the same keys and values over what generate left there."""
        torch = self._torch
        start = prompt_length - 1
        rows = sequences[:, start:-1]  # the inputs of every decoding step, the prompt's last token first
        cache.crop(-(cache.get_seq_length() - start))  # a negative count: tokens to remove (transformers 5)
        with capture_layers(self.language_model, self.layers, recorder):
            self.language_model(
                input_ids=rows,
                attention_mask=torch.ones(rows.shape[0], start + rows.shape[1], dtype=torch.long, device=rows.device),
                cache=cache,
                cache_position=torch.arange(start, start + rows.shape[1], device=rows.device),
                use_cache=True,
            )

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

    def _end(self, ids: np.ndarray) -> tuple[int, int | None]:
        """(tokens before EOS, the EOS id or None when generation ran to --max-new-tokens)."""
        n = next((i for i, t in enumerate(ids) if int(t) in self.eos_ids), len(ids))
        return n, (int(ids[n]) if n < len(ids) else None)

    def _capture(self, ids: np.ndarray, n: int, eos_id: int | None, maps: dict[str, np.ndarray]) -> TokenCapture:
        tokenizer = self.processor.tokenizer
        rows = n + (eos_id is not None)  # the EOS step's maps are kept, its token is not text
        ids = ids[:n].astype(np.int32)
        text = tokenizer.decode(ids.tolist(), skip_special_tokens=True)
        return TokenCapture(
            token_ids=ids,
            tokens=[tokenizer.decode([int(t)]) for t in ids],
            text=text,
            offsets=token_offsets(tokenizer, ids.tolist(), text),
            hidden=maps["hidden"][:rows],
            attn_base=maps["attn_base"][:rows],
            attn_highres=maps["attn_highres"][:rows],
            eos_id=eos_id,
        )


def _flat_grids(maps: dict) -> dict:
    """Attention maps with each grid flattened to one axis of cells (views, as the capture writes them)."""
    # view, not flatten: flatten copies an array that is not contiguous, and the capture would be lost.
    return {name: t if name == "hidden" else t.view(*t.shape[:4], -1) for name, t in maps.items()}
