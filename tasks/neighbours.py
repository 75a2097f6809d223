"""Neighbours: every content's nearest other contents, built whole or updated from the base run.

A full build searches every vector (photo_curate/neighbours.py). An update starts from the
base run's stored lists (photo_curate/graph_state.py): contents that went away leave the lists
they were in, a list left with fewer than k entries is searched again, new contents are
searched against all, and each new content enters the lists it is closer to than their last
entry. Every list stays the exact top of its length, so with exact search the pairs and
outliers equal a full build's. The same contents as the base's: its lists are taken over.
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import duckdb
import numpy as np
from prefect import task

from photo_curate import db
from photo_curate.features import FeatureCache
from photo_curate.graph_state import (
    CONTENTS,
    ListWriter,
    carry,
    prune,
    read_lists,
    read_meta,
    state_dir,
    write_meta,
)
from photo_curate.home import Home
from photo_curate.neighbours import (
    QUERY_BLOCK,
    GraphSpec,
    Lists,
    empty_lists,
    enter,
    exact_lists,
    full_build,
    order,
)
from photo_curate.progress import StepProgress
from photo_curate.tableio import sql_literal_path
from photo_curate.vectors import VectorFile, contents_sql, write_vectors


@dataclass(frozen=True)
class GraphResult:
    how: str  # "built", "updated", "taken over" or "empty"
    mode: str  # "exact" or "hnsw"
    n_contents: int
    n_added: int = 0
    n_removed: int = 0
    n_searched: int = 0  # contents searched against all (new ones and refilled lists)
    seconds: float = 0.0

    def message(self) -> str:
        if self.how == "updated":
            return (
                f"neighbours of {self.n_contents} contents updated ({self.mode}): "
                f"{self.n_added} new, {self.n_removed} gone, {self.n_searched} searched"
            )
        return f"neighbours of {self.n_contents} contents {self.how} ({self.mode})"


def build_neighbours(
    home: Home,
    run_id: str,
    cache: FeatureCache,
    spec: GraphSpec,
    source: str,
    base_run: str | None,
) -> GraphResult:
    """The run's state in HOME/cache/graph/<run_id>/ (see graph_state.py)."""
    t0 = time.monotonic()
    out = state_dir(home, run_id)
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    con = db.connect(home)
    try:
        images = home.table_file("images", run_id)
        con.execute(f"CREATE TEMP TABLE contents AS {contents_sql(images, cache)}")
        con.execute(f"COPY contents TO {sql_literal_path(out / CONTENTS)} (FORMAT parquet)")
        n = con.execute("SELECT count(*) FROM contents").fetchall()[0][0]
        key = spec.key(n)
        base = _usable_base(home, base_run, key, spec, n)
        if base is not None and _same_contents(con, base):
            assert base_run is not None
            carry(home, base_run, run_id)
            result = GraphResult("taken over", spec.mode(n), n)
        else:
            vec_path = home.run_dir(run_id) / "vectors.f32"
            try:
                vf = write_vectors(con, "contents", cache, vec_path)
                result = _full(vf, spec, out) if base is None else _update(con, vf, base, spec, out)
                vf.close()
            finally:
                vec_path.unlink(missing_ok=True)
            write_meta(out, source, n, key)
    finally:
        con.close()
    keep = {run_id} | ({base_run} if base_run else set())
    prune(home, source, keep)
    return GraphResult(**{**result.__dict__, "seconds": time.monotonic() - t0})


def _usable_base(
    home: Home, base_run: str | None, key: dict, spec: GraphSpec, n: int
) -> Path | None:
    """The base run's state when its lists were made under the same key and both collections
    are larger than a list (below that every list is the whole collection: build it)."""
    if base_run is None:
        return None
    folder = state_dir(home, base_run)
    meta = read_meta(folder)
    if meta is None or meta.get("key") != key:
        return None
    if min(int(meta.get("n", 0)), n) <= spec.k_store + 1:
        return None
    return folder


def _same_contents(con: duckdb.DuckDBPyConnection, base: Path) -> bool:
    old = f"read_parquet({sql_literal_path(base / CONTENTS)})"
    diff = con.execute(
        f"""SELECT count(*) FROM (
              (SELECT row, sha256 FROM contents EXCEPT SELECT row, sha256 FROM {old})
              UNION ALL (SELECT row, sha256 FROM {old} EXCEPT SELECT row, sha256 FROM contents))"""
    ).fetchall()[0][0]
    return diff == 0


def _full(vf: VectorFile, spec: GraphSpec, out: Path) -> GraphResult:
    writer = ListWriter(out)
    try:
        with StepProgress(f"neighbours ({spec.mode(vf.n)})", vf.n, "images") as prog:
            for lists in full_build(vf, spec):
                writer.write(lists)
                prog.advance(len(lists.rows))
    except BaseException:
        writer.abort()
        raise
    writer.close()
    return GraphResult("built" if vf.n else "empty", spec.mode(vf.n), vf.n, n_searched=vf.n)


