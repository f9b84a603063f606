"""``saldata datasets``: the dataset adapters and the folder layout each expects."""

from __future__ import annotations


def datasets() -> None:
    """List the datasets --dataset accepts, their splits and the layout each expects under --data-root."""
    from saldata.cli.report import report_console
    from saldata.datasets import DATASETS, dataset_spec

    console = report_console()
    for name, reader in DATASETS.items():
        splits = ", ".join(reader.splits)
        console.print(f"[bold]{dataset_spec(name)}[/]  splits: {splits} (default {reader.default_split})")
        console.print(reader.layout, markup=False, highlight=False, soft_wrap=True)
        console.print()
