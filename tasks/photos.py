"""Photos, not files: which files of a run make one photo (`photo_files`, sql/photo_files.sql).

A RAW + JPEG pair, a still with its XMP or AAE sidecar, a Live Photo's still and movie are one
photo: the findings judge it by its primary file, and the plan moves all of its files together.
"""

from __future__ import annotations

from typing import Any

import duckdb

from photo_curate.home import Home
from photo_curate.rules import params_for, rule_sql
from photo_curate.sniff import (
    IMAGE_EXTENSIONS,
    MOVIE_EXTENSIONS,
    RAW_EXTENSIONS,
    SIDECAR_EXTENSIONS,
)
from photo_curate.tableio import copy_to_table, sql_literal_path

LIVE_MOVIE_MAX_BYTES = 64 * 1024**2  # a Live Photo's movie is ~3 s: a few MB


def convention_params() -> dict[str, Any]:
    """The file-name conventions the rule reads (lower-case extensions with their dot)."""
    return {
        "image_exts": sorted(IMAGE_EXTENSIONS),
        "raw_exts": sorted(RAW_EXTENSIONS),
        "sidecar_exts": sorted(SIDECAR_EXTENSIONS),
        "movie_exts": sorted(MOVIE_EXTENSIONS),
        "live_movie_max_bytes": LIVE_MOVIE_MAX_BYTES,
    }


def write_photo_files(
    con: duckdb.DuckDBPyConnection, home: Home, run_id: str, params: dict[str, Any]
) -> None:
    """Write the run's `photo_files` from its `files` and `images` views; open it on `con` as
    the view `photo_files`, with `photo_sets` (per primary file: has_raw, has_sidecar)."""
    copy_to_table(
        con, home, "photo_files", run_id, rule_sql("photo_files"),
        params_for("photo_files", params),
    )  # fmt: skip
    con.execute(
        "CREATE OR REPLACE VIEW photo_files AS SELECT * FROM read_parquet("
        f"{sql_literal_path(home.table_file('photo_files', run_id))})"
    )
    # per primary file: what else its photo holds (the keeper rule prefers the RAW original)
    con.execute(
        r"""CREATE OR REPLACE TEMP TABLE photo_sets AS
           SELECT primary_path AS path,
                  bool_or(list_contains($raw_exts, lower(regexp_extract(path, '(\.[^./]*)$', 1)))
                          AND role IN ('primary', 'raw')) AS has_raw,
                  bool_or(role = 'sidecar') AS has_sidecar,
                  min(path) FILTER (role = 'raw') AS raw_path,
                  count(*) AS n_files
           FROM photo_files GROUP BY primary_path""",
        {"raw_exts": params["raw_exts"]},
    )
