"""Progress bar, plan and final summary for a run."""

from __future__ import annotations

import time

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    ProgressColumn,
    TextColumn,
    TimeElapsedColumn,
)
from rich.table import Table
from rich.text import Text

from saldata.cli.interrupt import catch_signals
from saldata.pipelines.config import ExtractConfig
from saldata.pipelines.live_progress import RunProgress, format_eta, rate_text
from saldata.storage.os_errors import human_bytes
from saldata.words import agree, plural


class LiveColumn(ProgressColumn):
    """Text from the run's progress record, so the bar says what ``saldata status`` says."""

    max_refresh = 0.5

    def render(self, task) -> Text:
        live: RunProgress | None = task.fields.get("live")
        return Text(self.text(live, time.time()) if live else "")


class CommittedColumn(LiveColumn):
    @staticmethod
    def text(live: RunProgress, now: float) -> str:
        return f"committed {live.committed}"


class RateColumn(LiveColumn):
    @staticmethod
    def text(live: RunProgress, now: float) -> str:
        return rate_text(live, now)


class EtaColumn(LiveColumn):
    @staticmethod
    def text(live: RunProgress, now: float) -> str:
        return f"ETA {format_eta(live.eta_s(now))}"


def print_plan(config: ExtractConfig, console: Console | None = None) -> None:
    from saldata.cli.report import report_console
    from saldata.pipelines.extract import plan_run
    from saldata.storage.catalog import committed_shards

    console = console or report_console()
    plan = plan_run(config)
    g = plan.geometry
    full = len(plan.shards) * config.shard_size == g.n_images  # else the last shard holds fewer
    shards = f"{plural(len(plan.shards), 'shard')} of {'' if full else 'up to '}{plural(config.shard_size, 'image')}"
    console.print(
        f"Plan for {config.out} (dry run: nothing written)\n"
        f"  images: {plan.n_images} from {config.dataset}   {shards}\n"
        f"  model: {config.model.model} ({plan.model_dir})\n"
        f"  layers {_layer_list(plan.attributes['layers'])}, tokens <= {g.max_tokens}, hidden {g.hidden_size}, "
        f"heads stored {g.heads}, "
        f"grids {g.base_grid[0]}x{g.base_grid[1]} + {g.highres_grid[0]}x{g.highres_grid[1]}"
    )
    committed = committed_shards(config.out)
    if committed:
        skips = agree(len(committed), "it", "them")
        console.print(f"  already committed in {config.out}: {plural(len(committed), 'shard')} (a rerun skips {skips})")
    table = Table("array", "shape", "dtype", "uncompressed", "per image", title="Store size (upper bound)")
    sizes = plan.array_bytes()
    from saldata.schemas.store import ARRAYS

    for spec in ARRAYS:
        table.add_row(
            spec.name,
            str(spec.shape(g)),
            spec.dtype,
            human_bytes(sizes[spec.name]),
            human_bytes(sizes[spec.name] / max(1, g.n_images)),
        )
    table.add_row(
        "total", "", "", human_bytes(sum(sizes.values())), human_bytes(sum(sizes.values()) / max(1, g.n_images))
    )
    console.print(table)
    console.print(
        "Float16 maps compress with blosc-zstd; padding rows past each image's n_tokens compress to almost nothing."
    )
    print_host_memory(plan.maps_budget, config, console)


def print_host_memory(budget, config: ExtractConfig, console: Console) -> None:
    """The host-memory arithmetic of one model actor (pipelines/host_memory.py), and whether it fits."""
    from saldata.errors import ConfigError
    from saldata.pipelines.host_memory import DEFAULT_SHARE

    source = "--host-memory" if budget.given else f"default: {DEFAULT_SHARE:.0%} of available memory per model actor"
    per_array = ", ".join(f"{name} {human_bytes(n)}" for name, n in budget.per_image.items())
    console.print(
        f"Host memory per model actor ({source}): {human_bytes(budget.budget)}\n"
        f"  maps per image: {per_array} = {human_bytes(budget.image_bytes)}\n"
        f"  images per batch: {config.batch_size} (a batch's maps are copied from the device into its shard's block: "
        "no host memory of their own)\n"
        "  batches in flight: 1 per model actor (its maps reach the block before the next batch starts)\n"
        f"  shard block: {plural(budget.shard_size, 'image')} x {human_bytes(budget.image_bytes)} = "
        f"{human_bytes(budget.shard_bytes)}, one in the model actor\n"
        f"  shards in flight (model done, being written): {budget.shards_in_flight}\n"
        f"  peak: (1 + {budget.shards_in_flight}) x {human_bytes(budget.shard_bytes)} = {human_bytes(budget.peak)}"
    )
    try:
        budget.check()
    except ConfigError as exc:
        console.print(f"  does not fit: {exc}")


def _layer_list(layers: list[int]) -> str:
    """``0..7`` for a run of consecutive layers, else the list."""
    if len(layers) > 2 and layers == list(range(layers[0], layers[-1] + 1)):
        return f"{layers[0]}..{layers[-1]}"
    return ",".join(map(str, layers))


