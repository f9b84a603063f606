"""``saldata verify OUT``."""

from __future__ import annotations

from typing import Annotated

import typer

from saldata.cli.failure import fail
from saldata.cli.locations import OutArg, StorageOptions, location
from saldata.errors import SaldataError
from saldata.words import plural


def verify(
    out: OutArg,
    quick: Annotated[bool, typer.Option("--quick", help="Check presence and sizes only (no checksums).")] = False,
    storage_option: StorageOptions = None,
) -> None:
    """Check every committed shard against its commit record, and the catalog against the store.

    Exit code 0 when the output is intact, 1 when something is damaged (each shard and file named).
    """
    from saldata.pipelines.verify import verify_output

    try:
        report = verify_output(location(out, storage_option), quick=quick)
    except SaldataError as exc:
        fail(exc)
    how = "presence and sizes" if quick else "checksums and catalog rows"
    typer.echo(f"{out}: {plural(report.checked, 'committed shard')} checked ({how})")
    for shard, problems in sorted(report.damaged.items()):
        for problem in problems:
            typer.echo(f"  damaged  shard {shard}: {problem}")
    for shard in report.pending:
        typer.echo(f"  pending  shard {shard}: a commit was interrupted; rerun the extraction to finish it")
    for problem in report.objects:
        typer.echo(f"  damaged  objects: {problem}")
    for rel in report.stray:
        typer.echo(f"  stray    {rel}: no commit record names this file")
    if not report.metadata_checked:
        typer.echo(
            "  metadata not checked: an output of this store schema_version records no checksums of the "
            "store's metadata (re-extract with --overwrite to get them)"
        )
    if report.intact:
        typer.echo("  intact")
        return
    damaged = ", ".join(map(str, sorted(report.damaged))) or "none"
    typer.echo(
        f"  {plural(len(report.damaged), 'damaged shard')} ({damaged}); rerun the same saldata extract command to redo them."
    )
    if report.objects:
        typer.echo("  the objects tables are damaged; rerun saldata objects with the same sources to rebuild them.")
    raise typer.Exit(code=1)
