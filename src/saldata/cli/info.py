"""``saldata info OUT``: what an output is, in a dozen lines (or JSON, for scripts)."""

from __future__ import annotations

import enum
import json
from typing import Annotated

import typer

from saldata.cli.failure import fail
from saldata.cli.locations import OutArg, StorageOptions, location
from saldata.errors import SaldataError
from saldata.words import plural


class InfoFormat(str, enum.Enum):
    text = "text"
    json = "json"


def info(
    out: OutArg,
    format: Annotated[InfoFormat, typer.Option("--format", "-f", help="text for people, json for scripts.")] = (
        InfoFormat.text
    ),
    storage_option: StorageOptions = None,
) -> None:
    """Model, prompt, size, layers, heads, versions, images done/failed/pending, bytes, evaluations."""
    from saldata.report.info import describe

    try:
        described = describe(location(out, storage_option))
    except SaldataError as exc:
        fail(exc)
    if format is InfoFormat.json:
        typer.echo(json.dumps(described, indent=2))
        return
    from saldata.cli.report import report_console

    console = report_console()
    for line in info_lines(described):
        console.print(line, markup=False, highlight=False, soft_wrap=True)


def info_lines(info: dict) -> list[str]:
    """``describe``'s dict as the lines ``saldata info`` prints."""
    from saldata.storage.os_errors import human_bytes

    model, prompt, images, heads = info["model"], info["prompt"], info["images"], info["heads"]
    width, height = info["image_size"]
    written, running = info["versions"]["written"], info["versions"]["running"]
    lines = [
        info["out"],
        f"  model:      {model['name']} (revision {model['revision'] or 'unknown'})",
        f"              at {model['path']}",
        f"  prompt:     {prompt['id']}: {prompt['text']}",
        f"  data:       {', '.join(_dataset(d) for d in info['datasets']) or 'no committed image yet'}",
        f"  images:     {images['total']} at {width}x{height}   done {images['done']}   failed {images['failed']}"
        f"   pending {images['pending']}   ({info['shards']['committed']} of "
        f"{plural(info['shards']['total'], 'shard')} committed)",
    ]
    lines += [f"    {f['count']:6d}  {f['reason']}" for f in images["failed_by_reason"]]
    grids = info["grids"]
    lines += [
        f"  layers:     {', '.join(map(str, info['layers']))} of {info['n_decoder_layers'] or '?'} decoder layers",
        f"  heads:      {heads['captured']} ({plural(heads['stored'] or 0, 'head')} stored)",
        f"  grids:      base {_grid(grids['base'])}, highres {_grid(grids['highres'])}",
        f"  dtype:      {info['dtype']}, up to {info['max_new_tokens']} new tokens, {info['shard_size']} images a shard",
        f"  schema:     store {info['schema']['store']}, catalog {info['schema']['catalog']}",
        f"  written by: saldata {written['saldata']}, transformers {written['transformers']} on {info['created']}",
        f"  running:    saldata {running['saldata']}, transformers {running['transformers'] or 'not installed'}",
        f"  size:       {human_bytes(info['bytes']['total'])} in all; features.zarr "
        f"{human_bytes(info['bytes']['store'])}, catalog {human_bytes(info['bytes']['catalog'])}",
    ]
    lines += _evaluation_lines(info["evaluation"])
    objects = info["objects"]
    counted = plural(objects["rows"], "object") if objects["rows"] is not None else "rows unreadable"
    lines.append(f"  objects:    {counted if objects['added'] else 'not added'}")
    return lines


def _evaluation_lines(tables: list[dict]) -> list[str]:
    if not tables:
        return ["  evaluate:   not run"]
    lines = ["  evaluate:"]
    for table in tables:
        if "error" in table:
            lines.append(f"    {table['path']}: {table['error']}")
            continue
        settings = table["settings"]
        said = " ".join(f"{k}={_value(v)}" for k, v in sorted(settings.items())) if settings else "no settings recorded"
        lines.append(f"    {table['path']}: {plural(table['rows'], 'row')}; {said}")
    return lines


def _dataset(entry: dict) -> str:
    return f"{entry['dataset']} {entry['split']} ({plural(entry['images'], 'image')})"


def _grid(grid) -> str:
    return "x".join(map(str, grid)) if grid else "?"


def _value(value) -> str:
    return value if isinstance(value, str) else json.dumps(value, separators=(",", ":"))