def run_with_progress(
    plan, warnings: list[str], *, overwrite: bool = False, retry_failed: bool = False, console: Console | None = None
) -> None:
    """Run a plan that passed pre-flight (``pipelines/preflight.py``), with a live bar and a summary."""
    from saldata.pipelines.extract import run_extraction
    from saldata.pipelines.ray_runtime import start_actors

    config = plan.config
    console = console or Console(stderr=True)
    for warning in warnings:
        console.print(warning, markup=False, highlight=False)
    if not has_work(plan, retry_failed) and not overwrite:
        # Nothing to extract: say so without starting Ray. (Verification under the lock may still
        # find a damaged shard, and then the run starts Ray itself and redoes it.)
        actors = None
    else:
        with console.status("Starting Ray and the model actors..."):
            actors = start_actors(config, plan.model_dir)
            catch_signals()  # ray.init set its own SIGTERM handler
    console.print(
        f"{plural(plan.n_images, 'image')} in {plural(len(plan.shards), 'shard')}; model {config.model.model} "
        f"({plan.model_dir})",
        soft_wrap=True,  # one line, whatever the width: a path is not to be cut
        markup=False,
        highlight=False,
    )
    columns = (
        TextColumn("[bold]extract"),
        BarColumn(),
        MofNCompleteColumn(),
        CommittedColumn(),
        RateColumn(),
        TimeElapsedColumn(),
        EtaColumn(),
    )
    progress = Progress(*columns, console=console)
    task = progress.add_task("extract", total=None, live=None)

    def started(work, state):
        if state.finished:
            console.print(f"Finished the commits a killed run left half done: shards {_listed(state.finished)}.")
        if state.restored:
            console.print(
                f"Restored the store's metadata changed since its creation, as commits/store.json records it: "
                f"{', '.join(state.restored)}.",
                markup=False,
                highlight=False,
            )
        for shard, problems in sorted(state.damaged.items()):
            console.print(f"Shard {shard} is damaged and is redone: {problems[0]}", markup=False, highlight=False)
        if state.committed and work:
            _say_resumed(console, len(state.committed), [w for w in work if w.retry])
        if work:
            progress.update(task, total=sum(w.n_images for w in work))
            progress.start()  # only once the output is ours and has work: a refused run draws no bar

    try:
        summary = run_extraction(
            plan,
            overwrite=overwrite,
            retry_failed=retry_failed,
            on_start=started,
            on_progress=lambda live: progress.update(task, completed=live.processed, live=live),
            actors=actors,
            checked=True,
        )
    finally:
        progress.stop()
    report = Console()  # the command's report goes to stdout, like every other command's; the bar stays on stderr
    if summary.processed == 0 and summary.skipped_shards == len(plan.shards):
        report.print(nothing_to_do(config.out), markup=False, highlight=False)
        return
    report.print(
        f"[green]done[/] {summary.done}  [red]failed[/] {summary.failed}  processed {summary.processed} of "
        f"{plural(summary.images, 'image')} in {summary.seconds:.1f} s\n  store:   {summary.store}\n"
        f"  catalog: {summary.catalog}",
        soft_wrap=True,  # paths whole, whatever the width
    )
    if summary.actor_busy_fraction is not None:
        sizes = ", ".join(map(str, summary.batch_sizes))
        report.print(
            f"  model actors busy {100 * summary.actor_busy_fraction:.0f}% of their active time; "
            f"images per model call: {sizes}"
        )
    if summary.failed:
        from saldata.pipelines.status import output_status

        report.print("  failures by reason (whole output):")
        for reason, count in output_status(config.out).failures:
            report.print(f"    {count:5d}  {reason}", markup=False, highlight=False)
        report.print(
            f"  details: saldata status {config.out} --failed; redo them with --retry-failed",
            soft_wrap=True,
            markup=False,
            highlight=False,
        )


def _say_resumed(console: Console, committed: int, retried: list) -> None:
    """What a rerun does with the shards already committed: skips them, or retries their failed images."""
    skipped = committed - len(retried)
    if skipped:
        console.print(f"Resuming: {plural(skipped, 'shard')} already committed {agree(skipped, 'is', 'are')} skipped.")
    if retried:
        images = sum(len(w.retry) for w in retried)
        console.print(
            f"Retrying {plural(images, 'failed image')} in {plural(len(retried), 'committed shard')} "
            f"({_listed([w.shard.index for w in retried])}); {agree(len(retried), 'its', 'their')} done images are kept."
        )


def nothing_to_do(out) -> str:
    return f"Nothing to do: every shard of {out} is committed and intact (saldata status {out} shows them)."


def has_work(plan, retry_failed: bool) -> bool:
    """Whether the commit records leave anything to do (read-only; pre-flight checked the output)."""
    from saldata.storage.commits import commits_dir, read_commit_log

    out = plan.config.out
    if retry_failed or not commits_dir(out).is_dir():
        return True
    log = read_commit_log(out)
    return bool(log.pending or log.unreadable) or len(log.committed) < len(plan.shards)


def _listed(numbers: list[int]) -> str:
    return ", ".join(map(str, numbers))
