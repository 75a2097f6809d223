"""Progress of a long step: a bar in a terminal, a progress artifact in the Prefect UI.

No bar when stderr is not a terminal (cron, CI, pipes). The Prefect artifact is updated at most
every few seconds so a 100k-file step does not flood the API.
"""

from __future__ import annotations

import re
import sys
import time
from types import TracebackType
from typing import Any

_UPDATE_EVERY_S = 3.0


def _prefect_run_context() -> bool:
    try:
        from prefect.context import FlowRunContext, TaskRunContext

        return bool(TaskRunContext.get() or FlowRunContext.get())
    except Exception:
        return False


def _artifact_key(text: str) -> str:
    # keys: lowercase letters, digits and dashes only
    return re.sub(r"[^a-z0-9-]+", "-", text.lower()).strip("-")[:60] or "progress"


class StepProgress:
    """Counts work done in one step; show it wherever someone is watching."""

    def __init__(self, description: str, total: int | None, unit: str = "files"):
        self.description = description
        self.total = total
        self.unit = unit
        self.done = 0
        self._bar: Any = None
        self._task: Any = None
        self._artifact_id: Any = None
        self._last_push = 0.0

    def __enter__(self) -> StepProgress:
        if sys.stderr.isatty():
            from rich.progress import (
                BarColumn,
                MofNCompleteColumn,
                Progress,
                TextColumn,
                TimeElapsedColumn,
                TimeRemainingColumn,
            )

            self._bar = Progress(
                TextColumn("{task.description}"),
                BarColumn(),
                MofNCompleteColumn(),
                TextColumn(self.unit),
                TimeElapsedColumn(),
                TimeRemainingColumn(),
                transient=False,
            )
            self._bar.start()
            self._task = self._bar.add_task(self.description, total=self.total)
        if _prefect_run_context() and self.total:
            try:
                from prefect.artifacts import create_progress_artifact

                self._artifact_id = create_progress_artifact(
                    progress=0.0,
                    key=_artifact_key(f"progress-{self.description}"),
                    description=f"{self.description}: 0 of {self.total} {self.unit}",
                )
            except Exception:
                self._artifact_id = None
        return self

    def advance(self, n: int = 1) -> None:
        self.done += n
        if self._bar is not None:
            self._bar.update(self._task, advance=n)
        now = time.monotonic()
        if self._artifact_id is not None and now - self._last_push >= _UPDATE_EVERY_S:
            self._push()
            self._last_push = now

    def _push(self) -> None:
        try:
            from prefect.artifacts import update_progress_artifact

            pct = 100.0 * self.done / self.total if self.total else 100.0
            update_progress_artifact(
                artifact_id=self._artifact_id,
                progress=min(pct, 100.0),
                description=f"{self.description}: {self.done} of {self.total} {self.unit}",
            )
        except Exception:
            self._artifact_id = None

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._bar is not None:
            self._bar.stop()
        if self._artifact_id is not None:
            self._push()
