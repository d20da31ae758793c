"""Ctrl-C and SIGTERM for the sweep controller: a flag its loop polls, never an exception.

Why the controller installs its own SIGINT handler rather than relying on Python's
``KeyboardInterrupt``: Python installs that handler only when SIGINT is not ignored at start-up,
and a process started as a background job of a non-interactive shell (``make test-all > log &``,
a CI script, ``cmd &`` in a script) inherits SIGINT ignored. Such a controller ignored Ctrl-C and
let its trials run on (the full CI suite, started that way, failed the Ctrl-C test so, twice).
``signal.signal`` replaces an inherited ``SIG_IGN`` as well as the default.

Why a flag: an exception raised from inside a handler lands wherever the main thread happens to
be, e.g. inside Optuna's journal lock (whose clean-up then releases a lock file it may not hold)
or between telling a trial's outcome and recording it. The handler only records the signal; the
loop checks it between steps and stops the trials itself. A second Ctrl-C while the trials are
being stopped changes nothing: the clean-up (at most ``stop_process_group``'s grace per trial)
is not cut short; SIGKILL still ends the controller, and the next run recovers its trials.
"""

from __future__ import annotations

import signal
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

__all__ = ["StopRequest", "stop_signals", "STOP_SIGNALS"]

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


@dataclass
class StopRequest:
    """The signal that asked the sweep to stop (None: none yet)."""

    signum: int | None = None

    @property
    def requested(self) -> bool:
        return self.signum is not None

    @property
    def what(self) -> str:
        """How a message names it: Ctrl-C for SIGINT, else the signal's name."""
        if self.signum is None:
            return "nothing"
        return "Ctrl-C" if self.signum == signal.SIGINT else signal.Signals(self.signum).name

    def handler(self, signum: int, frame: object) -> None:  # (signum, frame): a signal handler's signature
        if self.signum is None:
            self.signum = signum


@contextmanager
def stop_signals() -> Iterator[StopRequest]:
    """SIGINT and SIGTERM set the yielded flag while the block runs; the previous handlers come back after."""
    stop = StopRequest()
    previous = {sig: signal.signal(sig, stop.handler) for sig in STOP_SIGNALS}
    try:
        yield stop
    finally:
        for sig, handler in previous.items():
            if handler is not None:  # None: a handler installed outside Python, which cannot be put back
                signal.signal(sig, handler)
