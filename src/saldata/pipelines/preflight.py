"""Everything a run can check before Ray starts, in a couple of seconds.

A mistake found here is one line and exit code 2, instead of a Ray traceback after 20 s of
start-up: the layer against the model's config, the host memory the maps need, the attention kernel, the device, the output
folder (not a file, writable, room for the planned bytes), a live run on it, and the resume
guards (settings, schema version, source images).
"""

from __future__ import annotations

import importlib.util
import os
import shutil
from pathlib import Path

from saldata.errors import ConfigError, OutputInUseError, StoreError
from saldata.pipelines.config import ExtractConfig
from saldata.storage.location import check_reachable, is_object


def preflight(config: ExtractConfig, overwrite: bool) -> tuple:
    """(plan, warnings): the run's plan, checked; raises ConfigError/StoreError on a mistake."""
    from saldata.pipelines.extract import plan_run
    from saldata.pipelines.resume import check_output

    check_device(config)
    check_out_folder(config.out)
    check_not_in_use(config.out)  # before the model's config is read: a refusal takes a second
    plan = plan_run(config)  # also checks --layer against the model's config
    plan.maps_budget.check()
    if not overwrite:
        check_output(plan)
    return plan, space_warnings(plan)


def check_device(config: ExtractConfig) -> None:
    settings = config.model
    if settings.attention == "flash_attention_2" and importlib.util.find_spec("flash_attn") is None:
        raise ConfigError(
            "--attention flash_attention_2 needs the flash-attn package, which is not installed here; "
            "pip install flash-attn, or use --attention sdpa."
        )
    if config.address is None and settings.device.startswith("cuda"):
        import torch

        if not torch.cuda.is_available():
            raise ConfigError(
                f"--device {settings.device} was asked for, but this machine has no usable GPU; use --device auto "
                "(the GPU where there is one, else the CPU) or --device cpu."
            )
    if settings.attention == "flash_attention_2" and settings.device == "cpu":
        raise ConfigError("--attention flash_attention_2 runs on GPUs only; use --attention sdpa with --device cpu.")


def check_out_folder(out: Path) -> None:
    if is_object(out):
        check_reachable(out)
        return
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise ConfigError(f"--out {out} is a file; give a directory (new, or an earlier output to resume).")
    existing = _nearest_existing(out)
    if not existing.is_dir():
        raise ConfigError(f"--out {out} cannot be created: {existing} is a file.")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise ConfigError(f"--out {out} is not writable ({existing} does not let this user write); choose another.")


def check_not_in_use(out: Path) -> None:
    from saldata.storage.lock import is_stale, read_lock

    lock = read_lock(out)
    if lock is None or is_stale(lock):
        return
    if lock.get("corrupt"):
        raise StoreError(lock["error"])
    raise OutputInUseError(
        f"{out} is in use by run {lock.get('run_id')} (pid {lock.get('pid')} on {lock.get('host')}, heartbeat "
        f"{lock['heartbeat_age_s']:.0f} s ago). Wait for it to finish, or choose another --out."
    )


def space_warnings(plan) -> list[str]:
    """A warning when the disk has less room than the store's uncompressed upper bound."""
    from saldata.storage.os_errors import human_bytes

    needed = sum(plan.array_bytes().values())
    if is_object(plan.config.out):
        return []  # an object store has no free space to ask
    free = shutil.disk_usage(_nearest_existing(plan.config.out)).free
    if free >= needed:
        return []
    return [
        f"warning: {human_bytes(free)} free on the disk of {plan.config.out}, and the store may take up to "
        f"{human_bytes(needed)} uncompressed (compressed it is usually several times smaller)."
    ]


def _nearest_existing(path: Path) -> Path:
    path = Path(path).absolute()
    while not path.exists() and path != path.parent:
        path = path.parent
    return path
