"""Parse: fastdup's CSVs become typed Parquet tables keyed by run id and relative path.

DuckDB reads the CSVs and writes Parquet directly (no pandas in between). fastdup's rows name
analysis copies (`<analysis_id>.jpg`); they are mapped back to the files' relative paths here.
Tables: `pairs` (similar pairs, each once, a < b) and `outliers`. fastdup's own stats are not
computed (`run_stats=0`): the inspect step measures every image already.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import duckdb
from prefect import task

from photo_curate.home import Home
from photo_curate.schema import empty_select
from photo_curate.tableio import copy_to_table, sql_literal_path


@dataclass(frozen=True)
class ParseResult:
    n_pairs: int
    n_outliers: int


def _csv(work: Path, name: str, columns: dict[str, str]) -> str | None:
    path = work / name
    if not path.exists() or path.stat().st_size == 0:
        return None
    cols = ", ".join(f"'{k}': '{v}'" for k, v in columns.items())
    return f"read_csv({sql_literal_path(path)}, header=true, columns={{{cols}}}, quote='\"')"


def parse_outputs(home: Home, run_id: str, work_dir: str | None) -> ParseResult:
    con = duckdb.connect()
    images_file = home.table_file("images", run_id)
    con.execute(f"CREATE VIEW img AS SELECT * FROM read_parquet({sql_literal_path(images_file)})")
    work = Path(work_dir) if work_dir else None
    feats = sim = outl = None
    if work is not None:
        feats = _csv(work, "atrain_features.dat.csv", {"index": "BIGINT", "filename": "VARCHAR"})
        sim = _csv(work, "similarity.csv", {"from": "BIGINT", "to": "BIGINT", "distance": "DOUBLE"})
        outl = _csv(work, "outliers.csv", {"from": "BIGINT", "to": "BIGINT", "distance": "DOUBLE"})
    if feats:
        # fastdup's index -> our analysis id (its file name) -> the file's relative path
        con.execute(
            f"""CREATE TABLE fmap AS
                SELECT f."index" AS fidx, i.path
                FROM {feats} f
                JOIN img i ON i.analysis_id =
                    CAST(regexp_extract(f.filename, '(\\d+)\\.jpg$', 1) AS BIGINT)"""
        )
    params = {"run_id": run_id}
    if feats and sim:
        pairs_sql = f"""
            SELECT $run_id AS run_id, least(a.path, b.path) AS path_a,
                   greatest(a.path, b.path) AS path_b, max(s.distance) AS similarity
            FROM {sim} s JOIN fmap a ON a.fidx = s."from" JOIN fmap b ON b.fidx = s."to"
            WHERE a.path <> b.path
            GROUP BY ALL"""
    else:
        pairs_sql = empty_select("pairs")
    copy_to_table(con, home, "pairs", run_id, pairs_sql, params if feats and sim else None)
    if feats and outl:
        outl_sql = f"""
            SELECT $run_id AS run_id, a.path, min(o.distance) AS similarity,
                   first(b.path ORDER BY o.distance, b.path) AS nearest
            FROM {outl} o JOIN fmap a ON a.fidx = o."from" JOIN fmap b ON b.fidx = o."to"
            GROUP BY a.path"""
    else:
        outl_sql = empty_select("outliers")
    copy_to_table(con, home, "outliers", run_id, outl_sql, params if feats and outl else None)
    n_pairs, n_out = (
        con.execute(
            f"SELECT count(*) FROM read_parquet({sql_literal_path(home.table_file(t, run_id))})"
        ).fetchall()[0][0]
        for t in ("pairs", "outliers")
    )
    con.close()
    return ParseResult(n_pairs, n_out)


@task(name="parse")
def parse_task(home_root: str, run_id: str, work_dir: str | None) -> ParseResult:
    """fastdup CSVs -> Parquet (deterministic: no retries)."""
    return parse_outputs(Home(Path(home_root)), run_id, work_dir)
