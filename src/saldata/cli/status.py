"""``saldata status OUT``."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from saldata.errors import SaldataError


def status(out: Annotated[Path, typer.Argument(help="An extraction output directory.")]) -> None:
    """Done / failed / pending counts, failures by reason, and throughput and ETA of a running job."""
    from saldata.pipelines.status import output_status

    try:
        st = output_status(out)
    except SaldataError as exc:
        typer.secho(f"Error: {exc}", fg=typer.colors.RED, err=True)
        raise typer.Exit(code=1) from None
    typer.echo(f"{out}")
    typer.echo(f"  images:  {st.total}   done {st.done}   failed {st.failed}   pending {st.pending}")
    typer.echo(f"  shards:  {st.shards_committed} of {st.shards_total} committed")
    if st.running and st.running.get("corrupt"):
        typer.echo(f"  lock:    {st.running['error']}")
    elif st.running:
        eta = f"{st.eta_s:.0f} s" if st.eta_s is not None else "unknown"
        rate = f"{st.rate:.2f} images/s" if st.rate else "starting"
        typer.echo(
            f"  running: run {st.running.get('run_id')} (pid {st.running.get('pid')} on "
            f"{st.running.get('host')}), {rate}, ETA {eta}"
        )
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
