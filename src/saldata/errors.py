"""One root error for everything saldata raises on purpose.

User-facing errors carry a message that says what is wrong and what to do; the CLI prints
the message alone (no traceback). Subclasses also inherit the matching built-in so callers
that catch ``ValueError``/``FileNotFoundError`` keep working.

Each class carries the exit code every command gives for it: ``USAGE`` (2) for something the
user typed (a setting, a path that is not what it should be), ``FAILURE`` (1) for a failure or
damage. This is the one place that rule lives; the CLI reads ``exit_code`` and nothing else.
"""

USAGE = 2
FAILURE = 1


class SaldataError(Exception):
    """Base of all saldata errors."""

    exit_code = FAILURE


class ConfigError(SaldataError, ValueError):
    """A setting is invalid or two settings contradict each other."""

    exit_code = USAGE


class ImageIndexError(ConfigError, IndexError):
    """An image index (``idx``) the output does not hold."""


class DatasetError(SaldataError, FileNotFoundError):
    """A dataset is missing or not laid out as expected."""

    exit_code = USAGE


class ModelLoadError(SaldataError, OSError):
    """A model could not be found or loaded."""


class ModelNotFoundError(ModelLoadError):
    """``--model`` names a path that holds no model: a usage error."""

    exit_code = USAGE


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


class QueryTimeout(SaldataError, TimeoutError):
    """A catalog query ran past its time limit and was stopped."""


class NotAnOutputError(StoreError):
    """OUT holds no saldata output: a mistyped path, a usage error rather than damage."""

    exit_code = USAGE


class NotInOutputError(StoreError):
    """A name the user gave (an image id) that the output does not hold: a usage error."""

    exit_code = USAGE


class OutputInUseError(StoreError):
    """Another run holds OUT: the user's command collides with it; nothing is wrong with OUT."""

    exit_code = USAGE


def first_line(exc: BaseException) -> str:
    """An exception in one line: its message's first line, or its type when it has none."""
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
