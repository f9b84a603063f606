"""One root error for everything saldata raises on purpose.

User-facing errors carry a message that says what is wrong and what to do; the CLI prints
the message alone (no traceback). Subclasses also inherit the matching built-in so callers
that catch ``ValueError``/``FileNotFoundError`` keep working.
"""


class SaldataError(Exception):
    """Base of all saldata errors."""


class ConfigError(SaldataError, ValueError):
    """A setting is invalid or two settings contradict each other."""


class DatasetError(SaldataError, FileNotFoundError):
    """A dataset is missing or not laid out as expected."""


class ModelLoadError(SaldataError, OSError):
    """A model could not be found or loaded."""


class ImageLoadError(SaldataError, OSError):
    """One image could not be read; recorded in the catalog, never fatal to a run."""


class StoreError(SaldataError, OSError):
    """The output store is unusable (wrong schema, write failure)."""


class QueryTimeout(SaldataError, TimeoutError):
    """A catalog query ran past its time limit and was stopped."""


def first_line(exc: BaseException) -> str:
    """An exception in one line: its message's first line, or its type when it has none."""
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
