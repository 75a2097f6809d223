"""catalog.rebuild: a new catalog file only when its views would change."""

from __future__ import annotations

import os
from pathlib import Path

import duckdb

from photo_curate import catalog
from photo_curate.home import Home
from photo_curate.tableio import RowWriter


def _run_row(home: Home, run_id: str) -> None:
    with RowWriter(home, "runs", run_id) as out:
        out.add({"run_id": run_id, "status": "completed"})


def _count(home: Home, table: str) -> int:
    con = duckdb.connect(str(home.catalog), read_only=True)
    try:
        return con.execute(f"SELECT count(*) FROM {table}").fetchone()[0]
    finally:
        con.close()


def _identity(path: Path) -> tuple[int, int]:
    st = path.stat()
    return st.st_ino, st.st_mtime_ns


def test_rebuilt_only_when_a_view_changes(tmp_path: Path) -> None:
    home = Home(tmp_path / "home").ensure()
    catalog.rebuild(home)
    assert _count(home, "runs") == 0
    empty = _identity(home.catalog)

    _run_row(home, "r1")  # the table's first file: its view changes from empty to the glob
    catalog.rebuild(home)
    assert _identity(home.catalog) != empty
    assert _count(home, "runs") == 1
    built = _identity(home.catalog)

    _run_row(home, "r2")  # the glob's view sees it as it is
    catalog.rebuild(home)
    assert _identity(home.catalog) == built
    assert _count(home, "runs") == 2


def test_a_missing_or_replaced_catalog_is_built_again(tmp_path: Path) -> None:
    home = Home(tmp_path / "home").ensure()
    _run_row(home, "r1")
    catalog.rebuild(home)
    home.catalog.unlink()
    catalog.rebuild(home)
    assert _count(home, "runs") == 1

    other = duckdb.connect(str(tmp_path / "other.duckdb"))
    other.execute("CREATE TABLE x AS SELECT 1 AS a")
    other.close()
    os.replace(tmp_path / "other.duckdb", home.catalog)  # someone put another file there
    catalog.rebuild(home)
    assert _count(home, "runs") == 1


def test_a_home_with_glob_characters_lists_files_and_rebuilds(tmp_path: Path) -> None:
    home = Home(tmp_path / "home[1]").ensure()  # explicit file lists, not a glob
    _run_row(home, "r1")
    catalog.rebuild(home)
    _run_row(home, "r2")
    catalog.rebuild(home)
    assert _count(home, "runs") == 2


def test_latest_views_hold_the_latest_completed_run_of_each_source(tmp_path: Path) -> None:
    """After three runs of one SOURCE, `findings` counts all three, `latest_findings` only
    the newest completed one; an interrupted newer run and other SOURCEs do not mix in."""
    from datetime import datetime

    from photo_curate.runs import write_run

    home = Home(tmp_path / "home").ensure()
    runs = [  # run_id, source, status, started, duplicates found
        ("r1", "/photos", "completed", datetime(2026, 1, 1), 3),
        ("r2", "/photos", "completed", datetime(2026, 1, 2), 2),
        ("r3", "/photos", "interrupted", datetime(2026, 1, 3), 1),
        ("r4", "/other", "completed", datetime(2026, 1, 1), 4),
    ]
    for run_id, source, status, started, n in runs:
        write_run(home, {"run_id": run_id, "source": source, "status": status,
                         "started_at": started})  # fmt: skip
        with RowWriter(home, "findings", run_id) as out:
            for i in range(n):
                out.add({"run_id": run_id, "path": f"{run_id}/{i}.jpg", "kind": "duplicate"})
    catalog.rebuild(home)
    con = duckdb.connect(str(home.catalog), read_only=True)
    try:
        latest = con.execute("SELECT run_id FROM latest_runs ORDER BY run_id").fetchall()
        per_run = con.execute(
            "SELECT run_id, count(*) FROM latest_findings GROUP BY run_id ORDER BY run_id"
        ).fetchall()
        everything = con.execute("SELECT count(*) FROM findings").fetchone()[0]
        views = {r[0] for r in con.execute("SELECT view_name FROM duckdb_views()").fetchall()}
    finally:
        con.close()
    assert latest == [("r2",), ("r4",)]
    assert per_run == [("r2", 2), ("r4", 4)]
    assert everything == 10
    from photo_curate.schema import TABLES

    per_run_tables = {t for t, cols in TABLES.items() if t != "runs" and ("run_id", "VARCHAR")
                      in cols}  # fmt: skip
    assert {f"latest_{t}" for t in per_run_tables} <= views
