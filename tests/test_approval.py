"""Approval in the Prefect UI: a run with apply and an approval timeout pauses after
validation with a typed form; resumed through the API as the UI does, with `approve` ticked,
it applies; rejected or not answered in time, it applies nothing."""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

import duckdb
import pytest

from photo_curate.home import Home
from tasks.approval import Answer, checked
from tests.conftest import tree_digest

pytestmark = [pytest.mark.slow, pytest.mark.server]


def _paused_run(since: float) -> Any:
    """The curate flow run that is paused now (started after `since`), or None."""
    from prefect import get_client
    from prefect.client.schemas.filters import (
        FlowRunFilter,
        FlowRunFilterState,
        FlowRunFilterStateType,
    )
    from prefect.client.schemas.objects import StateType

    with get_client(sync_client=True) as client:
        runs = client.read_flow_runs(
            flow_run_filter=FlowRunFilter(
                state=FlowRunFilterState(type=FlowRunFilterStateType(any_=[StateType.PAUSED]))
            )
        )
    return next((r for r in runs if r.created and r.created.timestamp() >= since - 5), None)


def _run_in_thread(run_flow: Any, **kw: Any) -> tuple[threading.Thread, dict[str, Any]]:
    out: dict[str, Any] = {}

    def target() -> None:
        out["result"] = run_flow(**kw)

    t = threading.Thread(target=target, daemon=True)
    t.start()
    return t, out


def _wait_paused(since: float, thread: threading.Thread) -> Any:
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline and thread.is_alive():
        run = _paused_run(since)
        if run is not None:
            return run
        time.sleep(1)
    raise AssertionError("the run never paused for approval")


def _a_planned_photo(home: Path) -> list[str]:
    """The files of one photo in the (only) plan under `home`."""
    (plan,) = (home / "data" / "plan").glob("*.parquet")
    return [
        r[0]
        for r in duckdb.sql(
            f"SELECT path FROM read_parquet('{plan}') WHERE photo_id = "
            f"(SELECT min(photo_id) FROM read_parquet('{plan}'))"
        ).fetchall()
    ]


def test_an_apply_waits_for_approval_and_applies_only_when_approved(
    run_flow, collection: Path, tmp_path: Path
) -> None:
    """Rejected: nothing moves. Approved with one planned file excluded: its photo stays where
    it is, the rest of the plan is applied."""
    from prefect.flow_runs import resume_flow_run

    before = tree_digest(collection)
    for approve, home in ((False, "rejected"), (True, "approved")):
        since = time.time()
        t, out = _run_in_thread(
            run_flow, source=collection, home=tmp_path / home, apply=True,
            approval_timeout_seconds=600,
        )  # fmt: skip
        paused = _wait_paused(since, t)
        assert tree_digest(collection) == before  # nothing applied while it waits
        kept = _a_planned_photo(tmp_path / home)
        resume_flow_run(paused.id, run_input={"approve": approve, "exclude": kept[:1]})
        t.join(timeout=300)
        res = out["result"]
        assert res["approval"] == home
        after = tree_digest(collection)
        if home == "rejected":
            assert res["applied"] is None and after == before
        else:
            assert res["applied"]["done"] > 0 and after != before
            assert res["applied"]["excluded"] == len(kept)
            assert all(after[f] == before[f] for f in kept)


def test_an_exclusion_that_names_no_planned_file_rejects_the_apply(tmp_path: Path) -> None:
    """A typo in the form must not let the file the person meant be moved."""
    home = Home(tmp_path)
    plan = home.table_file("plan", "r1")
    plan.parent.mkdir(parents=True)
    duckdb.sql(f"COPY (SELECT 'a/IMG_1.jpg' AS path) TO '{plan}' (FORMAT parquet)")
    ok = checked(home, "r1", Answer("approved", ["a/IMG_1.jpg"]))
    assert ok == Answer("approved", ["a/IMG_1.jpg"])
    typo = checked(home, "r1", Answer("approved", ["a/IMG_1.jpg", "a/img_1.jpg"]))
    assert typo == Answer("rejected: excluded files not in the plan: a/img_1.jpg")
    assert checked(home, "r1", Answer("timed out")) == Answer("timed out")


def test_no_answer_in_time_applies_nothing(run_flow, collection: Path, tmp_path: Path) -> None:
    before = tree_digest(collection)
    res = run_flow(collection, tmp_path / "home", apply=True, approval_timeout_seconds=3)
    assert res["approval"] == "timed out" and res["applied"] is None
    assert res["status"] == "completed" and tree_digest(collection) == before
