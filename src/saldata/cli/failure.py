"""How every command ends on an error: one ``Error:`` line on stderr, and the error's exit code.

The code comes from the error's class (``saldata.errors``: 2 for a usage error, 1 for a failure
or damage), so every command follows one rule; a plain message is a usage error unless told.
"""

from __future__ import annotations

from typing import NoReturn

import typer

from saldata.errors import USAGE


def fail(error: Exception | str, code: int | None = None) -> NoReturn:
    typer.secho(f"Error: {error}", fg=typer.colors.RED, err=True)
    raise typer.Exit(code=code if code is not None else getattr(error, "exit_code", USAGE))
