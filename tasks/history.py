"""History: record the run in `runs` and swap in a fresh catalog."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from prefect import task

from photo_curate import catalog
from photo_curate.home import Home
from photo_curate.runs import write_run


def record(home: Home, row: dict[str, Any]) -> None:
    write_run(home, row)
    catalog.rebuild(home)


@task(name="record", retries=2, retry_delay_seconds=1)
def record_task(home_root: str, row: dict[str, Any]) -> None:
    """Write the run row and rebuild the catalog (retried: a reader may hold a file briefly)."""
    record(Home(Path(home_root)), row)
