"""Progress bar and final summary for a run."""

from __future__ import annotations

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    ProgressColumn,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.text import Text

from saldata.pipelines.config import ExtractConfig


class RateColumn(ProgressColumn):
    def render(self, task) -> Text:
        rate = task.completed / task.elapsed if task.elapsed else 0.0
        return Text(f"{rate:.2f} images/s")


def run_with_progress(config: ExtractConfig, console: Console | None = None) -> None:
    from saldata.pipelines.extract import plan_run, run_extraction

    console = console or Console(stderr=True)
    with console.status("Planning: listing images, resolving the model..."):
        plan = plan_run(config)
    console.print(f"{plan.n_images} images in {len(plan.shards)} shards; model {config.model.model} ({plan.model_dir})")
    columns = (
        TextColumn("[bold]extract"),
        BarColumn(),
        MofNCompleteColumn(),
        RateColumn(),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
    )
    with Progress(*columns, console=console) as progress:
        task = progress.add_task("extract", total=plan.n_images)
        summary = run_extraction(plan, on_shard=lambda s: progress.advance(task, s.done + s.failed))
    console.print(
        f"[green]done[/] {summary.done}  [red]failed[/] {summary.failed}  of {summary.images} images "
        f"in {summary.seconds:.1f} s\n  store:   {summary.store}\n  catalog: {summary.catalog}"
    )
