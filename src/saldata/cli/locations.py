"""OUT on the command line: a folder or a URL, and the ``--storage-option`` pairs for a URL's store.

Typer's ``Path`` would fold ``s3://bucket`` into ``s3:/bucket``, so OUT arrives as text and
becomes a location here, once, for every command.
"""

from __future__ import annotations

from typing import Annotated

import typer

from saldata.storage.location import as_out, parse_storage_options

OUT_HELP = "An extraction output: a folder, or a URL such as s3://bucket/prefix."

OutArg = Annotated[str, typer.Argument(help=OUT_HELP, metavar="OUT", show_default=False)]

StorageOptions = Annotated[
    list[str] | None,
    typer.Option(
        "--storage-option",
        metavar="KEY=VALUE",
        help="An option for OUT's object store (fsspec), e.g. endpoint_url=http://host:9000; repeatable. "
        "Credentials come from the usual environment variables (AWS_ACCESS_KEY_ID, ...).",
        show_default=False,
    ),
]


def location(out: str, storage_options: list[str] | None):
    """OUT as the storage layer takes it; a ConfigError (one line) for a bad pair."""
    return as_out(out, parse_storage_options(storage_options))
