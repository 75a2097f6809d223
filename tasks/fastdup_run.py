"""fastdup: its feature vectors (`run_mode=1`) of the valid images' analysis copies, one run in
a child process of its own; the vectors go to the feature cache (photo_curate/features.py) and
the neighbours are searched by photo-curate itself (tasks/neighbours.py).

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
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from prefect import task

from photo_curate import db
from photo_curate.features import FeatureCache, analysis_name
from photo_curate.home import Home
from photo_curate.progress import StepProgress
from photo_curate.tableio import sql_literal_path

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
    timeout_seconds: int


@dataclass(frozen=True)
class FastdupResult:
    status: str  # "ran", "cached" (every vector was cached already) or "skipped" (no image)
    work_dir: str | None
    n_input: int
    message: str
    seconds: float = 0.0
    n_extracted: int = 0  # vectors fastdup computed in this run (the others came from the cache)


def write_input_list(home: Home, run_id: str, list_path: Path, cache: FeatureCache) -> int:
    """The analysis copies to extract vectors from, one absolute path per line: one valid
    image per content hash that is not cached yet."""
    con = db.connect(home)
    images = f"read_parquet({sql_literal_path(home.table_file('images', run_id))})"
    valid = f"SELECT * FROM {images} WHERE is_valid AND analysis_id IS NOT NULL"
    sql = f"""SELECT min(analysis_id) AS analysis_id FROM ({valid})
              WHERE sha256 NOT IN (SELECT sha256 FROM {cache.source()})
              GROUP BY sha256 ORDER BY analysis_id"""
    rows = con.sql(sql).to_arrow_reader(50_000)
    analysis_dir = home.run_dir(run_id) / "analysis"
    n = 0
    with open(list_path, "w", encoding="utf-8") as fh:
        for rb in rows:
            for ident in rb.column(0).to_pylist():
                path = analysis_name(analysis_dir, ident)
                if not os.path.exists(path):  # reused rows have no copy: they must be cached
                    raise FastdupFailed(f"analysis copy {path} is missing")
                fh.write(f"{path}\n")
                n += 1
    con.close()
    return n


def _count_valid(home: Home, run_id: str, cache: FeatureCache) -> tuple[int, int]:
    """(valid images, of them with a cached vector)."""
    images = f"read_parquet({sql_literal_path(home.table_file('images', run_id))})"
    cached = f"sha256 IN (SELECT sha256 FROM {cache.source()})"
    con = db.connect(home)
    try:
        row = con.execute(
            f"SELECT count(*), count(*) FILTER (WHERE {cached}) FROM {images} "
            "WHERE is_valid AND analysis_id IS NOT NULL"
        ).fetchall()[0]
    finally:
        con.close()
    return int(row[0]), int(row[1])


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


_started: dict[str, list[subprocess.Popen[bytes]]] = {}


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
    """Start a fastdup child for the run early, so its import overlaps other work."""
    _started.setdefault(run_id, []).append(start_child(home.run_dir(run_id)))


def _take_child(home: Home, run_id: str) -> subprocess.Popen[bytes]:
    waiting = _started.get(run_id)
    return waiting.pop(0) if waiting else start_child(home.run_dir(run_id))


def discard_prestarted(run_id: str) -> None:
    """Stop prestarted children that will not be used (the run failed or fastdup was skipped)."""
    for proc in _started.pop(run_id, []):
        _kill(proc)


def _kill(proc: subprocess.Popen[bytes]) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()


def run_fastdup(home: Home, run_id: str, spec: FastdupSpec, cache: FeatureCache) -> FastdupResult:
    """fastdup's vectors (`run_mode=1`) for the run's contents that are not cached yet, one
    image per content hash, added to the cache. The neighbours are ours (tasks/neighbours.py)."""
    run_dir = home.run_dir(run_id)
    work = run_dir / "fastdup"
    if work.exists():
        shutil.rmtree(work)
    work.mkdir(parents=True)
    n_valid, n_cached = _count_valid(home, run_id, cache)
    t0 = time.monotonic()
    list_path = run_dir / "fastdup_input.txt"
    if n_valid == 0:
        discard_prestarted(run_id)
        return FastdupResult("skipped", None, 0, "fastdup skipped: no valid image")
    n_new = write_input_list(home, run_id, list_path, cache)
    if n_new == 0:
        discard_prestarted(run_id)
        msg = f"fastdup: all {n_valid} valid images have cached vectors"
        return FastdupResult("cached", None, n_valid, msg)
    _run_child(home, run_id, spec, work, 1, list_path)
    cache.store(work, home.table_file("images", run_id), run_id)
    discard_prestarted(run_id)  # a child that was started for a step not needed after all
    msg = f"fastdup extracted {n_new} vectors of {n_valid} valid images"
    if n_cached:
        msg += " (the others from the cache)"
    return FastdupResult("ran", str(work), n_valid, msg, time.monotonic() - t0, n_new)


def _run_child(
    home: Home,
    run_id: str,
    spec: FastdupSpec,
    work: Path,
    run_mode: int,
    input_list: Path | None,
    tag: str = "",
) -> None:
    """One fastdup run in a child process (prestarted if one waits), killed on timeout.

    `tag` names the spec and log files of one of several runs going on at once (shards)."""
    work.mkdir(parents=True, exist_ok=True)
    run_dir = home.run_dir(run_id)
    child_spec = run_dir / f"fastdup_spec{tag}.json"  # the child reads it at start
    child_spec.write_text(
        json.dumps(
            {
                "input_list": str(input_list or ""),
                "work_dir": str(work),
                "threads": spec.threads,
                "run_mode": run_mode,
            }
        )
    )
    log_path = run_dir / ("fastdup.log" if run_mode == 0 else f"fastdup_mode{run_mode}{tag}.log")
    label = {0: "fastdup", 1: "fastdup vectors", 2: "fastdup graph"}[run_mode]
    with StepProgress(label, 100, "%") as prog:
        proc = _take_child(home, run_id)
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
    if rc != 0:
        raise FastdupFailed(f"fastdup exited with code {rc} (log: {log_path})")
    if not (work / "atrain_features.dat.csv").exists():
        raise FastdupFailed(f"fastdup wrote no features (log: {log_path})")


# --- shards: vectors per shard (`run_mode=1`), then one graph (engine: dask) -----------------


@dataclass(frozen=True)
class ExtractShard:
    """One slice of the run's extraction list: analysis copies whose vectors are not cached."""

    index: int
    list_path: str
    n: int


