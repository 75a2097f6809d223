"""The run history: one row per run in `runs`, written at start and rewritten at the end.

How a run ended is its status: `completed`, `validation_failed`, `failed` (an error, with its
text in `error`) or `interrupted` (Ctrl-C, SIGTERM, a cancel from Prefect: stopped from
outside, nothing wrong with the input; `step` says where). A run killed outright (`kill -9`,
a power cut) cannot record anything and stays `running` on disk; the next run (which holds
the home lock, so no other run can be alive) marks it `interrupted` too, with the step it had
reached (the `step` file its run folder keeps), so history never lies.
"""

from __future__ import annotations

import json
import os
import platform
import secrets
import shutil
import signal
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import duckdb

from photo_curate import __version__
from photo_curate.home import Home
from photo_curate.integrity import files_expr, sweep
from photo_curate.tableio import RowWriter, scratch, sql_literal_path

STATUSES = ("running", "completed", "failed", "validation_failed", "interrupted")
STEP_FILE = "step"  # HOME/runs/RUN_ID/step: the step the run is in
last_written: dict[str, Any] | None = None  # the run row this process wrote last


class StepTimes(dict[str, float]):
    """Seconds per step of a run, and the step it is in now (also written to its run folder,
    where the next run finds it if this one is killed)."""

    def __init__(self, run_dir: Path):
        super().__init__()
        self.current: str | None = None
        self._marker = run_dir / STEP_FILE

    def start(self, name: str) -> None:
        self.current = name
        try:
            self._marker.parent.mkdir(parents=True, exist_ok=True)
            tmp = self._marker.with_name(f".{STEP_FILE}.tmp")
            tmp.write_text(name, encoding="utf-8")
            os.replace(tmp, self._marker)  # a kill mid-write leaves the previous step, not ''
        except OSError:
            pass  # only a hint for the next run


def is_interrupt(exc: BaseException) -> bool:
    """Ctrl-C, SIGTERM (Prefect's TerminationSignal, also a cancel from its UI)."""
    return isinstance(exc, KeyboardInterrupt) or type(exc).__name__ == "TerminationSignal"


def ended_by(exc: BaseException, step: str | None) -> tuple[str, str]:
    """(status, error) of a run that `exc` ended during `step`."""
    if not is_interrupt(exc):
        return "failed", f"{type(exc).__name__}: {exc}"[:2000]
    signum = getattr(exc, "signum", None) or getattr(exc, "signal", None) or signal.SIGINT
    what = "Ctrl-C" if signum == signal.SIGINT else signal.Signals(signum).name
    return "interrupted", f"interrupted ({what})" + (f" during {step}" if step else "")


def now() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)


def new_run_id(at: datetime | None = None) -> str:
    """Sortable and unique: UTC time plus a short random suffix."""
    at = at or now()
    return at.strftime("%Y%m%dT%H%M%S") + "-" + secrets.token_hex(2)


def write_run(home: Home, row: dict[str, Any]) -> None:
    """Replace the run's row (the file is tiny; the write is atomic)."""
    full = {
        "n_files": None,
        "n_images": None,
        "n_invalid": None,
        "n_skipped": None,
        "n_findings": None,
        "counts": None,
        "step_seconds": None,
        "error": None,
        "flow_run_id": None,
        "finished_at": None,
        "mode": None,
        "reused_from": None,
        "inspect_key": None,
        "results_key": None,
        "n_inspected": None,
        "n_extracted": None,
        "step": None,
        "home": str(home.root),
        "host": platform.node(),
        "version": __version__,
        "source_kind": None,
        "source_dir": None,
        **row,
    }
    for key in ("counts", "step_seconds"):
        if isinstance(full[key], dict):
            full[key] = json.dumps(full[key], sort_keys=True)
    with RowWriter(home, "runs", row["run_id"]) as out:
        out.add(full)
    global last_written
    last_written = full


