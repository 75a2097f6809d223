"""Grouping: duplicate groups are stars around their keeper, clusters are components.

Real DuckDB tables in memory; the edges are what a run's rules would give.
"""

from __future__ import annotations

import duckdb

from photo_curate.graph import components, star_groups


def _con(
    edges: list[tuple[str, str]], ranks: dict[str, int], same: dict[str, str] | None = None
) -> duckdb.DuckDBPyConnection:
    """`same`: files with the content of another (byte-identical copies)."""
    con = duckdb.connect()
    con.execute("CREATE TABLE images (path VARCHAR, sha256 VARCHAR)")
    hashes = [(p, f"{(same or {}).get(p, p)}-hash") for p in ranks]
    con.executemany("INSERT INTO images VALUES (?, ?)", hashes)
    con.execute("CREATE TABLE edges (path_a VARCHAR, path_b VARCHAR, similarity DOUBLE)")
    for a, b in edges:
        con.execute("INSERT INTO edges VALUES (?, ?, 0.95)", [a, b])
    con.execute("CREATE TABLE ranks (path VARCHAR, rank BIGINT)")
    con.executemany("INSERT INTO ranks VALUES (?, ?)", list(ranks.items()))
    return con


def _groups(con: duckdb.DuckDBPyConnection, table: str) -> set[frozenset[str]]:
    rows = con.execute(f"SELECT group_id, list(path) FROM {table} GROUP BY 1").fetchall()
    return {frozenset(paths) for _, paths in rows}


CHAIN = [("a", "b"), ("b", "c"), ("c", "d"), ("d", "e")]  # a~b~c~d~e, a and e unlike


def test_a_chain_is_one_component_but_several_stars() -> None:
    con = _con(CHAIN, {"a": 1, "b": 2, "c": 3, "d": 4, "e": 5})
    assert components(con, "edges", "comp", "cl") == 1
    assert _groups(con, "comp") == {frozenset("abcde")}
    assert star_groups(con, "edges", "stars", "dup", "SELECT path, rank FROM ranks") == 2
    # a keeps b (its duplicate); c is no copy of a: it keeps d; e's only duplicate d is taken
    assert _groups(con, "stars") == {frozenset("ab"), frozenset("cd")}


def test_every_star_member_has_an_edge_with_the_best_ranked_member() -> None:
    edges = [*CHAIN, ("c", "a"), ("c", "e"), ("x", "y")]
    ranks = {"a": 3, "b": 4, "c": 1, "d": 5, "e": 2, "x": 7, "y": 6}
    con = _con(edges, ranks)
    star_groups(con, "edges", "stars", "dup", "SELECT path, rank FROM ranks")
    groups = _groups(con, "stars")
    assert groups == {frozenset("abcde"), frozenset("xy")}  # c is linked with all four
    linked = {frozenset(e) for e in edges}
    for g in groups:
        keeper = min(g, key=ranks.__getitem__)
        assert all(frozenset((keeper, m)) in linked for m in g - {keeper})


def test_byte_identical_copies_join_the_group_of_their_content() -> None:
    # byte copies are linked to the first path of their content only (duplicate_edges.sql);
    # k, the best copy, is one of them; v is a visual duplicate of that content
    copies = ["c1", "c2", "c3", "k"]
    edges = [("c1", p) for p in copies[1:]] + [("c1", "v")]
    ranks = {"k": 1, "c1": 3, "c2": 4, "c3": 5, "v": 2}
    con = _con(edges, ranks, same={p: "c1" for p in copies})
    assert star_groups(con, "edges", "stars", "dup", "SELECT path, rank FROM ranks") == 1
    assert _groups(con, "stars") == {frozenset([*copies, "v"])}
    alone = _con([("c1", "c2")], {"c1": 2, "c2": 1}, same={"c2": "c1"})
    star_groups(alone, "edges", "stars", "dup", "SELECT path, rank FROM ranks")
    assert _groups(alone, "stars") == {frozenset(["c1", "c2"])}


def test_group_ids_come_from_the_smallest_hash_and_no_edges_give_no_groups() -> None:
    con = _con([("p", "q")], {"p": 2, "q": 1})
    star_groups(con, "edges", "stars", "dup", "SELECT path, rank FROM ranks")
    assert con.execute("SELECT DISTINCT group_id FROM stars").fetchall() == [("dup-p-hash",)]
    empty = _con([], {"p": 1})
    assert star_groups(empty, "edges", "stars", "dup", "SELECT path, rank FROM ranks") == 0
    assert empty.execute("SELECT count(*) FROM stars").fetchall() == [(0,)]
