"""Prefect artifacts of a run: summary, plan and validation tables, with keys for the UI.

Every cell that can hold a file name goes through `md_escape`: a file called
`[x](javascript:...)` or `<img src=x>` must show as text in the UI.
"""

from __future__ import annotations

import re
from typing import Any

import duckdb

from photo_curate.home import Home
from photo_curate.summary import KIND_LABELS
from photo_curate.tableio import sql_literal_path

_MD_SPECIAL = re.compile(r"([\\`*_{}\[\]()#+\-.!|<>~])")


def md_escape(text: Any) -> str:
    """Escape Markdown and HTML metacharacters; newlines become spaces."""
    s = str(text).replace("\r", " ").replace("\n", " ")
    s = s.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    return _MD_SPECIAL.sub(r"\\\1", s)


def publish_run_artifacts(home: Home, run_id: str, result: dict[str, Any]) -> None:
    """Summary, plan (top rows), validation and report link; silent outside a Prefect run."""
    try:
        from prefect.artifacts import create_markdown_artifact, create_table_artifact
    except ImportError:  # pragma: no cover
        return
    s = result["summary"]
    ch = result.get("changes")
    since = f"since run {ch['previous_run_id']}" if ch else "first run of this SOURCE"

    def delta(kind: str, change: str) -> int | str:
        return ch["kinds"].get(kind, {}).get(change, 0) if ch else "-"

    rows = [
        {"finding": label, "files": s["kinds"].get(k, {}).get("files", 0),
         "groups": s["kinds"].get(k, {}).get("groups", 0),
         "planned": s["kinds"].get(k, {}).get("planned", 0),
         "new": delta(k, "new"), "gone": delta(k, "gone")}
        for k, label in KIND_LABELS.items()
    ]  # fmt: skip
    try:
        create_table_artifact(
            key="curate-summary",
            table=rows,
            description=(
                f"Findings of run {run_id}: {s['files']} files, {s['valid']} valid images; "
                f"new and gone: {since}"
            ),
        )
        con = duckdb.connect()
        plan = con.execute(
            "SELECT path, action, kinds FROM read_parquet("
            f"{sql_literal_path(home.table_file('plan', run_id))}) ORDER BY path LIMIT 50"
        ).fetchall()
        con.close()
        create_table_artifact(
            key="curate-plan",
            table=[{"file": md_escape(p), "action": a, "kinds": k} for p, a, k in plan],
            description=f"Plan of run {run_id} (first 50 of {s['planned_files']} files)",
        )
        v = result["validation"]
        lines = [f"**{'passed' if v['success'] else 'FAILED'}**: {v['checks']} checks"]
        lines += [f"- {md_escape(f)}" for f in v["failed"]]
        create_markdown_artifact(
            key="curate-validation", markdown="\n".join(lines), description="great-expectations"
        )
    except Exception:
        # artifacts are a view; a failing API must not fail a finished run
        return
