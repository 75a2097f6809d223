"""Run one command in a fresh child and measure it: wall time and peak memory.

Two memory figures, because a tool may run several processes at once (curate's decode
workers, its fastdup child, a Prefect server):
- `max_rss_mb`: the largest resident set of any single process of the command, from
  `os.wait4` of that child (the kernel's ru_maxrss over it and the descendants it waited for);
- `peak_tree_mb`: the largest sum of resident sets of all processes of its session, sampled
  every 0.2 s from /proc (the child starts a session of its own, so its workers count and
  nothing else does). Sampling can miss a spike shorter than the interval.
Output goes to capped files, never to pipes (a chatty tool cannot block), and a command over
its timeout is killed with its whole process group (SIGKILL: fastdup ignores SIGTERM).
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import tempfile
import threading
import time
from dataclasses import asdict, dataclass
from pathlib import Path

PAGE = os.sysconf("SC_PAGE_SIZE")
TAIL = 2000  # characters of stderr kept for the report


@dataclass
class Measured:
    """What one run of a command cost, and how it ended."""

    wall_s: float
    max_rss_mb: float
    peak_tree_mb: float
    returncode: int
    timed_out: bool
    stdout: str
    stderr_tail: str

    @property
    def ok(self) -> bool:
        return self.returncode == 0 and not self.timed_out

    def as_dict(self) -> dict[str, object]:
        d = asdict(self)
        d.pop("stdout")
        return d


def session_rss(sid: int) -> int:
    """Bytes resident in all processes of session `sid` (fields of /proc/PID/stat, statm)."""
    total = 0
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            with open(f"/proc/{entry.name}/stat", "rb") as fh:
                stat = fh.read()
            # the command name may hold spaces and parentheses: split after the last ')'
            fields = stat[stat.rindex(b")") + 2 :].split()
            if int(fields[3]) != sid:
                continue
            with open(f"/proc/{entry.name}/statm", "rb") as fh:
                total += int(fh.read().split()[1]) * PAGE
        except (OSError, ValueError, IndexError):
            continue  # the process ended while we looked
    return total


def run_measured(
    cmd: list[str],
    env: dict[str, str] | None = None,
    cwd: str | Path | None = None,
    timeout: float = 6 * 3600,
) -> Measured:
    """Run `cmd` to its end (or timeout) in a session of its own; see the module docstring."""
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        t0 = time.perf_counter()
        proc = subprocess.Popen(
            cmd,
            env=env,
            cwd=cwd,
            stdout=out,
            stderr=err,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
        peak = 0
        done = threading.Event()

        def sample() -> None:
            nonlocal peak
            while not done.is_set():
                peak = max(peak, session_rss(proc.pid))
                done.wait(0.2)

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        fired = threading.Event()
        timer = threading.Timer(timeout, lambda: (fired.set(), _kill(proc.pid)))
        timer.start()
        _pid, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - t0
        timer.cancel()
        timed_out = fired.is_set()
        done.set()
        sampler.join()
        _kill(proc.pid)  # leftovers of the session (a server the tool started and orphaned)
        proc.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        stdout = out.read(1 << 22).decode(errors="replace")
        err_text = err.read().decode(errors="replace")
    return Measured(
        wall_s=wall,
        max_rss_mb=usage.ru_maxrss / 1024,
        peak_tree_mb=peak / 1024**2,
        returncode=proc.returncode,
        timed_out=timed_out,
        stdout=stdout,
        stderr_tail=err_text[-TAIL:],
    )


def _kill(pgid: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, signal.SIGKILL)


def last_line(text: str) -> str:
    """The last non-empty line of a tool's stderr: usually the error that ended it."""
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    return lines[-1][:200] if lines else ""
