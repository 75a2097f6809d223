"""Validate the run with great-expectations before anything destructive may happen.

Checks: every regular file on disk (counted again, independently) is in the manifest; every
image candidate has exactly one `images` row; every finding names an image of the run, with a
known kind and action, once per (path, kind); every duplicate and near-duplicate group has two
or more members and exactly one keeper; no keeper is planned for removal; the plan names only
files of the run.
"""

from __future__ import annotations

import os
import stat
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import duckdb
from prefect import task

from photo_curate.home import Home
from photo_curate.tableio import RowWriter, sql_literal_path
from photo_curate.validation import Check, Outcome, run_suites

KINDS = [
    "invalid", "unsupported", "duplicate", "near_duplicate", "dark", "bright", "blurry", "outlier"
]  # fmt: skip
ACTIONS = ["keep", "quarantine", "trash", "delete", "review"]


@dataclass(frozen=True)
class ValidationResult:
    success: bool
    n_checks: int
    failed: list[str]


def count_regular_files(source: Path, skip: Path) -> int:
    """Regular files under SOURCE, counted on disk independently of the ingest code."""
    n = 0
    for folder, dirs, files in os.walk(source, followlinks=False):
        dirs[:] = [d for d in dirs if os.path.join(folder, d) != str(skip)]
        for name in files:
            p = os.path.join(folder, name)
            if stat.S_ISREG(os.lstat(p).st_mode):
                n += 1
    return n


def _frames(home: Home, run_id: str, files_on_disk: int) -> dict[str, tuple[object, list[Check]]]:
    con = duckdb.connect()
    for table in ("files", "images", "findings", "plan", "photo_files"):
        src = sql_literal_path(home.table_file(table, run_id))
        con.execute(f'CREATE VIEW "{table}" AS SELECT * FROM read_parquet({src})')
    manifest = con.sql(
        """SELECT f.path, count(i.path) AS n_image_rows
           FROM files f LEFT JOIN images i USING (path)
           WHERE f.status = 'image' GROUP BY f.path"""
    ).df()
    images = con.sql(
        "SELECT path, is_valid, (is_valid OR error IS NOT NULL) AS explained FROM images"
    ).df()
    findings = con.sql(
        """SELECT f.path, f.kind, f.action, i.path IS NOT NULL AS in_images
           FROM findings f LEFT JOIN images i USING (path)"""
    ).df()
    groups = con.sql(
        """SELECT group_id, kind, count(*) AS n_members,
                  count(*) FILTER (WHERE is_keeper) AS n_keepers,
                  count(*) FILTER (WHERE is_keeper AND action NOT IN ('keep')) AS n_keepers_acted
           FROM findings WHERE kind IN ('duplicate', 'near_duplicate')
           GROUP BY group_id, kind"""
    ).df()
    counts = con.sql(
        """SELECT
             $on_disk AS files_on_disk,
             (SELECT count(*) FROM files WHERE entry_type = 'file') AS files_in_manifest,
             (SELECT count(*) FROM files WHERE status = 'image') AS image_candidates,
             (SELECT count(*) FROM images) AS image_rows,
             (SELECT count(*) FROM plan p LEFT JOIN files f USING (path)
              WHERE f.path IS NULL
                 OR (f.status <> 'image' AND p.role NOT IN ('sidecar', 'movie')))
                 AS plan_unknown_paths,
             -- a photo is planned whole or not at all
             (SELECT count(DISTINCT pf.photo_id) FROM photo_files pf
              JOIN (SELECT DISTINCT photo_id FROM plan) pl USING (photo_id)
              LEFT JOIN plan p USING (path)
              WHERE p.path IS NULL) AS photos_split_by_plan""",
        params={"on_disk": files_on_disk},
    ).df()
    con.close()
    between_1 = {"min_value": 1, "max_value": 1}
    return {
        "manifest": (
            manifest,
            [
                Check("ExpectColumnValuesToBeUnique", {"column": "path"}),
                Check("ExpectColumnValuesToBeBetween", {"column": "n_image_rows", **between_1}),
            ],
        ),
        "images": (
            images,
            [
                Check("ExpectColumnValuesToBeUnique", {"column": "path"}),
                Check("ExpectColumnValuesToNotBeNull", {"column": "is_valid"}),
                Check("ExpectColumnValuesToBeInSet", {"column": "explained", "value_set": [True]}),
            ],
        ),
        "findings": (
            findings,
            [
                Check("ExpectColumnValuesToBeInSet", {"column": "in_images", "value_set": [True]}),
                Check("ExpectColumnValuesToBeInSet", {"column": "kind", "value_set": KINDS}),
                Check("ExpectColumnValuesToBeInSet", {"column": "action", "value_set": ACTIONS}),
                Check("ExpectCompoundColumnsToBeUnique", {"column_list": ["path", "kind"]}),
            ],
        ),
        "groups": (
            groups,
            [
                Check("ExpectColumnValuesToBeBetween", {"column": "n_keepers", **between_1}),
                Check("ExpectColumnValuesToBeBetween", {"column": "n_members", "min_value": 2}),
                Check(
                    "ExpectColumnValuesToBeBetween",
                    {"column": "n_keepers_acted", "min_value": 0, "max_value": 0},
                ),
            ],
        ),
        "counts": (
            counts,
            [
                Check(
                    "ExpectColumnPairValuesToBeEqual",
                    {"column_A": "files_on_disk", "column_B": "files_in_manifest"},
                ),
                Check(
                    "ExpectColumnPairValuesToBeEqual",
                    {"column_A": "image_candidates", "column_B": "image_rows"},
                ),
                Check(
                    "ExpectColumnValuesToBeBetween",
                    {"column": "plan_unknown_paths", "min_value": 0, "max_value": 0},
                ),
                Check(
                    "ExpectColumnValuesToBeBetween",
                    {"column": "photos_split_by_plan", "min_value": 0, "max_value": 0},
                ),
            ],
        ),
    }


def record_outcomes(home: Home, run_id: str, stage: str, outcomes: list[Outcome]) -> None:
    now = datetime.now(UTC).replace(tzinfo=None)
    table_run = run_id if stage == "plan" else f"{run_id}-{stage}"  # one file per stage
    with RowWriter(home, "validations", table_run) as out:
        for o in outcomes:
            out.add(
                {
                    "run_id": run_id,
                    "at": now,
                    "stage": f"{stage}:{o.suite}",
                    "expectation": o.expectation,
                    "column_name": o.column,
                    "success": o.success,
                    "observed": o.observed[:500],
                }
            )


def validate_run(home: Home, run_id: str, source: Path) -> ValidationResult:
    on_disk = count_regular_files(source, home.root)
    outcomes = run_suites(_frames(home, run_id, on_disk))  # type: ignore[arg-type]
    record_outcomes(home, run_id, "plan", outcomes)
    failed = [
        f"{o.suite}: {o.expectation}({o.column or ''}) observed {o.observed}"
        for o in outcomes
        if not o.success
    ]
    return ValidationResult(not failed, len(outcomes), failed)


@task(name="validate")
def validate_task(home_root: str, run_id: str, source: str) -> ValidationResult:
    """great-expectations over the run's tables (deterministic: no retries)."""
    return validate_run(Home(Path(home_root)), run_id, Path(source))
