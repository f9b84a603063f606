"""What a failure inside Ray means for a run: a shard to redo, a model that cannot load, or a
write that failed; each said in one line, with Ray's full report kept for the journal."""

from __future__ import annotations

import re
from pathlib import Path

from saldata.errors import ModelLoadError, SaldataError, StoreError
from saldata.pipelines.plan import Shard
from saldata.pipelines.steps import StagedShard
from saldata.storage.os_errors import explain


class ShardLost(Exception):
    """A shard's work died with a node, a worker or the model actor; the shard can be redone."""


class RayFailure(SaldataError):
    """A failure inside Ray: one line for the console, and ``detail``, Ray's full report, for the journal."""

    def __init__(self, message: str, detail: str):
        super().__init__(message)
        self.detail = detail


class ModelFailed(RayFailure, ModelLoadError):
    """The model actor could not start."""


class WriteFailed(RayFailure, StoreError):
    """A shard's write task failed (the report holds the worker's traceback)."""


def raise_if_model_failed(exc: BaseException, model_dir: Path) -> None:
    """A model actor whose ``__init__`` raised never comes back: stop, naming the real cause."""
    import ray.exceptions as rex

    actor_error = exc if isinstance(exc, rex.RayActorError) else getattr(exc, "cause", None)
    if not (isinstance(actor_error, rex.RayActorError) and actor_error.actor_init_failed):
        return
    detail = plain(str(actor_error))
    raise ModelFailed(
        f"The model could not be loaded from {model_dir}: {root_cause(detail)}. Committed shards are "
        "untouched; check the model's files (or --model, --dtype, --device), then rerun the same command.",
        detail,
    ) from None


def root_cause(report: str) -> str:
    """The innermost 'SomeError: message' line of a Python traceback Ray passed on as text."""
    causes = [line.strip() for line in report.splitlines() if re.match(r"\s*[\w.]+(Error|Exception)\b.*:", line)]
    return causes[-1] if causes else report.strip().splitlines()[-1] if report.strip() else "unknown cause"


def plain(text: str) -> str:
    return re.sub(r"\x1b\[[0-9;]*m", "", text)  # Ray colours its task names


def is_lost(exc: BaseException) -> bool:
    import ray.exceptions as rex

    kinds = (rex.RayActorError, rex.WorkerCrashedError, rex.NodeDiedError, rex.ObjectLostError)
    return isinstance(exc, kinds) or isinstance(getattr(exc, "cause", None), kinds)


def get_shard(ref, shard: Shard, out: Path, model_dir: Path) -> StagedShard:
    import ray

    try:
        return ray.get(ref)
    except Exception as exc:
        raise_if_model_failed(exc, model_dir)
        if is_lost(exc):
            raise ShardLost(first_line(getattr(exc, "cause", None) or exc)) from None
        if not isinstance(exc, ray.exceptions.RayTaskError):
            raise
        cause = exc.cause if isinstance(exc.cause, Exception) else exc
        if isinstance(cause, SaldataError):
            raise cause from None
        reason = explain(cause, out) if isinstance(cause, OSError) else f"{type(cause).__name__}: {cause}"
        raise WriteFailed(
            f"Shard {shard.index} (images {shard.start}..{shard.stop - 1}) could not be written to {out}: "
            f"{reason}. It stays uncommitted; committed shards are untouched. "
            "Fix the cause and rerun the same command to resume.",
            plain(str(exc)),
        ) from None


def first_line(exc: BaseException) -> str:
    text = plain(str(exc)).strip()
    return f"{type(exc).__name__}: {text.splitlines()[0]}" if text else type(exc).__name__
