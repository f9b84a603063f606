"""Random-weight LLaVA-Next models with the real llama3-llava-next-8b geometry, built offline.

No weights can be downloaded in CI or on an air-gapped box, so tests, the demo and the
benchmarks build a model from configs: CLIP 336/14 vision tower, the 8B model's grid
pinpoints, feature layer and select strategy, a Llama-3-style chat template, and a byte-level
BPE tokenizer trained on the spot. Only the widths shrink. The model is saved once to a cache
directory and then loaded like any other model, through ``from_pretrained``.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

# Geometry of llava-hf/llama3-llava-next-8b-hf; what must stay real in a random model.
IMAGE_SIZE = 336
PATCH_SIZE = 14
GRID_PINPOINTS = [[336, 672], [672, 336], [672, 672], [1008, 336], [336, 1008]]
VISION_FEATURE_LAYER = -2
VISION_FEATURE_SELECT_STRATEGY = "default"
NUM_ADDITIONAL_IMAGE_TOKENS = 1
CLIP_MEAN = [0.48145466, 0.4578275, 0.40821073]
CLIP_STD = [0.26862954, 0.26130258, 0.27577711]

BUILD_VERSION = 1  # bump when build_random_model changes what it writes

SPECIAL_TOKENS = [
    "<|begin_of_text|>",
    "<|end_of_text|>",
    "<|start_header_id|>",
    "<|end_header_id|>",
    "<|eot_id|>",
    "<|finetune_right_pad_id|>",
    "<image>",
]

# Llama-3 chat format with LLaVA's content list (image items become the <image> placeholder).
CHAT_TEMPLATE = (
    "{{ bos_token }}{% for message in messages %}"
    "<|start_header_id|>{{ message['role'] }}<|end_header_id|>\n\n"
    "{% if message['content'] is string %}{{ message['content'] }}{% else %}"
    "{% for item in message['content'] %}{% if item['type'] == 'image' %}<image>\n"
    "{% elif item['type'] == 'text' %}{{ item['text'] }}{% endif %}{% endfor %}{% endif %}"
    "<|eot_id|>{% endfor %}"
    "{% if add_generation_prompt %}<|start_header_id|>assistant<|end_header_id|>\n\n{% endif %}"
)


@dataclass(frozen=True, slots=True)
class RandomModelSpec:
    """Widths of a random model; everything geometric comes from the constants above."""

    text_hidden: int
    text_layers: int
    text_heads: int
    text_kv_heads: int
    text_intermediate: int
    vision_hidden: int
    vision_layers: int
    vision_heads: int
    vision_intermediate: int
    vocab_size: int = 0  # 0: the trained tokenizer's size
    seed: int = 0
    dtype: str = "float32"  # what the weights are saved as
    # Initialise on the GPU when there is one: random init of billions of weights on CPU takes minutes.
    build_on_gpu: bool = False


RANDOM_MODELS: dict[str, RandomModelSpec] = {
    "tiny-random": RandomModelSpec(64, 2, 4, 2, 128, 32, 2, 2, 64),
    # ~21M parameters (text hidden 512, 8 layers, 8 heads): the benchmark's mid-size model.
    "mid-random": RandomModelSpec(512, 8, 8, 8, 896, 128, 4, 4, 512),
    # llama3-llava-next-8b dimensions; for GPU benchmarks only (~16 GB in bf16).
    "8b-random": RandomModelSpec(
        4096, 32, 32, 8, 14336, 1024, 24, 16, 4096, vocab_size=128256, dtype="bfloat16", build_on_gpu=True
    ),
}


def default_cache_dir() -> Path:
    root = os.environ.get("SALDATA_CACHE") or os.path.join(
        os.environ.get("XDG_CACHE_HOME", os.path.expanduser("~/.cache")), "saldata"
    )
    return Path(root)


def spec_digest(spec: RandomModelSpec) -> str:
    """Short digest of everything that shapes the built model, so a changed spec builds anew."""
    recipe = repr((spec, BUILD_VERSION, GRID_PINPOINTS, IMAGE_SIZE, PATCH_SIZE, CHAT_TEMPLATE))
    return hashlib.sha256(recipe.encode()).hexdigest()[:10]


def random_model_dir(name: str, cache_dir: Path | None = None) -> Path:
    """Directory of the named random model, building it on first use (atomic rename)."""
    spec = RANDOM_MODELS[name]
    target = (cache_dir or default_cache_dir()) / "models" / f"{name}-{spec_digest(spec)}"
    if (target / "config.json").exists():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{name}-", dir=target.parent))
    try:
        build_random_model(spec, staging)
        try:
            staging.rename(target)
        except OSError:  # another process finished first; theirs is identical (fixed seed)
            if not (target / "config.json").exists():
                raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return target


def _training_corpus() -> list[str]:
    """Deterministic English-like text so BPE learns word pieces, spaces and punctuation."""
    nouns = [
        "man",
        "woman",
        "child",
        "dog",
        "cat",
        "car",
        "bus",
        "tree",
        "table",
        "chair",
        "sky",
        "road",
        "building",
        "sign",
        "person",
        "bird",
        "horse",
    ]
    adjectives = [
        "red",
        "blue",
        "green",
        "large",
        "small",
        "wooden",
        "old",
        "young",
        "bright",
        "dark",
        "white",
        "black",
        "tall",
    ]
    relations = ["next to", "behind", "in front of", "on top of", "under", "beside", "near", "left of", "right of"]
    verbs = ["sits", "stands", "looks at", "holds", "walks past", "rides", "leans on"]
    lines = []
    for i, noun in enumerate(nouns):
        for j, adj in enumerate(adjectives):
            other = nouns[(i + j + 1) % len(nouns)]
            rel = relations[(i * 3 + j) % len(relations)]
            verb = verbs[(i + 2 * j) % len(verbs)]
            lines.append(f"A {adj} {noun} {verb} the {other}, {rel} a {adjectives[(j + 5) % len(adjectives)]} {other}.")
            lines.append(f"The image shows a {noun}; it is {adj}.\nThere are {i + j} objects: {noun}s and {other}s!")
    lines.append("Describe this image in detail. List the objects, their attributes, positions and relations.")
    return lines


@contextlib.contextmanager
def _default_dtype(dtype):
    import torch

    previous = torch.get_default_dtype()
    torch.set_default_dtype(dtype)
    try:
        yield
    finally:
        torch.set_default_dtype(previous)


def build_tokenizer(vocab_size: int = 1024):
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=SPECIAL_TOKENS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(_training_corpus(), trainer=trainer)
    return PreTrainedTokenizerFast(
        tokenizer_object=tok,
        bos_token="<|begin_of_text|>",
        eos_token="<|eot_id|>",
        pad_token="<|finetune_right_pad_id|>",
        extra_special_tokens={"image_token": "<image>"},
        padding_side="left",
        chat_template=CHAT_TEMPLATE,
    )


def build_random_model(spec: RandomModelSpec, out_dir: Path) -> None:
    """Build and save model, tokenizer and processor; deterministic for a given spec."""
    import torch
    from transformers import (
        CLIPVisionConfig,
        GenerationConfig,
        LlamaConfig,
        LlavaNextConfig,
        LlavaNextForConditionalGeneration,
        LlavaNextImageProcessorPil,
        LlavaNextProcessor,
    )

    tokenizer = build_tokenizer()
    vocab = spec.vocab_size or len(tokenizer)
    ids = {t: tokenizer.convert_tokens_to_ids(t) for t in SPECIAL_TOKENS}
    text = LlamaConfig(
        vocab_size=vocab,
        hidden_size=spec.text_hidden,
        intermediate_size=spec.text_intermediate,
        num_hidden_layers=spec.text_layers,
        num_attention_heads=spec.text_heads,
        num_key_value_heads=spec.text_kv_heads,
        max_position_embeddings=8192,
        rope_theta=500000.0,
        bos_token_id=ids["<|begin_of_text|>"],
        eos_token_id=[ids["<|end_of_text|>"], ids["<|eot_id|>"]],
        pad_token_id=ids["<|finetune_right_pad_id|>"],
        tie_word_embeddings=False,
    )
    vision = CLIPVisionConfig(
        image_size=IMAGE_SIZE,
        patch_size=PATCH_SIZE,
        hidden_size=spec.vision_hidden,
        intermediate_size=spec.vision_intermediate,
        num_hidden_layers=spec.vision_layers,
        num_attention_heads=spec.vision_heads,
        projection_dim=spec.vision_hidden,
    )
    config = LlavaNextConfig(
        vision_config=vision,
        text_config=text,
        image_grid_pinpoints=GRID_PINPOINTS,
        vision_feature_layer=VISION_FEATURE_LAYER,
        vision_feature_select_strategy=VISION_FEATURE_SELECT_STRATEGY,
        image_token_index=ids["<image>"],
        image_seq_length=(IMAGE_SIZE // PATCH_SIZE) ** 2,
        tie_word_embeddings=False,
    )
    torch.manual_seed(spec.seed)
    device = "cuda" if spec.build_on_gpu and torch.cuda.is_available() else "cpu"
    with torch.device(device), _default_dtype(getattr(torch, spec.dtype)):
        model = LlavaNextForConditionalGeneration(config).eval()
    model.generation_config = GenerationConfig(
        bos_token_id=text.bos_token_id,
        eos_token_id=text.eos_token_id,
        pad_token_id=text.pad_token_id,
        do_sample=False,
    )
    image_processor = LlavaNextImageProcessorPil(
        size={"shortest_edge": IMAGE_SIZE},
        crop_size={"height": IMAGE_SIZE, "width": IMAGE_SIZE},
        image_grid_pinpoints=GRID_PINPOINTS,
        image_mean=CLIP_MEAN,
        image_std=CLIP_STD,
        do_pad=True,
    )
    processor = LlavaNextProcessor(
        image_processor=image_processor,
        tokenizer=tokenizer,
        patch_size=PATCH_SIZE,
        vision_feature_select_strategy=VISION_FEATURE_SELECT_STRATEGY,
        chat_template=CHAT_TEMPLATE,
        num_additional_image_tokens=NUM_ADDITIONAL_IMAGE_TOKENS,
    )
    with _no_progress_bars():  # a first run prints saldata's lines only
        model.save_pretrained(out_dir)
        processor.save_pretrained(out_dir)


@contextlib.contextmanager
def _no_progress_bars():
    from transformers.utils import logging

    was_enabled = logging.is_progress_bar_enabled()
    logging.disable_progress_bar()
    try:
        yield
    finally:
        if was_enabled:
            logging.enable_progress_bar()
