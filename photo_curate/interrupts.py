"""Ctrl-C and SIGTERM: stop within seconds, record what happened, leave nothing running.

`install()` (the CLI does it first) makes SIGINT and SIGTERM raise `Interrupted` in the main
thread, once. What is then unwound in Python is the cleanup: the flow records the run as
`interrupted`, the decoder pool and fastdup are killed, Prefect ends its flow run as Crashed.
Further signals during that cleanup are not raised again (a `finally` block half done is
worse than a few seconds' wait); if the process has not exited `GRACE_S` seconds after the
first signal, or on the third signal, every process it started is SIGKILLed and it exits with
code 130 (the next run then finds the run still `running` and marks it interrupted).

`deferred()` is for work that must stop between two items, never inside one (apply moves a
file, then journals it): inside the block a signal only sets a flag that the loop checks
with `requested()`; leaving the block raises `Interrupted` if one came.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import threading
from collections.abc import Iterator
from typing import Any

from photo_curate.errors import Interrupted

GRACE_S = 8.0
SIGNALS = (signal.SIGINT, signal.SIGTERM)
_lock = threading.Lock()
_signum: int | None = None  # the first signal received
_count = 0
_deferring = 0
_raised = False
_watchdog: threading.Timer | None = None
installed = False  # by the CLI: the watchdog may end this process


def install() -> None:
    """SIGINT and SIGTERM raise `Interrupted` in the main thread (call from the main thread)."""
    global installed
    installed = True
    for sig in SIGNALS:
        signal.signal(sig, _handler)


def _handler(signum: int, _frame: Any) -> None:
    global _signum, _count, _raised
    with _lock:
        _count += 1
        first = _signum is None
        if first:
            _signum = signum
        count, raised, deferring = _count, _raised, _deferring
    if first:
        stopping()
    if count >= 3 and installed:
        force_exit("a third interrupt")
    if deferring or raised:
        return  # checked between two items, or the stop is under way
    with _lock:
        _raised = True
    raise Interrupted(signum)


def stopping(signum: int | None = None) -> None:
    """A stop is under way (also when Prefect's own SIGTERM handler caught it): start the
    watchdog that ends the process if the cleanup takes longer than GRACE_S."""
    global _watchdog, _signum, _raised
    with _lock:
        if signum is not None and _signum is None:
            _signum = signum
        _raised = True
        if _watchdog is not None or not installed:  # only a command's own process is ended
            return
        _watchdog = threading.Timer(GRACE_S, force_exit, args=("the cleanup took too long",))
        _watchdog.daemon = True
        _watchdog.start()


def requested() -> int | None:
    """The signal received so far, if any."""
    return _signum


def reset() -> None:
    """Forget a handled interrupt (for a process that goes on, e.g. the test suite)."""
    global _signum, _count, _raised, _watchdog
    with _lock:
        if _watchdog is not None:
            _watchdog.cancel()
        _signum, _count, _raised, _watchdog = None, 0, False, None


class Deferral:
    """What a deferred block says about where it stopped (the `Interrupted` message)."""

    where: str | None = None


@contextlib.contextmanager
def deferred() -> Iterator[Deferral]:
    """Signals inside the block only set `requested()`; leaving it raises `Interrupted`."""
    global _deferring
    holder = Deferral()
    in_main = threading.current_thread() is threading.main_thread()
    previous = {s: signal.getsignal(s) for s in SIGNALS} if in_main else {}
    with _lock:
        _deferring += 1
    if in_main:  # also replaces Prefect's SIGTERM handler for the block
        for sig in SIGNALS:
            signal.signal(sig, _handler)
    try:
        yield holder
    finally:
        with _lock:
            _deferring -= 1
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    if _signum is not None:
        stopping()
        raise Interrupted(_signum, holder.where)


def descendants(pid: int | None = None) -> list[int]:
    """Every live process below `pid` (default: this one), children before grandchildren."""
    out: list[int] = []
    todo = [pid or os.getpid()]
    while todo:
        parent = todo.pop()
        try:
            tasks = os.listdir(f"/proc/{parent}/task")
        except OSError:
            continue
        for tid in tasks:
            try:
                with open(f"/proc/{parent}/task/{tid}/children", encoding="ascii") as fh:
                    kids = [int(x) for x in fh.read().split()]
            except OSError:
                continue
            out.extend(kids)
            todo.extend(kids)
    return out


def kill_descendants() -> None:
    """SIGKILL every process this one started (and theirs), with their process groups."""
    for pid in descendants():
        with contextlib.suppress(OSError):
            os.kill(pid, signal.SIGKILL)


def force_exit(why: str) -> None:
    """Kill what this process started and leave now with code 130."""
    with contextlib.suppress(Exception):
        sys.stderr.write(f"curate: interrupted; {why}: stopped what was left\n")
        sys.stderr.flush()
    kill_descendants()
    os._exit(130)
