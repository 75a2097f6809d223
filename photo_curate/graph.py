"""Groups from a pair table: connected components (clusters, near duplicates) and star
groups (duplicates).

DuckDB gives the edges as arrays; scipy's sparse graph code labels the components. Only integer
arrays live in Python, never rows.

Duplicate groups are stars, not components: the copies planned for removal must each be a
duplicate of the copy that is kept. Components chain: in a collection of many similar shots
(a studio series, sky, snow), A~B~C~...~Z links files that are not copies of each other, and a
component of 20,000 real-photo files grew to 4,936 members of which 10 were direct duplicates
of its keeper. Star groups take the best copy first (keeper.sql's order over all files) and
give it every not-yet-grouped file it has a duplicate edge with; then the next best, and so on.
"""

from __future__ import annotations

import duckdb
import numpy as np
import pyarrow as pa

# part of a run's results key: a change here recomputes findings (2: near duplicates are stars)
GROUPING_VERSION = "star-2"


def _nodes(con: duckdb.DuckDBPyConnection, edges_table: str) -> int:
    con.execute(
        f"""CREATE OR REPLACE TEMP TABLE _nodes AS
            SELECT path, (row_number() OVER (ORDER BY path)) - 1 AS node
            FROM (SELECT path_a AS path FROM "{edges_table}"
                  UNION SELECT path_b FROM "{edges_table}")"""
    )
    return con.execute("SELECT count(*) FROM _nodes").fetchall()[0][0]


def _edge_arrays(con: duckdb.DuckDBPyConnection, edges_table: str) -> tuple[np.ndarray, ...]:
    arrays = con.execute(
        f"""SELECT a.node AS a, b.node AS b FROM "{edges_table}" e
            JOIN _nodes a ON a.path = e.path_a JOIN _nodes b ON b.path = e.path_b"""
    ).fetchnumpy()
    return np.asarray(arrays["a"], dtype=np.int64), np.asarray(arrays["b"], dtype=np.int64)


def _write_groups(
    con: duckdb.DuckDBPyConnection,
    edges_table: str,
    out_table: str,
    prefix: str,
    n: int,
    labels: np.ndarray,
) -> int:
    """`out_table(group_id, path, score)` for the labels of 2+ nodes (label -1: no group)."""
    con.register("_labels", pa.table({"node": np.arange(n), "label": labels}))
    con.execute(
        f"""CREATE OR REPLACE TEMP TABLE "{out_table}" AS
            WITH lab AS (
                SELECT n.path, l.label FROM _nodes n JOIN _labels l USING (node)
                WHERE l.label >= 0
                  AND l.label IN (SELECT label FROM _labels GROUP BY label HAVING count(*) > 1)
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


def _empty(con: duckdb.DuckDBPyConnection, out_table: str) -> int:
    con.execute(
        f'CREATE OR REPLACE TEMP TABLE "{out_table}" (group_id VARCHAR, path VARCHAR, score DOUBLE)'
    )
    return 0


def star_groups(
    con: duckdb.DuckDBPyConnection, edges_table: str, out_table: str, prefix: str, order_sql: str
) -> int:
    """Like components(), but each group is one keeper and files with a direct edge to it.

    `order_sql` gives (path, rank) for every node: 1 is the copy most worth keeping (keeper.sql
    over all nodes as one group). Byte-identical files are one node (a copy of a duplicate of
    the keeper is a duplicate of the keeper too). A file whose every duplicate went to a better
    keeper's group first stays out of any group: it is kept.
    """
    n = _nodes(con, edges_table)
    if n == 0:
        return _empty(con, out_table)
    from scipy.sparse import coo_matrix

    con.execute(
        """CREATE OR REPLACE TEMP TABLE _content AS
           SELECT n.node, dense_rank() OVER (ORDER BY coalesce(i.sha256, n.path)) - 1 AS c
           FROM _nodes n JOIN images i USING (path) ORDER BY n.node"""
    )
    content = np.asarray(con.execute("SELECT c FROM _content").fetchnumpy()["c"], dtype=np.int64)
    n_content = int(content.max()) + 1
    a, b = _edge_arrays(con, edges_table)
    a, b = content[a], content[b]
    keep = a != b
    adj = coo_matrix(
        (np.ones(2 * int(keep.sum()), dtype=np.int8), (np.r_[a[keep], b[keep]],
         np.r_[b[keep], a[keep]])), shape=(n_content, n_content),
    ).tocsr()  # fmt: skip
    copies = np.bincount(content, minlength=n_content)
    order = con.execute(
        f"""SELECT c.c FROM _content c JOIN _nodes n USING (node) JOIN ({order_sql}) o
            USING (path) GROUP BY c.c ORDER BY min(o.rank), min(n.path)"""
    ).fetchnumpy()["c"]
    labels = np.full(n_content, -1, dtype=np.int64)
    for c in np.asarray(order, dtype=np.int64):
        if labels[c] >= 0:
            continue
        nbrs = adj.indices[adj.indptr[c] : adj.indptr[c + 1]]
        free = nbrs[labels[nbrs] < 0]
        if len(free) or copies[c] > 1:
            labels[c] = c
            labels[free] = c
    return _write_groups(con, edges_table, out_table, prefix, n, labels[content])


def components(
    con: duckdb.DuckDBPyConnection, edges_table: str, out_table: str, prefix: str
) -> int:
    """Write `out_table(group_id, path, score)` for components of 2+ nodes; return their count.

    group_id is `<prefix>-<first 12 hex of the smallest sha256 in the group>`: stable across
    runs while that file stays, so "is this group new since last night" is a plain join.
    score is the strongest edge similarity of each member.
    """
    n = _nodes(con, edges_table)
    if n == 0:
        return _empty(con, out_table)
    from scipy.sparse import coo_matrix  # 0.2 s to import: not for a run without changes
    from scipy.sparse.csgraph import connected_components

    a, b = _edge_arrays(con, edges_table)
    graph = coo_matrix((np.ones(len(a), dtype=np.int8), (a, b)), shape=(n, n))
    _, labels = connected_components(graph, directed=False)
    return _write_groups(con, edges_table, out_table, prefix, n, labels)
