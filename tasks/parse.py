"""Parse: the run's neighbour lists become the `pairs` and `outliers` tables (typed Parquet).

Lists are per content (tasks/neighbours.py); DuckDB expands them to the files' relative paths:
- `pairs` (each pair once, path_a < path_b): two contents are a pair when one is among the
  other's k nearest and their similarity is at least `min_similarity`; every file of the one
  is paired with every file of the other. Byte copies (one content, one vector) are paired as
  a star: every copy with the first copy by path, similarity 1.0.
- `outliers`: files whose nearest other content is less similar than `outlier_similarity`
  (absolute: adding photos changes a file's row only when a new photo became its nearest),
  with that similarity and the first file of that content as `nearest`.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from prefect import task

from photo_curate import db
from photo_curate.graph_state import CONTENTS, LISTS, read_meta, state_dir
from photo_curate.home import Home
from photo_curate.schema import empty_select
from photo_curate.tableio import copy_to_table, sql_literal_path


@dataclass(frozen=True)
class PairSpec:
    k: int  # nearest contents per content that make pairs
    min_similarity: float  # pairs below are not kept
    outlier_similarity: float  # a file whose nearest other content is below is an outlier


@dataclass(frozen=True)
class ParseResult:
    n_pairs: int
    n_outliers: int


def _files_sql(images_file: Path) -> str:
    return f"""SELECT path, sha256 FROM read_parquet({sql_literal_path(images_file)})
               WHERE is_valid AND sha256 IS NOT NULL"""


def parse_outputs(home: Home, run_id: str, spec: PairSpec) -> ParseResult:
    con = db.connect(home)
    try:
        folder = state_dir(home, run_id)
        images_file = home.table_file("images", run_id)
        con.execute(f"CREATE TEMP VIEW files AS {_files_sql(images_file)}")
        params = {"run_id": run_id, "k": spec.k, "min_similarity": spec.min_similarity}
        has_lists = read_meta(folder) is not None
        if has_lists:
            con.execute(
                f"CREATE TEMP VIEW contents AS SELECT * FROM "
                f"read_parquet({sql_literal_path(folder / CONTENTS)})"
            )
            con.execute(
                f"CREATE TEMP VIEW lists AS SELECT * FROM "
                f"read_parquet({sql_literal_path(folder / LISTS)})"
            )
            pairs_sql = """
                WITH near AS (
                    SELECT row, unnest(neighbours[1:$k]) AS nbr,
                           unnest(similarities[1:$k]) AS similarity
                    FROM lists),
                content_pairs AS (
                    SELECT least(row, nbr) AS a, greatest(row, nbr) AS b,
                           max(similarity) AS similarity
                    FROM near WHERE similarity >= $min_similarity GROUP BY ALL)
                SELECT $run_id AS run_id, least(fa.path, fb.path) AS path_a,
                       greatest(fa.path, fb.path) AS path_b, p.similarity
                FROM content_pairs p
                JOIN contents ca ON ca.row = p.a JOIN files fa ON fa.sha256 = ca.sha256
                JOIN contents cb ON cb.row = p.b JOIN files fb ON fb.sha256 = cb.sha256
                UNION ALL
                SELECT $run_id, first_path, path, 1.0::DOUBLE
                FROM (SELECT path, min(path) OVER (PARTITION BY sha256) AS first_path FROM files)
                WHERE path <> first_path"""
        else:
            pairs_sql = empty_select("pairs")
        copy_to_table(con, home, "pairs", run_id, pairs_sql, params if has_lists else None)
        if has_lists:
            outliers_sql = """
                WITH first_file AS (
                    SELECT sha256, min(path) AS path FROM files GROUP BY sha256)
                SELECT $run_id AS run_id, f.path, l.similarities[1] AS similarity,
                       nf.path AS nearest
                FROM lists l
                JOIN contents c USING (row) JOIN files f ON f.sha256 = c.sha256
                JOIN contents nc ON nc.row = l.neighbours[1]
                JOIN first_file nf ON nf.sha256 = nc.sha256
                WHERE len(l.neighbours) > 0 AND l.similarities[1] < $outlier_similarity"""
            out_params = {"run_id": run_id, "outlier_similarity": spec.outlier_similarity}
        else:
            outliers_sql, out_params = empty_select("outliers"), None
        copy_to_table(con, home, "outliers", run_id, outliers_sql, out_params)
        n_pairs, n_out = (
            con.execute(
                f"SELECT count(*) FROM read_parquet({sql_literal_path(home.table_file(t, run_id))})"
            ).fetchall()[0][0]
            for t in ("pairs", "outliers")
        )
    finally:
        con.close()
    return ParseResult(n_pairs, n_out)


@task(name="parse")
def parse_task(home_root: str, run_id: str, spec: PairSpec) -> ParseResult:
    """Neighbour lists -> `pairs` and `outliers` Parquet (deterministic: no retries)."""
    return parse_outputs(Home(Path(home_root)), run_id, spec)
