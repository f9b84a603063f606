"""One root error for everything saldata raises on purpose.

User-facing errors carry a message that says what is wrong and what to do; the CLI prints
the message alone (no traceback). Subclasses also inherit the matching built-in so callers
that catch ``ValueError``/``FileNotFoundError`` keep working.
"""


class SaldataError(Exception):
    """Base of all saldata errors."""


class ConfigError(SaldataError, ValueError):
    """A setting is invalid or two settings contradict each other."""


class ImageIndexError(ConfigError, IndexError):
    """An image index (``idx``) the output does not hold."""


class DatasetError(SaldataError, FileNotFoundError):
    """A dataset is missing or not laid out as expected."""


class ModelLoadError(SaldataError, OSError):
    """A model could not be found or loaded."""


class ImageLoadError(SaldataError, OSError):
    """One image could not be read; recorded in the catalog, never fatal to a run."""


class StoreError(SaldataError, OSError):
    """The output store is unusable (wrong schema, write failure)."""


class DamageError(StoreError):
    """A committed file is missing, unreadable or other than its commit record says: the output
    was damaged or changed after the commit. ``saldata verify`` names every such file, and a rerun
    of the extraction redoes their shards. The CLI exits 1 (the output is wrong, not the command)."""


class DamagedChunkError(DamageError):
    """A committed chunk of the feature store fails its checksum: damage to repair, not a mistake (exit 1)."""


def exit_code(exc: SaldataError) -> int:
    """The CLI's exit status for ``exc``: 1 where the output is damaged, 2 for what the command asked."""
    return 1 if isinstance(exc, DamageError) else 2


class QueryTimeout(SaldataError, TimeoutError):
    """A catalog query ran past its time limit and was stopped."""


def first_line(exc: BaseException) -> str:
    """An exception in one line: its message's first line, or its type when it has none."""
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
