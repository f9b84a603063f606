"""``saldata extract``."""

from __future__ import annotations

import gc
from enum import Enum
from pathlib import Path
from typing import Annotated

import typer

from saldata.cli.failure import fail
from saldata.cli.locations import StorageOptions, location
from saldata.datasets import DATASETS, dataset_spec
from saldata.errors import SaldataError
from saldata.extractors.batching import AUTO
from saldata.extractors.image_inputs import PLACES
from saldata.extractors.models import ATTENTIONS, DEFAULT_MODEL, DEVICES, DTYPES
from saldata.extractors.prompts import PRESET_MAX_NEW_TOKENS, PROMPT_PRESETS
from saldata.extractors.random_models import RANDOM_MODELS
from saldata.extractors.settings import DECODE_CHUNK, DECODE_MODES, DEFAULT_MAX_NEW_TOKENS, HEADS_MODES, LayerRangeError
from saldata.pipelines.config import DEFAULT_IMAGE_SIZE, DEFAULT_PREFETCH_SHARDS, DEFAULT_SHARD_SIZE, format_size
from saldata.pipelines.host_memory import DEFAULT_SHARE

PANEL_DATA, PANEL_MODEL, PANEL_CAPTURE, PANEL_RUN = "Data", "Model", "Capture", "Run"


def _choices(name: str, values) -> type[Enum]:
    """A typer choice type whose values are the ones the settings module validates against.

    ``name`` is what help shows as the type of an option whose choices are listed in its sentence.
    """
    return Enum(name, {v: v for v in values}, type=str)


def _listed(values) -> str:
    """'a, b or c': a registry's names in a help sentence, so the help follows the registry."""
    *rest, last = values
    return f"{', '.join(rest)} or {last}" if rest else last


def _preset_budgets() -> str:
    """'256 for --preset a or b': the presets with a --max-new-tokens default of their own, from the registry."""
    by_budget: dict[int, list[str]] = {}
    for name, budget in PRESET_MAX_NEW_TOKENS.items():
        by_budget.setdefault(budget, []).append(name)
    return "; ".join(f"{budget} for --preset {_listed(names)}" for budget, names in by_budget.items())


Preset = _choices("preset", PROMPT_PRESETS)
Heads = _choices("Heads", HEADS_MODES)
Decode = _choices("Decode", DECODE_MODES)
ImageProcessorOn = _choices("ImageProcessorOn", PLACES)
DType = _choices("dtype", DTYPES)


