"""What the commands say: help pages, plan lines and one-line errors, checked against the code's registries."""

from __future__ import annotations

import io
import re
import subprocess
import sys
from pathlib import Path

import pytest
import typer
from rich.console import Console
from typer.testing import CliRunner

from saldata.cli.main import app
from saldata.datasets import DATASETS, dataset_spec
from saldata.extractors.models import ATTENTIONS, DEFAULT_MODEL, DEVICES, DTYPES
from saldata.extractors.random_models import RANDOM_MODELS

ROOT = Path(__file__).resolve().parents[2]
ANSI = re.compile(r"\x1b\[[0-9;]*m")  # CI sets FORCE_COLOR/GITHUB_ACTIONS: typer then colours help


def invoke(*args: str, columns: int = 200):
    result = CliRunner().invoke(app, list(map(str, args)), env={"COLUMNS": str(columns)})
    return result.exit_code, ANSI.sub("", result.output)


def command_paths(command: typer.core.TyperGroup | None = None, path: tuple[str, ...] = ()):
    """Every command and group of the app, as the words that reach it."""
    command = command or typer.main.get_command(app)
    yield path, command
    for name, sub in getattr(command, "commands", {}).items():
        yield from command_paths(sub, (*path, name))


COMMANDS = {" ".join(path) or "saldata": (path, command) for path, command in command_paths()}


def flat(text: str) -> str:
    """Help text with the table borders and line wrapping taken out."""
    return " ".join(text.replace("│", " ").split())


# -- flags take no value, arguments are NAMES ------------------------------------------------------


@pytest.mark.parametrize("name", COMMANDS)
def test_flags_show_no_value_placeholder(name):
    path, command = COMMANDS[name]
    code, text = invoke(*path, "--help")
    assert code == 0, text
    flags = ["--help"] + [p.opts[0] for p in command.params if getattr(p, "is_flag", False)]
    for flag in flags:
        row = next(line for line in text.splitlines() if f" {flag} " in line)
        assert not re.search(rf"{flag}\s+<", row), row
    assert "<bool>" not in text


def test_extract_flags_are_listed_without_placeholder():
    code, text = invoke("extract", "--help")
    for flag in ("--force-new-tokens", "--overwrite", "--retry-failed", "--dry-run", "--fail-fast"):
        assert re.search(rf"{flag}\s+[A-Z]", text), flag  # straight to the help sentence
    assert re.search(r"--shard-size\s+<int>", text)  # options that take a value keep theirs


@pytest.mark.parametrize(
    "name", [n for n, (_, c) in COMMANDS.items() if any(p.param_type_name == "argument" for p in c.params)]
)
def test_usage_line_names_arguments_in_capitals(name):
    path, command = COMMANDS[name]
    code, text = invoke(*path, "--help")
    usage = next(line for line in text.splitlines() if "Usage:" in line)
    arguments = [p.name.upper() for p in command.params if p.param_type_name == "argument"]
    assert usage.split("[OPTIONS]")[1].split() == arguments, usage


@pytest.mark.parametrize("name", COMMANDS)
def test_defaults_are_values_not_parenthesised(name):
    # typer writes a text show_default as a description, "(...)": --layer showed "[default: (-1)]".
    path, _ = COMMANDS[name]
    code, text = invoke(*path, "--help")
    assert code == 0 and "[default: (" not in flat(text), text


def test_layer_help_names_its_default():
    code, text = invoke("extract", "--help")
    assert code == 0 and "the default, -1, is the last" in flat(text), text


# -- choices and defaults from the registries ------------------------------------------------------


def listed(names) -> str:
    *rest, last = names
    return f"{', '.join(rest)} or {last}"


def test_dataset_help_lists_every_registered_dataset():
    code, text = invoke("extract", "--help")
    assert f"--dataset <str> {listed(dataset_spec(n) for n in DATASETS)}." in flat(text)


def test_model_help_lists_every_random_model():
    code, text = invoke("extract", "--help")
    assert f"random model built offline: {listed(RANDOM_MODELS)}." in flat(text)


@pytest.mark.parametrize("columns", [80, 200])
def test_model_default_is_shown_whole(columns):
    code, text = invoke("extract", "--help", columns=columns)
    assert DEFAULT_MODEL in text, text


def test_device_dtype_and_attention_choices_come_from_their_registries():
    code, text = invoke("extract", "--help")
    assert f"--device <str> {listed(DEVICES)}." in flat(text)
    assert f"--dtype <dtype> {listed(DTYPES)};" in flat(text)
    assert f"--attention <str> Attention kernel the capture wraps: {listed(ATTENTIONS)}." in flat(text)


