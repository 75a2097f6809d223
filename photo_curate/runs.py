"""The run history: one row per run in `runs`, written at start and rewritten at the end.

A run that is killed stays `running` on disk; the next run (which holds the home lock, so no
other run can be alive) marks it `failed` with the reason, so history never lies.
"""

from __future__ import annotations

import json
import platform
import secrets
import shutil
from datetime import UTC, datetime
from typing import Any

import duckdb

from photo_curate import __version__
from photo_curate.home import Home
from photo_curate.integrity import files_expr, sweep
from photo_curate.tableio import RowWriter, sql_literal_path

STATUSES = ("running", "completed", "failed", "validation_failed")


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


def source_folder(run: dict[str, Any]) -> str:
    """The folder a run curated: `source` itself, or where its archive or manifest landed.

    For a folder run `source` is the one record of it (`source_dir` repeats it for queries).
    """
    if run.get("source_kind") in ("archive", "manifest") and run.get("source_dir"):
        return run["source_dir"]
    return run["source"]


def read_run(home: Home, run_id: str) -> dict[str, Any] | None:
    path = home.table_file("runs", run_id)
    if not path.exists():
        return None
    con = duckdb.connect()
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
    """Runs still `running` while we hold the home lock died mid-way: record that.

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
            row.update(
                status="failed",
                finished_at=row.get("finished_at") or now(),
                error="interrupted: the process ended before the run finished",
            )
            write_run(home, row)
            # its analysis copies (one per image) are of no use now; logs and inputs stay
            shutil.rmtree(home.run_dir(run_id) / "analysis", ignore_errors=True)
            fixed.append(run_id)
    return fixed


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
