"""Where the commands print their reports (tables, summaries): one rich Console for all.

On a terminal it fits the terminal. Into a pipe or a file there is no width to fit, and rich
would assume 80 columns, cutting values (``COCO_…``) and breaking cells over lines: there it
prints at full width, so ``grep``, ``awk`` and a saved report see each row on one line.
"""

from __future__ import annotations

from typing import IO

PIPE_WIDTH = 100_000  # wider than any row: tables keep their natural width, nothing is cut


def report_console(file: IO[str] | None = None):
    """A rich ``Console`` writing to ``file`` (default stdout), at full width when that is not a terminal."""
    from rich.console import Console

    console = Console(file=file)
    return console if console.is_terminal else Console(file=file, width=PIPE_WIDTH)
