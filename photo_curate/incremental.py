"""Incremental runs: what a run may take over from the last completed run of its SOURCE.

An image row is reused when the file has the same (path, size, mtime, inode) as in that run's
manifest, the run was made with the same inspect key (the settings and code that decide an
`images` row and an analysis copy), and, for a valid image, its fastdup vector is cached.
Everything else is inspected again. When the whole manifest and every setting that decides a
result are unchanged, the run takes over all of that run's tables instead of recomputing them.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from importlib.metadata import version

import duckdb

from photo_curate import __version__
from photo_curate.compare import COMPARE_VERSION
from photo_curate.config import CurateConfig
from photo_curate.features import DIM, FeatureCache
from photo_curate.graph import GROUPING_VERSION
from photo_curate.graph_state import carry
from photo_curate.home import Home
from photo_curate.inspect_image import ANALYSIS_SIZE, InspectOptions
from photo_curate.neighbours import GRAPH_VERSION
from photo_curate.rules import SQL_DIR
from photo_curate.runs import all_run_ids, read_run
from photo_curate.schema import TABLES
from photo_curate.tableio import copy_to_table, sql_literal_path

# Bump when inspect_image.py changes what it writes for the same bytes (rows or analysis copy).
# 2: transparency over grey, RAW and other unsupported formats; 3: RAW read with LibRaw
INSPECT_REVISION = 3
# Settings that change no result (only speed or the way the run is made).
_NOT_RESULTS = {("analysis", "workers"), ("analysis", "incremental"), ("fastdup", "threads"),
                ("fastdup", "timeout_seconds")}  # fmt: skip
# Whole sections that change no result: where the work runs (local or a Dask cluster).
_NOT_RESULT_SECTIONS = {"execution"}
# Tables a run without changes takes over (runs and actions are its own).
CARRIED = (
    "images", "pairs", "outliers", "pair_checks", "photo_files", "findings", "clusters", "plan",
    "validations",
)  # fmt: skip
# The manifest columns that must be equal for "nothing changed".
_MANIFEST = "path, entry_type, size_bytes, mtime_ns, inode, format_hint, status, reason"


def _digest(parts: dict) -> str:
    return hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()[:16]


def inspect_key(opts: InspectOptions) -> str:
    """A short hash of everything that decides an `images` row and a fastdup vector."""
    return _digest(
        {
            "revision": INSPECT_REVISION,
            "curate": __version__,
            "fastdup": version("fastdup"),
            "dim": DIM,
            "analysis_size": ANALYSIS_SIZE,
            "analysis_quality": opts.analysis_quality,
            "max_pixels": opts.max_pixels,
            "max_file_bytes": opts.max_file_bytes,
            "images_columns": TABLES["images"],
        }
    )


def results_key(key: str, cfg: CurateConfig, decisions: str = "") -> str:
    """A short hash of what decides a run's results from the same files: the inspect key, the
    settings that change a result, the SQL rules, the columns of the carried tables and the
    decisions in force (`decisions.digest`)."""
    rules = {p.name: p.read_text(encoding="utf-8") for p in sorted(SQL_DIR.glob("*.sql"))}
    columns = {t: TABLES[t] for t in CARRIED}
    settings = result_settings(cfg.model_dump(mode="json"))
    return _digest({"inspect": key, "settings": settings, "rules": rules, "columns": columns,
                    "grouping": GROUPING_VERSION, "graph": GRAPH_VERSION,
                    "compare": COMPARE_VERSION, "decisions": decisions})  # fmt: skip


def feature_cache(home: Home, key: str) -> FeatureCache:
    return FeatureCache(home.root / "cache" / "features" / key)


@dataclass(frozen=True)
class Base:
    """The completed run whose results this run may reuse."""

    run_id: str
    results_key: str | None  # see results_key()


def find_base(home: Home, run_id: str, source: str, key: str) -> Base | None:
    """The latest completed run of SOURCE before `run_id`, if it used the same inspect key."""
    for rid in all_run_ids(home):
        if rid >= run_id:
            continue
        row = read_run(home, rid)
        if not row or row.get("source") != source or row.get("status") != "completed":
            continue
        ok = row.get("inspect_key") == key and home.table_file("images", rid).exists()
        return Base(rid, row.get("results_key")) if ok else None
    return None


def result_settings(config: str | dict) -> dict:
    """The config without the settings that change no result."""
    data = json.loads(config) if isinstance(config, str) else dict(config)
    return {
        section: {k: v for k, v in values.items() if (section, k) not in _NOT_RESULTS}
        for section, values in data.items()
        if section not in _NOT_RESULT_SECTIONS
    }


def unchanged(home: Home, base: Base, run_id: str, results: str, cache: FeatureCache) -> bool:
    """The same results key, the same manifest, and every base image row reusable."""
    if base.results_key != results:
        return False
    if not all(home.table_file(t, base.run_id).exists() for t in CARRIED):
        return False
    cur, old = (sql_literal_path(home.table_file("files", r)) for r in (run_id, base.run_id))
    old_images = sql_literal_path(home.table_file("images", base.run_id))
    con = duckdb.connect()
    try:
        diff = con.execute(
            f"""SELECT count(*) FROM (
                  (SELECT {_MANIFEST} FROM read_parquet({cur})
                   EXCEPT ALL SELECT {_MANIFEST} FROM read_parquet({old}))
                  UNION ALL
                  (SELECT {_MANIFEST} FROM read_parquet({old})
                   EXCEPT ALL SELECT {_MANIFEST} FROM read_parquet({cur})))"""
        ).fetchall()[0][0]
        if diff:
            return False
        stale = con.execute(
            f"""SELECT count(*) FROM read_parquet({old_images})
                WHERE sha256 IS NULL
                   OR (is_valid AND sha256 NOT IN (SELECT sha256 FROM {cache.source()}))"""
        ).fetchall()[0][0]
        return stale == 0
    finally:
        con.close()


def carry_over(home: Home, base: Base, run_id: str) -> None:
    """This run's tables are the base run's, under this run's id (nothing changed), and so
    are its neighbour lists: the next run updates them from here."""
    carry(home, base.run_id, run_id)
    con = duckdb.connect()
    note = f"carried over from run {base.run_id} (nothing changed): "
    stamp = "now()::TIMESTAMP AS \"at\", $note || coalesce(observed, '') AS observed"
    try:
        for table in CARRIED:
            src = f"read_parquet({sql_literal_path(home.table_file(table, base.run_id))})"
            params = {"run_id": run_id}
            replace = "$run_id AS run_id"
            if table == "validations":
                params["note"] = note
                replace += ", " + stamp
            sql = f"SELECT * REPLACE ({replace}) FROM {src}"
            copy_to_table(con, home, table, run_id, sql, params)
    finally:
        con.close()


def reused_rows_sql(home: Home, base: Base, run_id: str, cache: FeatureCache) -> str:
    """The run's image candidates (with their analysis id: the rank in path order) joined with
    the base run's `images` rows that can be reused; `reuse` is false for those to inspect."""
    files = sql_literal_path(home.table_file("files", run_id))
    old_files = sql_literal_path(home.table_file("files", base.run_id))
    old_images = sql_literal_path(home.table_file("images", base.run_id))
    return f"""
        WITH cand AS (
            SELECT path, size_bytes, mtime, mtime_ns, inode,
                   row_number() OVER (ORDER BY path) - 1 AS new_analysis_id
            FROM read_parquet({files}) WHERE status = 'image'),
        old AS (
            SELECT i.*, f.inode AS old_inode
            FROM read_parquet({old_images}) i
            JOIN read_parquet({old_files}) f USING (path)
            WHERE i.sha256 IS NOT NULL
              AND (NOT i.is_valid OR i.sha256 IN (SELECT sha256 FROM {cache.source()})))
        SELECT c.path AS cand_path, c.size_bytes AS cand_size, c.mtime AS cand_mtime,
               c.mtime_ns AS cand_mtime_ns, c.new_analysis_id,
               o.path IS NOT NULL AS reuse, o.* EXCLUDE (old_inode)
        FROM cand c LEFT JOIN old o
          ON o.path = c.path AND o.size_bytes = c.size_bytes AND o.mtime_ns = c.mtime_ns
         AND o.old_inode IS NOT DISTINCT FROM c.inode"""


def carried_checks(home: Home, run_id: str) -> int:
    """How many validation results the run took over."""
    path = home.table_file("validations", run_id)
    con = duckdb.connect()
    try:
        res = con.execute(f"SELECT count(*) FROM read_parquet({sql_literal_path(path)})")
        return int(res.fetchall()[0][0])
    finally:
        con.close()
