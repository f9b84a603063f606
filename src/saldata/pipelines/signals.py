"""SIGINT and SIGTERM during a run, turned into ``Interrupted`` at a point where it is safe.

Raising from a signal handler while Ray's client code holds one of its locks can deadlock the
shutdown that follows, so while the driver waits on Ray (``deferred``) the handler only notes
the signal, and the wait loop raises it between two Ray calls (``raise_if_signalled``).
"""

from __future__ import annotations

import contextlib
import signal


class Interrupted(BaseException):
    """Raised in the main thread for SIGINT or SIGTERM (a BaseException, like KeyboardInterrupt)."""

    def __init__(self, signum: int):
        super().__init__(signal.Signals(signum).name)
        self.signum = signum

    @property
    def exit_code(self) -> int:
        return 128 + self.signum


_state = {"deferred": False, "pending": None}


def _handle(signum, frame) -> None:
    if _state["deferred"]:
        _state["pending"] = signum
    else:
        raise Interrupted(signum)


def _note(signum, frame) -> None:
    _state["pending"] = _state["pending"] or signum


def hold_signals() -> None:
    """From here on a signal is only noted: the process is finishing (Ray is stopping), and an
    exception raised inside that shutdown would print a traceback or leave Ray half stopped."""
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, _note)


def catch_signals() -> None:
    """Route SIGINT and SIGTERM here; call again after ``ray.init``, which sets its own handler."""
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, _handle)


@contextlib.contextmanager
def deferred():
    """Inside, a signal is only noted; ``raise_if_signalled`` raises it."""
    _state["deferred"] = True
    try:
        yield
    finally:
        _state["deferred"] = False
    raise_if_signalled()


def raise_if_signalled() -> None:
    signum, _state["pending"] = _state["pending"], None
    if signum is not None:
        raise Interrupted(signum)
