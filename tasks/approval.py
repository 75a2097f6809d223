"""A person approves an apply in the Prefect UI: the flow run pauses after validation with a
typed form (`Approval`) and applies only if the answer is "approve" within the timeout, leaving
out the photos of any file the person lists."""

from __future__ import annotations

from dataclasses import dataclass, field

import duckdb
from prefect import get_run_logger
from prefect.input import RunInput
from pydantic import Field

from photo_curate.home import Home

POLL_SECONDS = 2


class Approval(RunInput):
    """The form the Prefect UI shows on the paused run."""

    approve: bool = False  # tick to apply the plan; left unticked, nothing is applied
    exclude: list[str] = Field(
        default_factory=list,
        description="planned files (paths relative to SOURCE) to leave where they are, "
        "each with its whole photo",
    )
    note: str = ""


@dataclass(frozen=True)
class Answer:
    """What the person decided: `verdict` is 'approved', 'rejected' or 'timed out'."""

    verdict: str
    exclude: list[str] = field(default_factory=list)


def not_in_plan(home: Home, run_id: str, paths: list[str]) -> list[str]:
    """The listed paths that are no file of the run's plan (a typo must not let the file the
    person meant be moved)."""
    plan = home.table_file("plan", run_id)
    if not paths:
        return []
    if not plan.exists():
        return sorted(set(paths))
    con = duckdb.connect()
    try:
        rows = con.execute(
            "SELECT DISTINCT x FROM unnest($paths) t(x) "
            "WHERE x NOT IN (SELECT path FROM read_parquet($plan)) ORDER BY x",
            {"paths": paths, "plan": str(plan)},
        ).fetchall()
    finally:
        con.close()
    return [r[0] for r in rows]


def checked(home: Home, run_id: str, answer: Answer) -> Answer:
    """An approval whose exclusions all name planned files; otherwise a rejection that says
    which do not."""
    unknown = not_in_plan(home, run_id, answer.exclude) if answer.verdict == "approved" else []
    if not unknown:
        return answer
    shown = ", ".join(unknown[:5]) + (f" and {len(unknown) - 5} more" if len(unknown) > 5 else "")
    return Answer(f"rejected: excluded files not in the plan: {shown}")


def await_approval(run_id: str, timeout_seconds: int) -> Answer:
    """The person's answer (a timeout means: do not apply)."""
    from prefect.exceptions import FlowPauseTimeout
    from prefect.flow_runs import pause_flow_run

    log = get_run_logger()
    log.warning(
        "run %s waits up to %d s for approval: resume the paused flow run in the Prefect UI "
        "and tick 'approve' to apply its plan",
        run_id, timeout_seconds,
    )  # fmt: skip
    try:
        answer = pause_flow_run(
            wait_for_input=Approval, timeout=timeout_seconds, poll_interval=POLL_SECONDS
        )
    except FlowPauseTimeout:
        return Answer("timed out")
    if answer is None or not answer.approve:
        return Answer("rejected")
    return Answer("approved", [x.strip() for x in answer.exclude if x.strip()])
