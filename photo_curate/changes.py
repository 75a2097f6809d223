"""What changed since the previous completed run of the same SOURCE.

The catalog answers this for every run with the views in `sql/views/` (`finding_changes`,
`file_changes`, `new_findings`); this module runs the same SQL over just two runs' Parquet
files, for the summary, the report and the Prefect artifacts of a run that is still going on.
"""

from __future__ import annotations

from typing import Any

import duckdb

from photo_curate.home import Home
from photo_curate.rules import SQL_DIR
from photo_curate.runs import previous_run
from photo_curate.schema import empty_select
from photo_curate.tableio import sql_literal_path


def _view(name: str) -> str:
    return (SQL_DIR / "views" / f"{name}.sql").read_text(encoding="utf-8")


_UNKNOWN = object()


def changes_since_previous(
    home: Home, run_id: str, source: str | None, prev: Any = _UNKNOWN
) -> dict[str, Any] | None:
    """Counts of new and gone findings per kind, and of added/removed/changed files.

    None when there is no earlier completed run of the same SOURCE to compare with (`prev`:
    that run's id, or None, when the caller has looked it up already).
    """
    if prev is _UNKNOWN:
        prev = previous_run(home, run_id, source)
    if prev is None:
        return None
    con = duckdb.connect()
    try:
        for table in ("findings", "files", "images"):
            paths = [home.table_file(table, r) for r in (run_id, prev)]
            paths = [p for p in paths if p.exists()]
            if paths:
                body = (
                    f"SELECT * FROM read_parquet([{', '.join(map(sql_literal_path, paths))}], "
                    "union_by_name=true)"
                )
            else:
                body = empty_select(table)
            con.execute(f'CREATE VIEW "{table}" AS {body}')
        con.execute("CREATE TABLE run_sequence (run_id VARCHAR, previous_run_id VARCHAR)")
        con.execute("INSERT INTO run_sequence VALUES ($run, $prev)", {"run": run_id, "prev": prev})
        for name in ("finding_changes", "file_changes"):
            con.execute(f'CREATE VIEW "{name}" AS {_view(name)}')
        kinds: dict[str, dict[str, int]] = {}
        for kind, change, n in con.execute(
            "SELECT kind, change, count(*) FROM finding_changes GROUP BY ALL"
        ).fetchall():
            kinds.setdefault(kind, {"new": 0, "gone": 0})[change] = n
        files = {"added": 0, "removed": 0, "changed": 0}
        files.update(
            con.execute("SELECT change, count(*) FROM file_changes GROUP BY ALL").fetchall()
        )
    finally:
        con.close()
    return {"previous_run_id": prev, "kinds": kinds, "files": files}


def format_changes(ch: dict[str, Any] | None) -> str:
    """One line for the terminal summary."""
    if ch is None:
        return "changes: first completed run of this SOURCE"
    new = sum(k["new"] for k in ch["kinds"].values())
    gone = sum(k["gone"] for k in ch["kinds"].values())
    f = ch["files"]
    return (
        f"since run {ch['previous_run_id']}: {new} new findings, {gone} gone; "
        f"files {f['added']} added, {f['removed']} removed, {f['changed']} changed"
    )
