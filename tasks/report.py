"""Report: write the run's HTML report and link it in Prefect as an artifact."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from prefect import task

from photo_curate.home import Home
from photo_curate.report import build_report


@task(name="report", retries=1, retry_delay_seconds=1)
def report_task(
    home_root: str, run_id: str, source: str, facts: dict[str, Any] | None = None
) -> str:
    """Render the report (a retry helps with a transient thumbnail read error)."""
    path = build_report(Home(Path(home_root)), run_id, Path(source), facts)
    try:
        from prefect.artifacts import create_link_artifact

        create_link_artifact(
            key="curate-report",
            link=path.as_uri(),
            link_text=f"HTML report of run {run_id}",
            description="Open from the machine that ran the flow.",
        )
    except Exception:
        pass
    return str(path)