def source_folder(run: dict[str, Any]) -> str:
    """The folder a run curated: `source` itself, or where its archive or manifest landed.

    For a folder run `source` is the one record of it (`source_dir` repeats it for queries).
    """
    if run.get("source_kind") in ("archive", "manifest") and run.get("source_dir"):
        return run["source_dir"]
    return run["source"]


_read_cache: dict[str, tuple[tuple[int, int, int], dict[str, Any] | None]] = {}


def read_run(home: Home, run_id: str) -> dict[str, Any] | None:
    """The run's row (read again only when its file changed: a run reads its own and its
    base run's row several times)."""
    path = home.table_file("runs", run_id)
    try:
        st = path.stat()
    except FileNotFoundError:
        return None
    key = (st.st_ino, st.st_size, st.st_mtime_ns)
    cached = _read_cache.get(str(path))
    if cached and cached[0] == key:
        return dict(cached[1]) if cached[1] else None
    row = _read_run_file(path)
    _read_cache[str(path)] = (key, row)
    return dict(row) if row else None


def _read_run_file(path: Path) -> dict[str, Any] | None:
    con = scratch()
    try:
        res = con.execute(f"SELECT * FROM read_parquet({sql_literal_path(path)})")
        cols = [d[0] for d in res.description]
        rows = res.fetchall()
        row = rows[0] if rows else None
    finally:
        con.close()
    return dict(zip(cols, row, strict=True)) if row else None


def all_run_ids(home: Home) -> list[str]:
    """Run ids, newest first."""
    return sorted((p.stem for p in home.table_dir("runs").glob("*.parquet")), reverse=True)


def mark_interrupted(home: Home) -> list[str]:
    """Runs still `running` while we hold the home lock were killed mid-way: record that.

    Broken table files (a crash or a full disk) are moved aside first, so one truncated file
    cannot stop every later run.
    """
    sweep(home)
    pattern = files_expr(home.table_dir("runs"), ".parquet")
    if pattern is None:
        return []
    con = duckdb.connect()
    running = [
        r[0]
        for r in con.execute(
            f"SELECT run_id FROM read_parquet({pattern}, union_by_name=true) "
            "WHERE status = 'running'"
        ).fetchall()
    ]
    con.close()
    fixed = []
    for run_id in running:
        row = read_run(home, run_id)
        if row:
            try:
                step = (home.run_dir(run_id) / STEP_FILE).read_text(encoding="utf-8").strip()
            except OSError:
                step = row.get("step")
            where = f" during {step}" if step else ""
            row.update(
                status="interrupted",
                finished_at=row.get("finished_at") or now(),
                step=step or None,
                error=f"interrupted{where}: the process ended without recording how (killed, "
                "or the machine stopped)",
            )
            write_run(home, row)
            fixed.append(run_id)
    remove_analysis_copies(home)
    return fixed


def remove_analysis_copies(home: Home) -> None:
    """Remove the analysis copies (one per image) that interrupted or killed runs left; logs
    and inputs stay. Called with the home lock held, before a run starts: no run is alive, so
    every copy is of no use. (An interrupted run leaves them: removing thousands of files
    while its great-expectations import holds the GIL took longer than stopping may.)"""
    runs = home.root / "runs"
    if not runs.is_dir():
        return
    for entry in os.scandir(runs):
        analysis = os.path.join(entry.path, "analysis")
        if os.path.isdir(analysis):
            shutil.rmtree(analysis, ignore_errors=True)


def previous_run(home: Home, run_id: str, source: str | None) -> str | None:
    """The latest completed run of the same SOURCE before `run_id` (for "what changed").

    One query over the runs table, so the cost does not grow with a read per past run."""
    pattern = files_expr(home.table_dir("runs"), ".parquet")
    if pattern is None or source is None:
        return None
    con = duckdb.connect()
    try:
        rows = con.execute(
            f"""SELECT max(run_id) FROM read_parquet({pattern}, union_by_name=true)
                WHERE run_id < $run_id AND source = $source AND status = 'completed'""",
            {"run_id": run_id, "source": source},
        ).fetchall()
    finally:
        con.close()
    return rows[0][0] if rows else None
