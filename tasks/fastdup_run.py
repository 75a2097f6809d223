"""fastdup: one run in a child process of its own, on the analysis copies of the valid images.

The child is killed with SIGKILL on timeout (after a run fastdup ignores SIGTERM); its output is
captured to a capped log file (its crash handler can write gigabytes); its progress lines feed
our progress bar. The work dir is fresh for every run (stale CSVs would be read back).
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import IO

import duckdb
from prefect import task

from photo_curate.home import Home
from photo_curate.progress import StepProgress
from photo_curate.tableio import sql_literal_path

MIN_IMAGES = 2  # below this there is nothing to compare
LOG_CAP_BYTES = 5 * 1024**2
_PERCENT = re.compile(rb"(\d{1,3})%")


def _die_with_parent() -> None:
    """In the child, before exec: its own process group, and SIGKILL when curate dies."""
    try:
        import ctypes

        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except OSError:
        pass


class FastdupFailed(RuntimeError):
    """fastdup crashed, hung or returned an error: worth one retry."""


@dataclass(frozen=True)
class FastdupSpec:
    threads: int
    k: int
    threshold: float
    outlier_percentile: float
    timeout_seconds: int
    cc_threshold: float = 0.96


@dataclass(frozen=True)
class FastdupResult:
    status: str  # "ran" or "skipped"
    work_dir: str | None
    n_input: int
    message: str
    seconds: float = 0.0


def write_input_list(home: Home, run_id: str, list_path: Path) -> int:
    """The analysis copies of exactly the valid images, one absolute path per line."""
    con = duckdb.connect()
    images = sql_literal_path(home.table_file("images", run_id))
    rows = con.sql(
        f"SELECT analysis_id FROM read_parquet({images}) "
        "WHERE is_valid AND analysis_id IS NOT NULL ORDER BY analysis_id"
    ).to_arrow_reader(50_000)
    analysis_dir = home.run_dir(run_id) / "analysis"
    n = 0
    with open(list_path, "w", encoding="utf-8") as fh:
        for rb in rows:
            for ident in rb.column(0).to_pylist():
                fh.write(f"{analysis_dir / f'{ident:08d}.jpg'}\n")
                n += 1
    con.close()
    return n


def _pump(stream: IO[bytes], log_path: Path, prog: StepProgress) -> None:
    """Copy the child's output to a capped log; turn its percentages into progress."""
    written = 0
    last_pct = 0
    with open(log_path, "wb") as log:
        while chunk := stream.read(4096):
            if written < LOG_CAP_BYTES:
                log.write(chunk[: LOG_CAP_BYTES - written])
                written += len(chunk)
            for m in _PERCENT.finditer(chunk):
                pct = min(int(m.group(1)), 100)
                if pct > last_pct:
                    prog.advance(pct - last_pct)
                    last_pct = pct


_started: dict[str, subprocess.Popen[bytes]] = {}


def start_child(cwd: Path) -> subprocess.Popen[bytes]:
    """A fastdup child that imports fastdup now and waits on stdin for its spec."""
    cwd.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ, SENTRY_OPT_OUT="1", FASTDUP_PRODUCTION="1", QT_QPA_PLATFORM="offscreen")
    return subprocess.Popen(
        [sys.executable, "-m", "photo_curate.fastdup_child", "-"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        stdin=subprocess.PIPE,
        env=env,
        cwd=str(cwd),
        start_new_session=True,  # its own process group: SIGKILL reaches its helpers too
        preexec_fn=_die_with_parent,  # noqa: PLW1509 (no threads are started in between)
    )


def prestart(home: Home, run_id: str) -> None:
    """Start the run's fastdup child early, so its import overlaps the inspect step."""
    if run_id not in _started:
        _started[run_id] = start_child(home.run_dir(run_id))


def discard_prestarted(run_id: str) -> None:
    """Stop a prestarted child that will not be used (the run failed or fastdup was skipped)."""
    proc = _started.pop(run_id, None)
    if proc is not None:
        _kill(proc)


def _kill(proc: subprocess.Popen[bytes]) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()


def run_fastdup(home: Home, run_id: str, spec: FastdupSpec) -> FastdupResult:
    run_dir = home.run_dir(run_id)
    work = run_dir / "fastdup"
    if work.exists():
        shutil.rmtree(work)
    work.mkdir(parents=True)
    list_path = run_dir / "fastdup_input.txt"
    n = write_input_list(home, run_id, list_path)
    if n < MIN_IMAGES:
        discard_prestarted(run_id)
        return FastdupResult(
            "skipped", None, n, f"fastdup skipped: {n} valid image(s), at least 2 are needed"
        )
    child_spec = run_dir / "fastdup_spec.json"
    child_spec.write_text(
        json.dumps(
            {
                "input_list": str(list_path),
                "work_dir": str(work),
                "threads": spec.threads,
                "threshold": spec.threshold,
                "lower_threshold": spec.outlier_percentile,
                "k": min(spec.k, max(n - 1, 1)),
                "cc_threshold": spec.cc_threshold,
            }
        )
    )
    log_path = run_dir / "fastdup.log"
    t0 = time.monotonic()
    with StepProgress("fastdup", 100, "%") as prog:
        proc = _started.pop(run_id, None) or start_child(run_dir)
        assert proc.stdin is not None and proc.stdout is not None
        try:
            proc.stdin.write(f"{child_spec}\n".encode())
            proc.stdin.close()
        except BrokenPipeError:
            pass  # the child died early; its exit code tells
        pump = threading.Thread(target=_pump, args=(proc.stdout, log_path, prog), daemon=True)
        pump.start()
        try:
            rc = proc.wait(timeout=spec.timeout_seconds)
        except subprocess.TimeoutExpired:
            _kill(proc)
            pump.join(timeout=5)
            raise FastdupFailed(
                f"fastdup did not finish within {spec.timeout_seconds} s and was killed "
                f"(log: {log_path})"
            ) from None
        except BaseException:  # interrupted: never leave fastdup running on its own
            _kill(proc)
            raise
        pump.join(timeout=5)
    seconds = time.monotonic() - t0
    if rc != 0:
        raise FastdupFailed(f"fastdup exited with code {rc} (log: {log_path})")
    if not (work / "atrain_features.dat.csv").exists():
        raise FastdupFailed(f"fastdup wrote no features (log: {log_path})")
    return FastdupResult("ran", str(work), n, f"fastdup analysed {n} images", seconds)


@task(name="fastdup", retries=1, retry_delay_seconds=5)
def fastdup_task(home_root: str, run_id: str, spec: FastdupSpec) -> FastdupResult:
    """Run fastdup once (a crash or hang is retried once in a fresh child and work dir)."""
    return run_fastdup(Home(Path(home_root)), run_id, spec)
