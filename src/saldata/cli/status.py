"""``saldata status OUT``."""

from __future__ import annotations

from typing import Annotated

import typer

from saldata.cli.failure import fail
from saldata.cli.locations import OutArg, StorageOptions, location
from saldata.errors import SaldataError
from saldata.words import plural


def status(
    out: OutArg,
    failed: Annotated[
        bool, typer.Option("--failed", help="Also list each failed image: idx, image id, file and reason.")
    ] = False,
    storage_option: StorageOptions = None,
) -> None:
    """Done / failed / pending counts, failures by reason, and throughput and ETA of a running job."""
    from saldata.pipelines.live_progress import format_eta, rate_text
    from saldata.pipelines.status import failed_images, output_status

    try:
        where = location(out, storage_option)
        st = output_status(where)
        listed = failed_images(where) if failed else None
    except SaldataError as exc:
        fail(exc)
    typer.echo(f"{out}")
    typer.echo(f"  images:  {st.total}   done {st.done}   failed {st.failed}   pending {st.pending}")
    typer.echo(f"  shards:  {st.shards_committed} of {st.shards_total} committed")
    if st.running and st.running.get("corrupt"):
        typer.echo(f"  lock:    {st.running['error']}")
    elif st.running:
        typer.echo(
            f"  running: run {st.running.get('run_id')} (pid {st.running.get('pid')} on {st.running.get('host')})"
        )
        if st.live and not st.live.model_ready:
            typer.echo("  this run: loading the model, ETA unknown")
        elif st.live:
            typer.echo(
                f"  this run: {st.live.processed} of {plural(st.live.total, 'image')} through the model, "
                f"committed {st.live.committed}; {rate_text(st.live)}, ETA {format_eta(st.eta_s)}"
            )
        else:
            typer.echo("  this run: starting Ray and the model, ETA unknown")
    elif st.last and st.last.processed:
        typer.echo(f"  last run: {rate_text(st.last)}")
    elif st.rate:
        typer.echo(f"  last run: {st.rate:.2f} images/s")
    if st.interrupted_commits or st.unreadable_records:
        shards = ", ".join(map(str, st.interrupted_commits + st.unreadable_records))
        typer.echo(
            f"  not counted: shards {shards} (an interrupted commit or an unreadable record); rerun the extraction"
        )
    if st.failures:
        typer.echo("  failures by reason:")
        for reason, count in st.failures:
            typer.echo(f"    {count:6d}  {reason}")
    if listed is not None:
        _list_failed(listed)


def _list_failed(images) -> None:
    if not images:
        typer.echo("  failed images: none")
        return
    typer.echo("  failed images (idx, image id, file, reason):")
    width = len(str(images[-1].idx))
    for image in images:
        reason = image.error.removeprefix(image.source_path).lstrip(": ")
        typer.echo(f"    {image.idx:>{width}}  {image.image_id}  {image.source_path}: {reason}")
