"""Acquire: turn SOURCE into the folder the run curates (see photo_curate/sources.py).

A folder is used as it is. A manifest's downloads run as a task with one retry (each URL is
already retried with backoff; a whole-task retry helps after a network outage, and resumes
every partial file). Unpacking an archive has no retries: the same bytes fail the same way.
A user error (no URL downloadable, an archive bomb) is never retried.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from prefect import get_run_logger, task

from photo_curate.config import SourcesConfig
from photo_curate.errors import UserError
from photo_curate.home import Home
from photo_curate.sources import Acquired, Source, download_source, unpack_source


def _retry_unless_user_error(_task: Any, _run: Any, state: Any) -> bool:
    return not isinstance(getattr(state, "data", None), UserError)


@task(
    name="download",
    retries=1,
    retry_delay_seconds=10,
    retry_condition_fn=_retry_unless_user_error,
)
def download_task(src: Source, home_root: str, run_id: str, cfg: SourcesConfig) -> Acquired:
    """Download the manifest's URLs into HOME/downloads/ (failed URLs are recorded)."""
    return download_source(src, Home(Path(home_root)), run_id, cfg)


@task(name="unpack")
def unpack_task(src: Source, home_root: str, run_id: str, cfg: SourcesConfig) -> Acquired:
    """Unpack the archive into HOME/sources/ (unsafe members are recorded as skipped)."""
    return unpack_source(src, Home(Path(home_root)), run_id, cfg)


def acquire(src: Source, home: Home, run_id: str, cfg: SourcesConfig) -> Acquired:
    """The run's folder; logs what was skipped or failed on the way."""
    if src.kind == "folder":
        return Acquired(src.path, "folder")
    task_fn = download_task if src.kind == "manifest" else unpack_task
    acq: Acquired = task_fn(src, str(home.root), run_id, cfg)
    log = get_run_logger()
    for problem in acq.problems:
        log.warning("%s: %s", src.kind, problem)
    return acq
