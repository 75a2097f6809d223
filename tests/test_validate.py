"""great-expectations catches a broken run and stops it from acting."""

from __future__ import annotations

from pathlib import Path

import duckdb
import pytest

from photo_curate.errors import UserError
from photo_curate.home import Home
from photo_curate.tableio import atomic_path
from tasks.apply import apply_plan
from tasks.validate import validate_run

pytestmark = pytest.mark.slow


def test_two_keepers_and_an_unknown_file_fail_validation(run_flow, collection: Path, tmp_path):
    home = Home(tmp_path / "home")
    res = run_flow(collection, home.root)
    assert res["validation"]["success"]
    findings = home.table_file("findings", res["run_id"])
    with atomic_path(findings) as tmp:
        duckdb.connect().execute(
            f"""COPY (
                SELECT * REPLACE (true AS is_keeper) FROM read_parquet('{findings}')
                UNION ALL
                (SELECT * REPLACE ('no/such/file.jpg' AS path) FROM read_parquet('{findings}')
                 WHERE kind = 'invalid' LIMIT 1)
            ) TO '{tmp}' (FORMAT parquet)"""
        )
    out = validate_run(home, res["run_id"], collection)
    assert not out.success
    failed = " ".join(out.failed)
    assert "n_keepers" in failed and "in_images" in failed


def test_a_file_added_during_the_run_fails_the_count(run_flow, collection: Path, tmp_path):
    home = Home(tmp_path / "home")
    res = run_flow(collection, home.root)
    (collection / "arrived late.jpg").write_bytes(b"x")
    out = validate_run(home, res["run_id"], collection)
    assert not out.success and "files_on_disk" in " ".join(out.failed)


def test_a_run_that_failed_validation_is_never_applied(run_flow, collection: Path, tmp_path):
    from photo_curate.runs import read_run, write_run

    home = Home(tmp_path / "home")
    run_id = run_flow(collection, home.root)["run_id"]
    row = read_run(home, run_id)
    row["status"] = "validation_failed"
    write_run(home, row)
    with pytest.raises(UserError, match="only a completed, validated run"):
        apply_plan(home, run_id)
