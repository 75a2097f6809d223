"""A person approves an apply in the Prefect UI: the flow run pauses after validation with a
typed form (`Approval`) and applies only if the answer is "approve" within the timeout."""

from __future__ import annotations

from prefect import get_run_logger
from prefect.input import RunInput

POLL_SECONDS = 2


class Approval(RunInput):
    """The form the Prefect UI shows on the paused run."""

    approve: bool = False  # tick to apply the plan; left unticked, nothing is applied
    note: str = ""


def await_approval(run_id: str, timeout_seconds: int) -> str:
    """'approved', 'rejected' or 'timed out' (a timeout means: do not apply)."""
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
        return "timed out"
    return "approved" if answer is not None and answer.approve else "rejected"