def extract(
    out: Annotated[
        str,
        typer.Option(
            help="Output directory (features.zarr, catalog/, run.json), or a URL such as s3://bucket/prefix.",
            show_default=False,
        ),
    ],
    dataset: Annotated[
        str,
        typer.Option(help=f"{_listed([dataset_spec(n) for n in DATASETS])}.", rich_help_panel=PANEL_DATA),
    ] = "demo",
    data_root: Annotated[
        Path | None,
        typer.Option(
            help="Folder holding the dataset; saldata datasets shows the layout each expects.",
            rich_help_panel=PANEL_DATA,
        ),
    ] = None,
    split: Annotated[
        str | None,
        typer.Option(
            help="Split; default: the dataset's own (saldata datasets lists both).", rich_help_panel=PANEL_DATA
        ),
    ] = None,
    size: Annotated[
        str, typer.Option(help="Images are reshaped to WIDTHxHEIGHT.", rich_help_panel=PANEL_DATA)
    ] = format_size(DEFAULT_IMAGE_SIZE),
    limit: Annotated[int | None, typer.Option(help="Only the first N images.", rich_help_panel=PANEL_DATA)] = None,
    model: Annotated[
        str,
        typer.Option(
            # The default is spelled in the sentence: as "[default: ...]" rich cuts it at 80 columns.
            help=f"Hub id (default {DEFAULT_MODEL}), local directory, or a random model built offline: "
            f"{_listed(RANDOM_MODELS)}.",
            show_default=False,
            rich_help_panel=PANEL_MODEL,
        ),
    ] = DEFAULT_MODEL,
    dtype: Annotated[
        DType,
        typer.Option(
            help=f"{_listed(DTYPES)}; auto: bfloat16 on GPU, float32 on CPU.",
            show_choices=False,  # listed in the sentence: a wide type column squeezes --model's default
            rich_help_panel=PANEL_MODEL,
        ),
    ] = DType.auto,
    device: Annotated[str, typer.Option(help=f"{_listed(DEVICES)}.", rich_help_panel=PANEL_MODEL)] = DEVICES[0],
    device_map: Annotated[
        str | None,
        typer.Option(
            help="accelerate device_map (e.g. auto) for models larger than one GPU.", rich_help_panel=PANEL_MODEL
        ),
    ] = None,
    attention: Annotated[
        str,  # not a choice type: ModelSettings says why eager is refused, in one line
        typer.Option(help=f"Attention kernel the capture wraps: {_listed(ATTENTIONS)}.", rich_help_panel=PANEL_MODEL),
    ] = ATTENTIONS[0],
    preset: Annotated[
        Preset,
        typer.Option(
            help=f"Prompt preset: {_listed(PROMPT_PRESETS)} (language-att*: the language-driven saliency "
            "research's questions, word for word).",
            show_choices=False,  # listed in the sentence: a wide type column squeezes the help
            rich_help_panel=PANEL_CAPTURE,
        ),
    ] = Preset.describe,
    prompt: Annotated[
        str | None, typer.Option(help="Custom prompt text (overrides --preset).", rich_help_panel=PANEL_CAPTURE)
    ] = None,
    max_new_tokens: Annotated[
        int | None,
        typer.Option(
            help=f"Tokens to generate at most (greedy; stops at EOS). Default {DEFAULT_MAX_NEW_TOKENS}; "
            f"{_preset_budgets()}.",
            show_default=False,
            rich_help_panel=PANEL_CAPTURE,
        ),
    ] = None,
    layer: Annotated[
        int | None,
        typer.Option(
            # No show_default: typer writes a text one as a description, "(-1)"; the value has no
            # default of its own (None: not given, so --layers may be), so the help says it.
            help="Decoder layer to capture; the default, -1, is the last (hidden state after the final norm). "
            "The one-layer form of --layers.",
            show_default=False,
            rich_help_panel=PANEL_CAPTURE,
        ),
    ] = None,
    layers: Annotated[
        str | None,
        typer.Option(
            help="Decoder layers to capture in one pass: a comma list (negative counts from the end), e.g. "
            "0,15,-1, or all. Stored along a layer axis, ascending.",
            rich_help_panel=PANEL_CAPTURE,
        ),
    ] = None,
    force_new_tokens: Annotated[
        bool,
        typer.Option(
            "--force-new-tokens",
            help="Suppress EOS so every image generates exactly --max-new-tokens (benchmarks).",
            rich_help_panel=PANEL_CAPTURE,
        ),
    ] = False,
    heads: Annotated[
        Heads, typer.Option(help="Keep every head's map, or their mean.", rich_help_panel=PANEL_CAPTURE)
    ] = Heads.all,
    decode: Annotated[
        Decode,
        typer.Option(
            help="How the maps are computed. chunk: generate, then every token's row in one forward of the "
            "generated tokens; steps: a row inside each decoding step (the path before chunk, kept for one "
            "release). Both give the same maps to float rounding.",
            rich_help_panel=PANEL_CAPTURE,
        ),
    ] = Decode[DECODE_CHUNK],
    batch_size: Annotated[
        str,
        typer.Option(
            help="Images per model call. auto: 1 on CPU; on a GPU as many as its free memory holds (measured on "
            "the first image). A call that runs out of memory is retried with half as many.",
            rich_help_panel=PANEL_RUN,
        ),
    ] = AUTO,
    shard_size: Annotated[
        int, typer.Option(help="Images per shard: the unit of work and of writing.", rich_help_panel=PANEL_RUN)
    ] = DEFAULT_SHARD_SIZE,
    address: Annotated[
        str | None, typer.Option(help="Ray cluster address; default: a local Ray.", rich_help_panel=PANEL_RUN)
    ] = None,
    overwrite: Annotated[
        bool,
        typer.Option(
            "--overwrite", help="Delete what an earlier run wrote to --out and start over.", rich_help_panel=PANEL_RUN
        ),
    ] = False,
    retry_failed: Annotated[
        bool,
        typer.Option(
            "--retry-failed",
            help="Also reprocess the images that failed in committed shards.",
            rich_help_panel=PANEL_RUN,
        ),
    ] = False,
    dry_run: Annotated[
        bool,
        typer.Option(
            "--dry-run",
            help="Print the plan (images, shards, bytes per array) and write nothing.",
            rich_help_panel=PANEL_RUN,
        ),
    ] = False,
    fail_fast: Annotated[
        bool,
        typer.Option(
            "--fail-fast",
            help="Stop at the first image that cannot be processed (exit code 1).",
            rich_help_panel=PANEL_RUN,
        ),
    ] = False,
    prefetch_shards: Annotated[
        int,
        typer.Option(
            help="Shards decoded ahead per model actor (1: no overlap of decoding and model).",
            rich_help_panel=PANEL_RUN,
        ),
    ] = DEFAULT_PREFETCH_SHARDS,
    image_processor_on: Annotated[
        ImageProcessorOn,
        typer.Option(
            help="Where the image processor runs: CPU workers ahead of the model, or the model actor. "
            "auto: workers when the model is on a GPU.",
            rich_help_panel=PANEL_RUN,
        ),
    ] = ImageProcessorOn.auto,
    num_actors: Annotated[
        int | None, typer.Option(help="Model actors; default one per GPU (one on CPU).", rich_help_panel=PANEL_RUN)
    ] = None,
    host_memory: Annotated[
        str,
        typer.Option(
            help="Host memory the captured maps may take per model actor, e.g. 32GB: the shard being made and "
            f"the shards being written count against it. auto: {DEFAULT_SHARE:.0%} of the node's available memory "
            "over its model actors. --dry-run shows the arithmetic.",
            rich_help_panel=PANEL_RUN,
        ),
    ] = "auto",
    storage_option: StorageOptions = None,
) -> None:
    """Run a vision-language model over a dataset and store tokens, hidden states and attention maps.

    Rerunning the same command on the same --out resumes: committed shards are skipped.

    Example (offline): saldata extract --dataset demo --model tiny-random --out runs/demo
    """
    from saldata.cli.interrupt import Interrupted, catch_signals, hold_signals, interrupted_line, stop_local_ray
    from saldata.cli.progress import nothing_to_do, print_plan, run_with_progress
    from saldata.extractors.models import ModelSettings
    from saldata.extractors.prompts import resolve_max_new_tokens, resolve_prompt
    from saldata.extractors.settings import CaptureSettings, layer_choice
    from saldata.pipelines.config import ExtractConfig, parse_size
    from saldata.pipelines.preflight import preflight
    from saldata.pipelines.resume import already_complete

    try:
        chosen_prompt = resolve_prompt(preset.value, prompt)
        config = ExtractConfig(
            dataset=dataset,
            out=location(out, storage_option),
            data_root=data_root,
            split=split,
            image_size=parse_size(size),
            limit=limit,
            model=ModelSettings(
                model=model, dtype=dtype.value, device=device, device_map=device_map, attention=attention
            ),
            capture=CaptureSettings(
                layers=layer_choice(layer, layers),
                heads=heads.value,
                max_new_tokens=resolve_max_new_tokens(chosen_prompt, max_new_tokens),
                force_new_tokens=force_new_tokens,
                decode=decode.value,
            ),
            prompt=chosen_prompt,
            batch_size=batch_size,
            shard_size=shard_size,
            address=address,
            num_actors=num_actors,
            prefetch_shards=prefetch_shards,
            image_processor_on=image_processor_on.value,
            fail_fast=fail_fast,
            host_memory=host_memory,
        )
        if dry_run:
            print_plan(config)
            return
        if not (overwrite or retry_failed) and already_complete(config):
            typer.echo(nothing_to_do(out))
            return
        plan, warnings = preflight(config, overwrite)
    except LayerRangeError as exc:
        fail(exc.given_as("--layer" if layer is not None else "--layers"))
    except SaldataError as exc:  # found before anything started: a usage error, or a damaged OUT
        fail(exc)
    try:
        catch_signals()
        run_with_progress(plan, warnings, overwrite=overwrite, retry_failed=retry_failed)
        hold_signals()
        stop_local_ray()
    except SaldataError as exc:
        hold_signals()
        fail(exc)
    except Interrupted as exc:
        hold_signals()  # a second Ctrl-C (or timeout's signal to the group) must not cut the clean-up
        code = exc.exit_code
        # The traceback holds Ray handles; freed after shutdown they would make Ray reconnect.
        exc.__traceback__ = None
        del exc
        gc.collect()
        stop_local_ray()
        typer.echo(interrupted_line(out), err=True)
        raise typer.Exit(code=code) from None