@pytest.mark.parametrize(
    ("option", "says"),
    [
        (["--device", "gpu"], f"--device must be one of {', '.join(DEVICES)}, not 'gpu'"),
        (["--attention", "flex"], f"--attention must be one of {', '.join(ATTENTIONS)}, not 'flex'"),
        (["--attention", "eager"], "--attention eager is what saldata exists to avoid"),
    ],
)
def test_unknown_device_or_attention_is_a_one_line_error(tmp_path, option, says):
    code, text = invoke("extract", *option, "--model", "tiny-random", "--out", tmp_path / "out", "--dry-run")
    assert code == 2 and len(text.strip().splitlines()) == 1, text
    assert says in text


# -- the dry-run plan counts shards and images -----------------------------------------------------


@pytest.mark.parametrize(
    ("shards", "shard_size", "n_images", "committed", "says"),
    [
        (1, 64, 6, 0, "1 shard of up to 64 images"),  # six images in a shard that holds 64
        (1, 64, 64, 0, "1 shard of 64 images"),
        (3, 64, 150, 0, "3 shards of up to 64 images"),
        (6, 1, 6, 0, "6 shards of 1 image"),
        (3, 64, 150, 1, "already committed in {out}: 1 shard (a rerun skips it)"),
        (3, 64, 150, 2, "already committed in {out}: 2 shards (a rerun skips them)"),
    ],
)
def test_plan_counts_shards_and_images(monkeypatch, tmp_path, shards, shard_size, n_images, committed, says):
    from saldata.cli.progress import print_plan
    from saldata.extractors.models import ModelSettings
    from saldata.pipelines import extract
    from saldata.pipelines.config import ExtractConfig
    from saldata.pipelines.host_memory import MapsBudget
    from saldata.schemas.store import Geometry
    from saldata.storage import catalog

    config = ExtractConfig(dataset="demo", out=tmp_path, model=ModelSettings("tiny-random"), shard_size=shard_size)
    geometry = Geometry(n_images, 4, 8, 2, (2, 2), (4, 4), (28, 28))
    budget = MapsBudget.plan(geometry, shard_size, 10**12, given=True)
    plan = extract.RunPlan(config, [None] * shards, tmp_path / "model", geometry, {"layers": [1]}, budget)
    monkeypatch.setattr(extract, "plan_run", lambda config: plan)
    monkeypatch.setattr(catalog, "committed_shards", lambda out: set(range(committed)))
    console = Console(file=io.StringIO(), width=200)
    print_plan(config, console=console)
    assert says.format(out=tmp_path) in console.file.getvalue()


# -- an unknown image id says how to list the ids --------------------------------------------------


def test_show_unknown_id_says_how_to_list_ids(tmp_path):
    from saldata.schemas.store import STORE_SCHEMA_VERSION, Geometry
    from saldata.storage.zarr_store import create_store

    out = tmp_path / "out"
    out.mkdir()
    attributes = {"schema_version": STORE_SCHEMA_VERSION, "layers": [1]}
    create_store(out, Geometry(2, 4, 8, 1, (2, 2), (4, 4), (28, 28)), 2, attributes)
    (out / "catalog").mkdir()  # an output whose first shard has not committed: no ids at all
    code, text = invoke("show", out, "COCO_nope", "-o", tmp_path / "fig.png")
    assert code != 0 and len(text.strip().splitlines()) == 1, text
    assert "COCO_nope" in text and f'saldata catalog query {out} "SELECT image_id FROM images"' in text
    assert "Traceback" not in text


# -- a missing dataset root is named as given ------------------------------------------------------

ROOTED = [name for name in DATASETS if name != "folder"]


@pytest.mark.parametrize("dataset", [*ROOTED, "folder"])
def test_missing_data_root_is_named(tmp_path, dataset):
    root = tmp_path / "nonexistent"
    if dataset == "folder":
        args, setting = ["--dataset", f"folder:{root}"], f"--dataset folder:{root}"
    else:
        args, setting = ["--dataset", dataset, "--data-root", root], f"--data-root {root}"
    code, text = invoke("extract", *args, "--model", "tiny-random", "--out", tmp_path / "out")
    assert code == 2 and len(text.strip().splitlines()) == 1, text  # a usage error, before Ray starts
    assert f"{setting} does not exist" in text
    assert not (tmp_path / "out").exists()


# -- the training example reads the quick start's output by default --------------------------------


def test_train_demo_defaults_to_the_quick_start_output(tmp_path):
    readme = (ROOT / "README.md").read_text()
    quick_start = re.search(r"saldata extract --dataset demo --model tiny-random --out (\S+)", readme).group(1)
    proc = subprocess.run(
        [sys.executable, str(ROOT / "examples" / "train_demo.py")],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=tmp_path,  # no output there: the default must be named in a one-line error
    )
    assert proc.returncode != 0
    assert "arguments are required" not in proc.stderr and "Traceback" not in proc.stderr, proc.stderr
    assert quick_start in proc.stderr and len(proc.stderr.strip().splitlines()) == 1, proc.stderr
    assert "python examples/train_demo.py\n" in readme or "`python examples/train_demo.py`" in readme
