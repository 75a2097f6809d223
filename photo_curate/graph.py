"""Connected components of a pair table, for duplicate groups and clusters.

DuckDB gives the edges as arrays; scipy's sparse graph code labels the components. Only integer
arrays live in Python, never rows.
"""

from __future__ import annotations

import duckdb
import numpy as np
import pyarrow as pa


def components(
    con: duckdb.DuckDBPyConnection, edges_table: str, out_table: str, prefix: str
) -> int:
    """Write `out_table(group_id, path, score)` for components of 2+ nodes; return their count.

    group_id is `<prefix>-<first 12 hex of the smallest sha256 in the group>`: stable across
    runs while that file stays, so "is this group new since last night" is a plain join.
    score is the strongest edge similarity of each member.
    """
    con.execute(
        f"""CREATE OR REPLACE TEMP TABLE _nodes AS
            SELECT path, (row_number() OVER (ORDER BY path)) - 1 AS node
            FROM (SELECT path_a AS path FROM "{edges_table}"
                  UNION SELECT path_b FROM "{edges_table}")"""
    )
    n = con.execute("SELECT count(*) FROM _nodes").fetchall()[0][0]
    if n == 0:
        con.execute(
            f'CREATE OR REPLACE TEMP TABLE "{out_table}" '
            "(group_id VARCHAR, path VARCHAR, score DOUBLE)"
        )
        return 0
    from scipy.sparse import coo_matrix  # 0.2 s to import: not for a run without changes
    from scipy.sparse.csgraph import connected_components

    arrays = con.execute(
        f"""SELECT a.node AS a, b.node AS b FROM "{edges_table}" e
            JOIN _nodes a ON a.path = e.path_a JOIN _nodes b ON b.path = e.path_b"""
    ).fetchnumpy()
    a = np.asarray(arrays["a"], dtype=np.int64)
    b = np.asarray(arrays["b"], dtype=np.int64)
    graph = coo_matrix((np.ones(len(a), dtype=np.int8), (a, b)), shape=(n, n))
    _, labels = connected_components(graph, directed=False)
    con.register("_labels", pa.table({"node": np.arange(n), "label": labels}))
    con.execute(
        f"""CREATE OR REPLACE TEMP TABLE "{out_table}" AS
            WITH lab AS (
                SELECT n.path, l.label FROM _nodes n JOIN _labels l USING (node)
            ),
            score AS (
                SELECT path, max(similarity) AS score FROM (
                    SELECT path_a AS path, similarity FROM "{edges_table}"
                    UNION ALL SELECT path_b, similarity FROM "{edges_table}")
                GROUP BY path
            ),
            named AS (
                SELECT lab.label, '{prefix}-' || left(min(i.sha256), 12) AS group_id
                FROM lab JOIN images i USING (path) GROUP BY lab.label
            )
            SELECT named.group_id, lab.path, score.score
            FROM lab JOIN named USING (label) JOIN score USING (path)"""
    )
    con.unregister("_labels")
    return con.execute(f'SELECT count(DISTINCT group_id) FROM "{out_table}"').fetchall()[0][0]