def _update(
    con: duckdb.DuckDBPyConnection, vf: VectorFile, base: Path, spec: GraphSpec, out: Path
) -> GraphResult:
    old = f"read_parquet({sql_literal_path(base / CONTENTS)})"
    to_new = np.asarray(
        con.execute(
            f"SELECT coalesce(n.row, -1) AS r FROM {old} o LEFT JOIN contents n USING (sha256) "
            "ORDER BY o.row"
        ).fetchnumpy()["r"],
        dtype=np.int64,
    )
    added = np.asarray(
        con.execute(
            f"SELECT row FROM contents WHERE sha256 NOT IN (SELECT sha256 FROM {old}) ORDER BY row"
        ).fetchnumpy()["row"],
        dtype=np.int64,
    )
    width = spec.k_store
    refill = np.concatenate(
        [lists.rows[lists.lengths() < spec.k] for lists in _survivors(base, to_new, width)]
        or [np.empty(0, dtype=np.int64)]
    )
    searched = np.union1d(added, refill)
    n_removed = int((to_new < 0).sum())
    if len(searched) > vf.n // 2:  # most lists change: a full build is cheaper
        full = _full(vf, spec, out)
        return GraphResult("built", full.mode, vf.n, len(added), n_removed, vf.n)
    writer = ListWriter(out)
    try:
        with StepProgress("neighbours (update)", vf.n, "images") as prog:
            kept = _Buffer(_survivors(base, to_new, width), refill, width)
            for start in range(0, vf.n, QUERY_BLOCK):
                stop = min(start + QUERY_BLOCK, vf.n)
                mine = searched[(searched >= start) & (searched < stop)]
                fresh = exact_lists(vf, mine, width)
                moved = enter(vf, kept.take_below(stop), added, width)
                writer.write(_by_row(fresh, moved))
                prog.advance(stop - start)
    except BaseException:
        writer.abort()
        raise
    writer.close()
    return GraphResult("updated", spec.mode(vf.n), vf.n, len(added), n_removed, len(searched))


def _survivors(base: Path, to_new: np.ndarray, width: int) -> Iterator[Lists]:
    """The base's lists of contents that stay, renumbered, without the contents that left."""
    for lists in read_lists(base, width):
        rows = to_new[lists.rows]
        stay = rows >= 0
        nbr = np.where(lists.nbr >= 0, to_new[np.maximum(lists.nbr, 0)], -1)[stay]
        yield order(rows[stay], nbr, lists.sim[stay], width)


class _Buffer:
    """Surviving lists in row order, handed out block by block (refilled rows skipped)."""

    def __init__(self, source: Iterator[Lists], skip: np.ndarray, width: int):
        self._source = source
        self._skip = skip
        self._width = width
        self._held: list[Lists] = []

    def take_below(self, stop: int) -> Lists:
        parts: list[Lists] = []
        while True:
            if not self._held:
                nxt = next(self._source, None)
                if nxt is None:
                    break
                self._held.append(nxt)
            head = self._held[0]
            cut = int(np.searchsorted(head.rows, stop))
            parts.append(Lists(head.rows[:cut], head.nbr[:cut], head.sim[:cut]))
            if cut < len(head.rows):
                self._held[0] = Lists(head.rows[cut:], head.nbr[cut:], head.sim[cut:])
                break
            self._held.pop(0)
        out = _concat(parts, self._width)
        keep = ~np.isin(out.rows, self._skip)
        return Lists(out.rows[keep], out.nbr[keep], out.sim[keep])


def _concat(parts: list[Lists], width: int) -> Lists:
    if not parts:
        return empty_lists(width)
    return Lists(
        np.concatenate([p.rows for p in parts]),
        np.concatenate([p.nbr for p in parts]),
        np.concatenate([p.sim for p in parts]),
    )


def _by_row(a: Lists, b: Lists) -> Lists:
    out = _concat([x for x in (a, b) if len(x.rows)], a.nbr.shape[1])
    if not len(out.rows):
        return out
    idx = np.argsort(out.rows, kind="stable")
    return Lists(out.rows[idx], out.nbr[idx], out.sim[idx])


@task(name="neighbours")
def neighbours_task(
    home_root: str, run_id: str, cache_dir: str, spec: GraphSpec, source: str,
    base_run: str | None,
) -> GraphResult:  # fmt: skip
    """The neighbour lists of the run (deterministic: no retries)."""
    home = Home(Path(home_root))
    return build_neighbours(home, run_id, FeatureCache(Path(cache_dir)), spec, source, base_run)
