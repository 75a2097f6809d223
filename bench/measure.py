"""Run one command in a fresh child and measure it: wall time, CPU time and peak memory.

CPU time (`cpu_s`: user + system seconds of the command and every descendant it waited for,
from the launcher's RUSAGE_CHILDREN) moves far less than wall time when other work shares the
machine, so the benchmarks report ratios of both.

Two memory figures, because a tool may run several processes at once (curate's decode
workers, its fastdup child, a Prefect server):
- `max_rss_mb`: the largest resident set of any single process of the command: ru_maxrss of
  RUSAGE_CHILDREN read by a small launcher process that runs the command and waits for it.
  Not `wait4` of a child of this process: a child's high-water mark starts at the resident
  size of the process that forked it (the kernel carries it over at exec), so a large
  benchmark process would show up in every tool's figure. The launcher's own ~20 MB is the
  floor of this figure instead;
- `peak_tree_mb`: the largest sum of proportional set sizes (PSS: pages shared between
  processes, such as forked workers', counted once in all) of all processes of the
  command's session, sampled every 0.2 s from /proc (the launcher starts a session of its
  own, so the tool's workers count and nothing else does; the launcher itself is left out).
  Sampling can miss a spike shorter than the interval.
Output goes to capped files, never to pipes (a chatty tool cannot block), and a command over
its timeout is killed with its whole process group (SIGKILL: fastdup ignores SIGTERM).
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
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
    cpu_s: float = float("nan")  # user + system seconds of the whole (waited-for) process tree

    @property
    def ok(self) -> bool:
        return self.returncode == 0 and not self.timed_out

    def as_dict(self) -> dict[str, object]:
        d = asdict(self)
        d.pop("stdout")
        return d


LAUNCHER = r"""
import resource, subprocess, sys
rc = subprocess.call(sys.argv[2:])
ru = resource.getrusage(resource.RUSAGE_CHILDREN)
with open(sys.argv[1], "w") as fh:
    fh.write(f"{ru.ru_maxrss} {ru.ru_utime + ru.ru_stime}")
sys.exit(rc if rc >= 0 else 128 - rc)
"""


def _pss(pid: str) -> int:
    """Proportional set size of one process in bytes (its RSS where smaps is unreadable)."""
    try:
        with open(f"/proc/{pid}/smaps_rollup", "rb") as fh:
            for line in fh:
                if line.startswith(b"Pss:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    with open(f"/proc/{pid}/statm", "rb") as fh:
        return int(fh.read().split()[1]) * PAGE


def session_pss(sid: int, skip: int | None = None) -> int:
    """Bytes of PSS of all processes of session `sid` but `skip` (fields of /proc/PID/stat)."""
    total = 0
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit() or entry.name == str(skip):
            continue
        try:
            with open(f"/proc/{entry.name}/stat", "rb") as fh:
                stat = fh.read()
            # the command name may hold spaces and parentheses: split after the last ')'
            fields = stat[stat.rindex(b")") + 2 :].split()
            if int(fields[3]) != sid:
                continue
            total += _pss(entry.name)
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
    with (
        tempfile.TemporaryFile() as out,
        tempfile.TemporaryFile() as err,
        tempfile.TemporaryDirectory(prefix="measure-") as tmp,
    ):
        maxrss_file = Path(tmp) / "maxrss"
        t0 = time.perf_counter()
        proc = subprocess.Popen(
            [sys.executable, "-c", LAUNCHER, str(maxrss_file), *cmd],
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
                peak = max(peak, session_pss(proc.pid, skip=proc.pid))
                done.wait(0.2)

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        fired = threading.Event()
        timer = threading.Timer(timeout, lambda: (fired.set(), _kill(proc.pid)))
        timer.start()
        proc.wait()
        wall = time.perf_counter() - t0
        timer.cancel()
        timed_out = fired.is_set()
        done.set()
        sampler.join()
        _kill(proc.pid)  # leftovers of the session (a server the tool started and orphaned)
        maxrss_kb, cpu_s = float("nan"), float("nan")
        if maxrss_file.exists():
            maxrss_kb, cpu_s = (float(x) for x in maxrss_file.read_text().split())
        out.seek(0)
        err.seek(0)
        stdout = out.read(1 << 22).decode(errors="replace")
        err_text = err.read().decode(errors="replace")
    return Measured(
        wall_s=wall,
        max_rss_mb=maxrss_kb / 1024,
        peak_tree_mb=peak / 1024**2,
        returncode=proc.returncode,
        timed_out=timed_out,
        stdout=stdout,
        stderr_tail=err_text[-TAIL:],
        cpu_s=cpu_s,
    )


def _kill(pgid: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, signal.SIGKILL)


def last_line(text: str) -> str:
    """The last non-empty line of a tool's stderr: usually the error that ended it."""
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    return lines[-1][:200] if lines else ""
