"""Ctrl-C and SIGTERM reach the sweep controller as a flag (``reprokit.tune.stop``), also in a process
that inherited SIGINT ignored, and stopping trials stops their whole process groups.

Real processes and real signals; the sweep itself (real ``dvc exp run`` trials) is
tests/integration/test_sweep.py's Ctrl-C test.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time

import pytest

from reprokit.tune.stop import StopRequest, stop_signals
from reprokit.tune.trials import stop_process_groups

# A controller-like child: SIGINT ignored from its start (as a background job of a script gets it),
# the stop handlers installed, a loop that polls the flag; after the block, the inherited disposition back.
CHILD = textwrap.dedent(
    """
    import signal, sys, time
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    from reprokit.tune.stop import stop_signals
    with stop_signals() as stop:
        print("ready", flush=True)
        deadline = time.monotonic() + 60
        while not stop.requested and time.monotonic() < deadline:
            time.sleep(0.05)
        print(stop.what, flush=True)
    print("restored" if signal.getsignal(signal.SIGINT) is signal.SIG_IGN else "not restored", flush=True)
    """
)


@pytest.mark.parametrize(("sig", "what"), [(signal.SIGINT, "Ctrl-C"), (signal.SIGTERM, "SIGTERM")])
def test_a_stop_signal_sets_the_flag_even_when_sigint_was_inherited_ignored(sig, what):
    child = subprocess.Popen([sys.executable, "-c", CHILD], stdout=subprocess.PIPE, text=True)
    try:
        assert child.stdout.readline().strip() == "ready"
        child.send_signal(sig)
        out, _ = child.communicate(timeout=60)
    finally:
        child.kill()
    assert out.split() == [what, "restored"]
    assert child.returncode == 0  # the handler raised nothing: the loop saw the flag and went on


def test_the_handler_records_the_first_signal_and_raises_nothing():
    stop = StopRequest()
    assert not stop.requested and stop.what == "nothing"
    with stop_signals() as stop:
        os.kill(os.getpid(), signal.SIGTERM)
        deadline = time.monotonic() + 10
        while not stop.requested and time.monotonic() < deadline:
            time.sleep(0.01)
        os.kill(os.getpid(), signal.SIGINT)  # a second signal while stopping: still the first one recorded
        time.sleep(0.05)
    assert stop.signum == signal.SIGTERM and stop.what == "SIGTERM"
    assert signal.getsignal(signal.SIGTERM) is not stop.handler  # put back


def _group(script: str) -> subprocess.Popen:
    """A process group like a trial's: a shell leading a child, in its own session."""
    return subprocess.Popen(["sh", "-c", script], start_new_session=True)


def _gone(pid: int) -> bool:
    try:
        os.killpg(pid, 0)
    except ProcessLookupError:
        return True
    return False


def test_stopping_trials_ends_every_process_of_every_group_and_kills_one_that_ignores_sigterm():
    polite = _group("sleep 300 & wait")
    stubborn = _group("trap '' TERM; sleep 300 & wait")  # its children inherit TERM ignored too
    time.sleep(0.5)  # the shells have started their children
    stop_process_groups([polite.pid, stubborn.pid], grace_s=1.0)
    # Gone, children included (the stubborn one could only go by SIGKILL, after the grace).
    assert _gone(polite.pid) and _gone(stubborn.pid)
