"""Resolve ``--model`` to a local directory and load it, the same way for every model.

A hub id is first fetched into (or found in) the Hugging Face cache, a random model is built
into saldata's cache, a directory is used as it is; then one code path loads all three
with ``AutoProcessor`` and ``LlavaNextForConditionalGeneration.from_pretrained``.

Every load reads the resolved local directory only (``LOCAL_ONLY``) and runs with the Hub's
kernels off: transformers >= 5.2x swaps layers for binaries it downloads from the Hub unless told
not to, which fails on an air-gapped node, changes the numbers, and runs code nobody pinned.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

from saldata.errors import ConfigError, ModelLoadError, ModelNotFoundError
from saldata.extractors.random_models import RANDOM_MODELS, random_model_dir

DEFAULT_MODEL = "llava-hf/llama3-llava-next-8b-hf"
DTYPES = ("auto", "float32", "bfloat16", "float16")
DEVICES = ("auto", "cpu", "cuda")  # cuda:N is accepted too (one GPU of a bare machine)
ATTENTIONS = ("sdpa", "flash_attention_2")  # kernels the capture can wrap; eager is what it replaces
HUB_FILES = ["*.json", "*.safetensors", "*.jinja", "*.model", "*.txt", "tokenizer*"]
HUB_KERNELS = False  # recorded in the store's attributes (``hub_kernels``) as the run's provenance
# Keyword arguments of every from_pretrained of a resolved directory: nothing is looked up online.
LOCAL_ONLY = {"local_files_only": True}


def disable_hub_kernels() -> None:
    """Turn off what transformers fetches from the Hub lazily (``lazy_load_kernel``) in this process.

    ``use_kernels=False`` covers a model's own layers; kernels that integrations load on first use
    read ``USE_HUB_KERNELS`` at that moment, so the variable is set too, in the process that loads
    the model (the model actor), before the load.
    """
    os.environ["USE_HUB_KERNELS"] = "NO"


@dataclass(frozen=True, slots=True)
class ModelSettings:
    """How to load the model. ``attention`` is the kernel the capture wraps (sdpa or flash_attention_2)."""

    model: str
    dtype: str = "auto"
    device: str = "auto"
    device_map: str | None = None
    attention: str = "sdpa"

    def __post_init__(self):
        if self.dtype not in DTYPES:
            raise ConfigError(f"--dtype must be one of {', '.join(DTYPES)}, not {self.dtype!r}.")
        if self.attention == "eager":
            raise ConfigError("--attention eager is what saldata exists to avoid; use sdpa or flash_attention_2.")
        if self.attention not in ATTENTIONS:
            raise ConfigError(f"--attention must be one of {', '.join(ATTENTIONS)}, not {self.attention!r}.")
        if self.device not in DEVICES and not re.fullmatch(r"cuda:\d+", self.device):
            raise ConfigError(f"--device must be one of {', '.join(DEVICES)}, not {self.device!r}.")

    def resolved_device(self) -> str:
        import torch

        if self.device != "auto":
            return self.device
        return "cuda" if torch.cuda.is_available() else "cpu"

    def resolved_dtype(self):
        import torch

        if self.dtype == "auto":
            return torch.bfloat16 if self.resolved_device().startswith("cuda") else torch.float32
        return getattr(torch, self.dtype)


def resolve_model_dir(model: str, cache_dir: Path | None = None) -> Path:
    """Local directory holding ``model``: a random preset, a directory, or a hub id."""
    if model in RANDOM_MODELS:
        return random_model_dir(model, cache_dir)
    path = Path(model).expanduser()
    if path.is_dir():
        if not (path / "config.json").exists():
            raise ModelNotFoundError(f"Model directory {path} has no config.json; is it a saved Hugging Face model?")
        return path.resolve()
    if path.exists() or model.startswith((".", "/", "~")):
        raise ModelNotFoundError(f"Model path {model!r} is not a directory.")
    from huggingface_hub import snapshot_download

    try:
        return Path(snapshot_download(repo_id=model, allow_patterns=HUB_FILES))
    except Exception as exc:  # any hub failure: offline, unknown repo, gated, bad token
        first_line = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ModelLoadError(
            f"Could not fetch model {model!r} from the Hugging Face Hub ({first_line}). "
            f"Pass a local directory with --model /path/to/model, or --model tiny-random for the offline demo."
        ) from exc


def load_model(settings: ModelSettings, model_dir: Path, attn_implementation: str):
    """(model, processor) in eval mode on the configured device and dtype."""
    from transformers import AutoProcessor, LlavaNextForConditionalGeneration
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()
    disable_hub_kernels()
    # A device name as device_map loads the weights straight onto it (no copy through host memory).
    placement = settings.device_map or settings.resolved_device()
    try:
        processor = AutoProcessor.from_pretrained(model_dir, **LOCAL_ONLY)
        model = LlavaNextForConditionalGeneration.from_pretrained(
            model_dir,
            dtype=settings.resolved_dtype(),
            attn_implementation=attn_implementation,
            device_map=placement,
            use_kernels=HUB_KERNELS,
            **LOCAL_ONLY,
        )
    except (OSError, ValueError) as exc:
        raise ModelLoadError(f"Could not load a LLaVA-Next model from {model_dir}: {exc}") from exc
    if model.use_kernels != HUB_KERNELS:  # what the store's hub_kernels attribute says of every run
        raise ModelLoadError(f"transformers loaded {model_dir} with hub kernels on despite use_kernels=False.")
    return model.eval(), processor


def load_config(model_dir: Path):
    """The model's config, read from its directory only."""
    from transformers import AutoConfig

    return AutoConfig.from_pretrained(model_dir, **LOCAL_ONLY)


def load_tokenizer(model: str, model_path: str):
    """The tokenizer of the model an output was extracted with (store attributes ``model``, ``model_path``).

    ``model_path`` is where that run found the model; where it is gone (another machine, a
    cleaned cache) the model is resolved again as ``--model`` would be.
    """
    from transformers import AutoTokenizer
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()
    path = Path(model_path)
    if not (path / "config.json").is_file():
        path = resolve_model_dir(model)
    try:
        return AutoTokenizer.from_pretrained(path, **LOCAL_ONLY)
    except (OSError, ValueError) as exc:
        first_line = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ModelLoadError(f"Could not load the tokenizer of {model} from {path}: {first_line}") from exc
