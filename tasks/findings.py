"""Findings and plan: run the SQL rules of `sql/` over the run's Parquet tables.

Per-image rules (invalid, unsupported, dark, bright, blurry, outlier) give flags; the pair
rules build on `pair_checks` (what the pixels of each candidate pair showed, tasks/verify.py)
and give duplicate, near-duplicate and cluster edges. Duplicates are star groups around the
best copy (every copy planned for removal is a duplicate of its group's keeper; see
photo_curate/graph.py), `keeper.sql` picks that copy. Near duplicates are star groups too,
over pictures (a duplicate group counts as its keeper) around the best shot of the scene
(`best_shot.sql`); clusters are connected components. `plan.sql` decides each file's action.
Everything is DuckDB over Parquet; the results are the run's `findings`, `clusters` and `plan`
tables.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import duckdb
from prefect import task

from photo_curate.config import CurateConfig
from photo_curate.decisions import active_sql
from photo_curate.graph import components, star_groups
from photo_curate.home import Home
from photo_curate.rules import params_for, rule_as_table, rule_sql
from photo_curate.schema import empty_select
from photo_curate.tableio import copy_to_table, sql_literal_path
from tasks.photos import convention_params, write_photo_files

PER_IMAGE_RULES = ("invalid", "unsupported", "dark", "bright", "blurry", "outlier")
FILE_RULES = ("invalid", "unsupported")  # about the file itself, not the photo
_GLOB_CHARS = set("*?[")


@dataclass(frozen=True)
class FindingsResult:
    counts: dict[str, int]  # files per finding kind
    groups: dict[str, int]  # groups per grouped kind
    n_planned: int
    largest_cluster: int
    n_clusters: int


def rule_parameters(cfg: CurateConfig, run_id: str) -> dict[str, Any]:
    r = cfg.rules
    return {
        **r.model_dump(),
        "run_id": run_id,
        "keep": cfg.actions.keep,
        "act_on": list(cfg.actions.act_on),
        "action": cfg.actions.action,
        **convention_params(),  # the file names that make a photo (sql/photo_files.sql)
    }


def folder_globs(patterns: list[str]) -> list[str]:
    """Config folders or globs as GLOB patterns over relative paths ('Raw' -> 'Raw/*')."""
    out = []
    for raw in patterns:
        p = raw.strip().strip("/")
        if not p:
            continue
        out.append(p if _GLOB_CHARS & set(p) else f"{p}/*")
    return out


# what each pair-wise table calls its files
_PAIR_TABLES = {"pairs": ("path_a", "path_b"), "pair_checks": ("path_a", "path_b"),
                "outliers": ("path",)}  # fmt: skip


def _open_run(home: Home, run_id: str, params: dict[str, Any]) -> duckdb.DuckDBPyConnection:
    """The run's tables as views, and its photos (`photo_files`). A photo is judged by its
    primary file: the other images of a photo (the RAW beside its JPEG) are left out of the
    pairs and outliers, so a RAW + JPEG pair is never a duplicate of itself."""
    con = duckdb.connect()
    for table in ("files", "images"):
        path = sql_literal_path(home.table_file(table, run_id))
        con.execute(f'CREATE VIEW "{table}" AS SELECT * FROM read_parquet({path})')
    write_photo_files(con, home, run_id, params)
    con.execute(
        "CREATE TEMP TABLE secondary AS SELECT path FROM photo_files WHERE role IN ('raw', 'still')"
    )
    _decisions(con, home)
    for table, cols in _PAIR_TABLES.items():
        path = home.table_file(table, run_id)
        body = (
            f"SELECT * FROM read_parquet({sql_literal_path(path)})"
            if path.exists() or table != "pair_checks"
            else empty_select(table)
        )
        if len(cols) == 2:  # no group takes these in; a person said these pairs differ
            keep = (
                "path_a NOT IN (SELECT path FROM ungrouped)"
                " AND path_b NOT IN (SELECT path FROM ungrouped)"
                " AND NOT EXISTS (SELECT 1 FROM apart x WHERE x.a = path_a AND x.b = path_b)"
            )
        else:
            keep = "path NOT IN (SELECT path FROM secondary)"
        con.execute(f'CREATE VIEW "{table}" AS SELECT * FROM ({body}) WHERE {keep}')
    return con


def _decisions(con: duckdb.DuckDBPyConnection, home: Home) -> None:
    """The decisions in force, on this run's files by content (`decided`); the pairs a person
    said are different shots (`apart`); the files no similarity group takes in (`ungrouped`:
    a photo's other images, and the files a person said not to group)."""
    con.execute(
        "CREATE TEMP TABLE decided AS SELECT d.decision_id, d.verdict, d.kind, i.path "
        f"FROM ({active_sql(home)}) d JOIN images i ON i.sha256 = d.sha256"
    )
    con.execute(
        """CREATE TEMP TABLE apart AS SELECT a.path AS a, b.path AS b
           FROM decided a JOIN decided b USING (decision_id)
           WHERE a.verdict = 'not-duplicate' AND a.path <> b.path"""
    )
    con.execute(
        "CREATE TEMP TABLE ungrouped AS SELECT path FROM secondary UNION "
        "SELECT path FROM decided WHERE verdict = 'ignore' "
        "AND (kind IS NULL OR kind IN ('duplicate', 'near_duplicate'))"
    )


def _near_groups(con: duckdb.DuckDBPyConnection, params: dict[str, Any]) -> int:
    """`near_members`: star groups of similar shots around each scene's best shot, over
    pictures (a duplicate group counts as its keeper, and all its copies join its group)."""
    con.execute(
        """CREATE OR REPLACE TEMP TABLE pic AS
           SELECT d.path, k.path AS picture
           FROM raw_findings d
           JOIN raw_findings k ON k.kind = 'duplicate' AND k.is_keeper AND k.group_id = d.group_id
           WHERE d.kind = 'duplicate'"""
    )
    rule_as_table(con, "near_edges", "near_duplicate_edges", params)
    con.execute(
        """CREATE OR REPLACE TEMP TABLE near_pic_edges AS
           WITH mapped AS (
               SELECT coalesce(pa.picture, e.path_a) AS a, coalesce(pb.picture, e.path_b) AS b,
                      e.similarity, e.evidence
               FROM near_edges e
               LEFT JOIN pic pa ON pa.path = e.path_a LEFT JOIN pic pb ON pb.path = e.path_b)
           SELECT least(a, b) AS path_a, greatest(a, b) AS path_b, max(similarity) AS similarity,
                  first(evidence ORDER BY similarity DESC) AS evidence
           FROM mapped WHERE a <> b GROUP BY ALL"""
    )
    con.execute("CREATE OR REPLACE TEMP VIEW evidence AS SELECT * FROM near_pic_edges")
    con.execute(
        "CREATE OR REPLACE TEMP VIEW members AS SELECT 'all' AS group_id, path, "
        "NULL::DOUBLE AS score FROM (SELECT path_a AS path FROM near_pic_edges "
        "UNION SELECT path_b FROM near_pic_edges)"
    )
    con.execute(
        "CREATE OR REPLACE TEMP TABLE near_order AS "
        f"SELECT path, rank FROM ({rule_sql('best_shot')})",
        params_for("best_shot", params),
    )
    n = star_groups(
        con, "near_pic_edges", "near_pic_members", "near", "SELECT path, rank FROM near_order"
    )
    con.execute(
        """CREATE OR REPLACE TEMP TABLE near_members AS
           SELECT g.group_id, coalesce(p.path, g.path) AS path, g.score
           FROM near_pic_members g
           LEFT JOIN (SELECT path, picture FROM pic UNION SELECT picture, picture FROM pic) p
             ON p.picture = g.path"""
    )
    return n


def build_findings(home: Home, run_id: str, cfg: CurateConfig) -> FindingsResult:
    params = rule_parameters(cfg, run_id)
    con = _open_run(home, run_id, params)
    con.execute(
        "CREATE TEMP TABLE raw_findings (path VARCHAR, kind VARCHAR, score DOUBLE, "
        "group_id VARCHAR, is_keeper BOOLEAN, reason VARCHAR)"
    )
    for kind in PER_IMAGE_RULES:
        rule_as_table(con, f"rule_{kind}", kind, params)
        # a photo's looks are judged on its primary file; every file can be broken
        only_primary = (
            "" if kind in FILE_RULES else "WHERE path NOT IN (SELECT path FROM secondary)"
        )
        con.execute(
            f"INSERT INTO raw_findings SELECT path, '{kind}', score, NULL, NULL, reason "
            f'FROM "rule_{kind}" {only_primary}'
        )
    con.execute(
        """CREATE TEMP TABLE flags AS
           SELECT i.path,
                  d.path IS NOT NULL AS dark, b.path IS NOT NULL AS bright,
                  u.path IS NOT NULL AS blurry
           FROM images i
           LEFT JOIN rule_dark d USING (path) LEFT JOIN rule_bright b USING (path)
           LEFT JOIN rule_blurry u USING (path)
           WHERE i.is_valid"""
    )
    rule_as_table(con, "dup_edges", "duplicate_edges", params)
    prefer = folder_globs(cfg.actions.prefer_folders)
    con.execute(
        "CREATE TEMP TABLE prefs AS SELECT path, "
        "len(list_filter($globs, lambda g: path GLOB g)) > 0 AS preferred FROM images",
        {"globs": prefer},
    )
    # keeper.sql's order over every file with a duplicate: the best copies become keepers first
    con.execute(
        "CREATE OR REPLACE TEMP VIEW members AS SELECT 'all' AS group_id, path, "
        "NULL::DOUBLE AS score FROM (SELECT path_a AS path FROM dup_edges "
        "UNION SELECT path_b FROM dup_edges)"
    )
    con.execute("CREATE OR REPLACE TEMP VIEW evidence AS SELECT * FROM dup_edges")
    con.execute(
        f"CREATE TEMP TABLE dup_order AS SELECT path, rank FROM ({rule_sql('keeper')})",
        params_for("keeper", params),
    )
    groups = {
        "duplicate": star_groups(
            con, "dup_edges", "dup_members", "dup", "SELECT path, rank FROM dup_order"
        )
    }
    con.execute("CREATE OR REPLACE TEMP VIEW members AS SELECT * FROM dup_members")
    con.execute("CREATE OR REPLACE TEMP VIEW evidence AS SELECT * FROM dup_edges")
    con.execute(
        f"INSERT INTO raw_findings SELECT path, 'duplicate', score, group_id, is_keeper, reason "
        f"FROM ({rule_sql('keeper')})",
        params_for("keeper", params),
    )
    groups["near_duplicate"] = _near_groups(con, params)
    con.execute("CREATE OR REPLACE TEMP VIEW members AS SELECT * FROM near_members")
    con.execute("CREATE OR REPLACE TEMP VIEW evidence AS SELECT * FROM near_pic_edges")
    con.execute(
        f"INSERT INTO raw_findings SELECT path, 'near_duplicate', score, group_id, is_keeper, "
        f"reason FROM ({rule_sql('best_shot')})",
        params_for("best_shot", params),
    )
    con.execute(
        # a file under a protected folder protects its whole photo
        "CREATE TEMP TABLE protected AS SELECT path FROM photo_files WHERE photo_id IN ("
        "SELECT photo_id FROM photo_files "
        "WHERE len(list_filter($globs, lambda g: path GLOB g)) > 0)",
        {"globs": folder_globs(cfg.actions.protected)},
    )
    # ignored: not reported for that kind (or at all)
    con.execute(
        "DELETE FROM raw_findings f USING decided d WHERE d.verdict = 'ignore' "
        "AND d.path = f.path AND (d.kind IS NULL OR d.kind = f.kind)"
    )
    copy_to_table(con, home, "findings", run_id, rule_sql("plan"), params_for("plan", params))
    con.execute(
        "CREATE OR REPLACE VIEW findings AS SELECT * FROM read_parquet("
        f"{sql_literal_path(home.table_file('findings', run_id))})"
    )
    copy_to_table(con, home, "plan", run_id, rule_sql("planned_files"))
    # clusters of similar shots
    rule_as_table(con, "cluster_edges", "cluster_edges", params)
    n_clusters = components(con, "cluster_edges", "cluster_members", "cl")
    copy_to_table(
        con,
        home,
        "clusters",
        run_id,
        """SELECT $run_id AS run_id, group_id AS cluster_id, path,
                  count(*) OVER (PARTITION BY group_id) AS size, score AS mean_similarity
           FROM cluster_members ORDER BY size DESC, cluster_id, path""",
        {"run_id": run_id},
    )
    counts = dict(
        con.execute("SELECT kind, count(DISTINCT path) FROM findings GROUP BY kind").fetchall()
    )
    n_planned = con.execute(
        "SELECT count(DISTINCT path) FROM findings WHERE action IN ('quarantine','trash','delete')"
    ).fetchall()[0][0]
    largest = con.execute(
        "SELECT coalesce(max(c), 0) FROM (SELECT count(*) c FROM cluster_members GROUP BY group_id)"
    ).fetchall()[0][0]
    con.close()
    return FindingsResult(counts, groups, n_planned, largest, n_clusters)


@task(name="findings")
def findings_task(home_root: str, run_id: str, cfg: CurateConfig) -> FindingsResult:
    """SQL rules -> findings, groups, keepers, plan (deterministic: no retries)."""
    return build_findings(Home(Path(home_root)), run_id, cfg)