def plan_extraction(
    home: Home, run_id: str, cache: FeatureCache, shard_size: Callable[[int], int]
) -> tuple[int, list[ExtractShard]]:
    """(valid images, shards of the extraction list). The list has one image per content hash
    not cached yet, over the whole run (so no two shards extract the same hash), streamed
    into files of `shard_size(n)` lines."""
    folder = home.run_dir(run_id) / "fastdup_shards"
    if folder.exists():
        shutil.rmtree(folder)
    folder.mkdir(parents=True)
    n_valid, _ = _count_valid(home, run_id, cache)
    if n_valid == 0:
        return n_valid, []
    whole = folder / "all.txt"
    per_shard = shard_size(write_input_list(home, run_id, whole, cache))
    shards: list[ExtractShard] = []
    out: IO[str] | None = None
    try:
        with open(whole, encoding="utf-8") as fh:
            for line in fh:
                if out is None or shards[-1].n == per_shard:
                    if out is not None:
                        out.close()
                    path = folder / f"list-{len(shards):05d}.txt"
                    out = open(path, "w", encoding="utf-8")  # noqa: SIM115 (rotated by hand)
                    shards.append(ExtractShard(len(shards), str(path), 0))
                out.write(line)
                last = shards[-1]
                shards[-1] = ExtractShard(last.index, last.list_path, last.n + 1)
    finally:
        if out is not None:
            out.close()
    whole.unlink()
    return n_valid, shards


def extract_shard(home: Home, run_id: str, spec: FastdupSpec, shard: ExtractShard,
                  cache: FeatureCache) -> int:  # fmt: skip
    """fastdup `run_mode=1` on one shard's list in a fresh work dir (a child process of its
    own, as always); its vectors go to the cache as `<run_id>-<shard>.parquet`."""
    work = home.run_dir(run_id) / "fastdup" / f"extract-{shard.index:05d}"
    if work.exists():  # a retry starts clean: stale CSVs would be read back
        shutil.rmtree(work)
    tag = f"-shard{shard.index:05d}"
    _run_child(home, run_id, spec, work, 1, Path(shard.list_path), tag)
    name = f"{run_id}-{shard.index:05d}"
    return cache.store(work, home.table_file("images", run_id), name)


@task(name="fastdup", retries=1, retry_delay_seconds=5)
def fastdup_task(home_root: str, run_id: str, spec: FastdupSpec, cache_dir: str) -> FastdupResult:
    """fastdup's vectors of new content (a crash or hang is retried once in a fresh child and
    work dir)."""
    return run_fastdup(Home(Path(home_root)), run_id, spec, FeatureCache(Path(cache_dir)))
