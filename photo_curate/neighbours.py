"""Each content's nearest other contents by cosine similarity: exact, or a deterministic index.

A content's list holds its `k_store` nearest other contents (k for the pairs, the rest spare
for when contents go away), ordered by similarity, then by row (= sha256 order, see
vectors.py). How a list is made:

1. Candidates: by float32 inner product with faiss' exact search (`faiss.knn`, query blocks
   against memory-mapped blocks of all vectors) up to `exact_max` contents; beyond, from an
   HNSW index of the vectors projected on their first `hnsw_dim` principal axes (a quarter of
   the memory and of the time per distance), built single-threaded in row order (faiss'
   multi-threaded build inserts in whatever order its threads run) with fixed parameters and
   level seed, and searched with any number of threads (each query's walk is sequential).
2. `k_store + MARGIN` candidates are rescored in float64 with numpy's own loops (no BLAS, so no
   thread count or summation order enters) and rounded to PRECISION decimals; the list is the
   first `k_store` by (similarity descending, row ascending).
3. Exact search checks that no content outside the candidates could belong to the list (its
   float32 score would have to be within EPS of the list's last similarity); where one could,
   that row is scanned against every vector and all close candidates are rescored.

So the same vectors give the same lists on any run and any thread count (exactly, for exact
search; for the HNSW index, the same index and the same queries give the same candidates).
Incremental updates (enter(), tasks/neighbours.py) keep every list the exact top of its length.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import asdict, dataclass

import faiss
import numpy as np
from threadpoolctl import threadpool_limits

from photo_curate.features import DIM
from photo_curate.vectors import VectorFile

GRAPH_VERSION = 1  # bump when a list could come out different for the same vectors
PRECISION = 6  # decimals of a stored similarity
SCALE = 10**PRECISION
MARGIN = 16  # candidates beyond k_store taken by float32 score before rescoring
# |float32 inner product - exact| of two unit vectors of DIM floats is at most DIM * 2**-24
# (3.4e-5, summed in any order), plus half a unit of PRECISION for the rounding
EPS = 3.5e-5
QUERY_BLOCK = 4096
DB_BLOCK = 65536
RESCORE_CHUNK = 256
SMALL_QUERIES = 1024  # fewer queries than this are searched with numpy (see _knn)
PCA_SAMPLE = 32768  # rows the principal axes are computed from
_EMPTY = np.iinfo(np.int64).max
_ROW_MASK = (1 << 32) - 1


@dataclass(frozen=True)
class GraphSpec:
    """What decides the lists: list length, search mode and the index's parameters."""

    k: int = 10
    extra: int = 10
    exact_max: int = 50_000
    hnsw_dim: int = 128
    hnsw_m: int = 32
    hnsw_ef_construction: int = 40
    hnsw_ef_search: int = 64

    @property
    def k_store(self) -> int:
        return self.k + self.extra

    def mode(self, n: int) -> str:
        return "exact" if n <= self.exact_max else "hnsw"

    def key(self, n: int) -> dict[str, object]:
        """Stored with the lists: a later run reuses them only under the same key."""
        mode = self.mode(n)
        key: dict[str, object] = {"version": GRAPH_VERSION, "precision": PRECISION,
                                  "k_store": self.k_store, "mode": mode}  # fmt: skip
        if mode == "hnsw":
            key["hnsw"] = {k: v for k, v in asdict(self).items() if k.startswith("hnsw")}
        return key


@dataclass
class Lists:
    """The lists of `rows`: neighbour rows (-1: none) and similarities in 1/SCALE units."""

    rows: np.ndarray  # (b,) int64
    nbr: np.ndarray  # (b, k_store) int64
    sim: np.ndarray  # (b, k_store) int64

    def lengths(self) -> np.ndarray:
        return (self.nbr >= 0).sum(axis=1)


def empty_lists(width: int) -> Lists:
    none = np.empty((0, width), dtype=np.int64)
    return Lists(np.empty(0, dtype=np.int64), none, none.copy())


def threads(n: int) -> None:
    """faiss' OpenMP threads (the BLAS and numpy side is set with threadpoolctl)."""
    faiss.omp_set_num_threads(max(1, n))


# -- exact rescoring and ordering ---------------------------------------------------------------


def rescore(vf: VectorFile, q_rows: np.ndarray, cand: np.ndarray) -> np.ndarray:
    """Exact similarities (1/SCALE units) of each query row with its candidate rows."""
    out = np.zeros(cand.shape, dtype=np.int64)
    q_all = vf.take(q_rows)
    for s in range(0, len(q_rows), RESCORE_CHUNK):
        c = cand[s : s + RESCORE_CHUNK]
        vec = vf.take(np.where(c >= 0, c, 0).ravel()).reshape(*c.shape, DIM)
        # products and sums in float64 (numpy's own loop, not BLAS)
        dots = np.einsum("qd,qwd->qw", q_all[s : s + RESCORE_CHUNK], vec, dtype=np.float64)
        out[s : s + RESCORE_CHUNK] = np.rint(dots * SCALE).astype(np.int64)
    return out


def _keys(nbr: np.ndarray, sim: np.ndarray) -> np.ndarray:
    """One sortable int64 per entry: similarity descending, then row ascending."""
    key = ((SCALE - sim) << 32) | nbr
    return np.where(nbr >= 0, key, _EMPTY)


def _decode(keys: np.ndarray, width: int) -> tuple[np.ndarray, np.ndarray]:
    keys = np.sort(keys, axis=1)
    dup = np.zeros(keys.shape, dtype=bool)
    dup[:, 1:] = keys[:, 1:] == keys[:, :-1]
    keys = np.sort(np.where(dup, _EMPTY, keys), axis=1)[:, :width]
    if keys.shape[1] < width:
        pad = np.full((len(keys), width - keys.shape[1]), _EMPTY, dtype=np.int64)
        keys = np.concatenate([keys, pad], axis=1)
    empty = keys == _EMPTY
    nbr = np.where(empty, -1, keys & _ROW_MASK)
    sim = np.where(empty, 0, SCALE - (keys >> 32))
    return nbr, sim


def order(rows: np.ndarray, cand: np.ndarray, sim: np.ndarray, width: int) -> Lists:
    """Lists of `width` from candidates with exact similarities (self and repeats dropped)."""
    cand = np.where(cand == rows[:, None], -1, cand)
    nbr, s = _decode(_keys(cand, sim), width)
    return Lists(rows, nbr, s)


def finalize(vf: VectorFile, rows: np.ndarray, cand: np.ndarray, width: int) -> Lists:
    return order(rows, cand, rescore(vf, rows, cand), width)


def shortlist(rows: np.ndarray, cand: np.ndarray, scores: np.ndarray, width: int) -> np.ndarray:
    """The candidates worth rescoring: the `width` best by float32 score and those within
    2 EPS of the last of them (no other can reach the exact top `width`). -1: none."""
    scores = np.where((cand == rows[:, None]) | (cand < 0), -np.inf, scores)
    by_score = np.argsort(-scores, axis=1, kind="stable")
    scores = np.take_along_axis(scores, by_score, 1)
    cand = np.take_along_axis(cand, by_score, 1)
    if scores.shape[1] <= width:
        return np.where(np.isfinite(scores), cand, -1)
    floor = scores[:, width - 1] - 2 * EPS
    keep = np.isfinite(scores) & (scores >= floor[:, None])
    cut = max(width, int(keep.sum(axis=1).max()))
    return np.where(keep, cand, -1)[:, :cut]


def compact(cand: np.ndarray) -> np.ndarray:
    """Valid entries (>= 0) first in each row, the columns no row uses dropped."""
    cand = np.take_along_axis(cand, np.argsort(cand < 0, axis=1, kind="stable"), 1)
    used = int((cand >= 0).sum(axis=1).max()) if cand.size else 0
    return cand[:, :used]


def merge(a: Lists, b_nbr: np.ndarray, b_sim: np.ndarray, width: int) -> Lists:
    """`a`'s lists with more exact entries per row, re-ordered and cut to `width`."""
    keys = np.concatenate([_keys(a.nbr, a.sim), _keys(b_nbr, b_sim)], axis=1)
    nbr, sim = _decode(keys, width)
    return Lists(a.rows, nbr, sim)


# -- candidates --------------------------------------------------------------------------------


def _knn(xq: np.ndarray, xb: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """The k best rows of xb by inner product for each query: faiss for many queries; for a
    few (faiss then runs on one core) a BLAS product and numpy's selection."""
    k = min(k, len(xb))
    if len(xq) >= SMALL_QUERIES:
        scores, idx = faiss.knn(xq, xb, k, metric=faiss.METRIC_INNER_PRODUCT)
        return scores, idx.astype(np.int64)
    dots = xq @ xb.T
    idx = (
        np.argpartition(-dots, k - 1, axis=1)[:, :k]
        if k < len(xb)
        else np.tile(np.arange(len(xb)), (len(xq), 1))
    )
    return np.take_along_axis(dots, idx, 1), idx.astype(np.int64)


def _keep_best(scores: np.ndarray, idx: np.ndarray, width: int) -> tuple[np.ndarray, np.ndarray]:
    if scores.shape[1] <= width:
        return scores, idx
    part = np.argpartition(-scores, width - 1, axis=1)[:, :width]
    return np.take_along_axis(scores, part, 1), np.take_along_axis(idx, part, 1)


def exact_candidates(
    vf: VectorFile, xq: np.ndarray, width: int, db_rows: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """The `width` best rows by float32 score for each query, over all rows or `db_rows`."""
    best_s = np.full((len(xq), 0), -np.inf, dtype=np.float32)
    best_i = np.full((len(xq), 0), -1, dtype=np.int64)
    if db_rows is None:
        parts: Iterator[tuple[np.ndarray, np.ndarray]] = (
            (np.arange(s, s + len(xb)), xb) for s, xb in vf.blocks(DB_BLOCK)
        )
    else:
        parts = (
            (db_rows[s : s + DB_BLOCK], vf.take(db_rows[s : s + DB_BLOCK]))
            for s in range(0, len(db_rows), DB_BLOCK)
        )
    for rows, xb in parts:
        scores, idx = _knn(xq, xb, width)
        idx = np.where(idx >= 0, rows[np.maximum(idx, 0)], -1)
        best_s, best_i = _keep_best(
            np.concatenate([best_s, scores], axis=1), np.concatenate([best_i, idx], axis=1), width
        )
    return best_s, best_i


def _scan(vf: VectorFile, rows: np.ndarray, floors: np.ndarray, width: int) -> Lists:
    """The lists of `rows` from every row whose float32 score reaches the row's floor (no
    candidate set to miss one): one pass over all vectors for all of them."""
    found_q, found_c = [], []
    xq = vf.take(rows)
    for start, xb in vf.blocks(DB_BLOCK):
        for s in range(0, len(rows), SMALL_QUERIES):
            q_i, c_i = np.nonzero(
                xq[s : s + SMALL_QUERIES] @ xb.T >= floors[s : s + SMALL_QUERIES, None]
            )
            found_q.append(q_i + s)
            found_c.append(c_i + start)
    q_all, c_all = np.concatenate(found_q), np.concatenate(found_c)
    counts = np.bincount(q_all, minlength=len(rows))
    cand = np.full((len(rows), max(1, int(counts.max()))), -1, dtype=np.int64)
    by_q = np.argsort(q_all, kind="stable")
    q_sorted = q_all[by_q]
    slot = np.arange(len(q_sorted)) - np.concatenate([[0], np.cumsum(counts)[:-1]])[q_sorted]
    cand[q_sorted, slot] = c_all[by_q]
    return finalize(vf, rows, cand, width)


def settle(
    vf: VectorFile, lists: Lists, worst: np.ndarray, truncated: np.ndarray, width: int
) -> Lists:
    """Rows whose candidate set may have missed a member (its float32 cut-off `worst` is
    within EPS of the list's last similarity) are scanned against every vector."""
    full = lists.nbr[:, -1] >= 0
    last = np.where(full, lists.sim[:, -1], -SCALE) / SCALE
    doubtful = np.flatnonzero(truncated & (worst >= last - EPS))
    if len(doubtful):
        floors = np.where(full[doubtful], last[doubtful] - EPS, -np.inf).astype(np.float32)
        found = _scan(vf, lists.rows[doubtful], floors, width)
        lists.nbr[doubtful], lists.sim[doubtful] = found.nbr, found.sim
    return lists


def exact_lists(vf: VectorFile, rows: np.ndarray, width: int) -> Lists:
    """Exact lists of `rows` against every row."""
    if len(rows) == 0:
        return empty_lists(width)
    xq = vf.take(rows)
    want = width + MARGIN + 1  # +1: the row itself
    scores, cand = exact_candidates(vf, xq, want)
    lists = finalize(vf, rows, shortlist(rows, cand, scores, width), width)
    truncated = np.full(len(rows), vf.n > want)
    worst = scores.min(axis=1) if scores.shape[1] else np.full(len(rows), -np.inf)
    return settle(vf, lists, worst, truncated, width)


# -- full builds ----------------------------------------------------------------------------------


def full_build(vf: VectorFile, spec: GraphSpec) -> Iterator[Lists]:
    """Every row's list, in row order, block by block."""
    if spec.mode(vf.n) == "exact":
        yield from _exact_all(vf, spec.k_store)
        return
    index, project = hnsw_index(vf, spec)
    for s in range(0, vf.n, QUERY_BLOCK):
        rows = np.arange(s, min(s + QUERY_BLOCK, vf.n))
        dist, cand = index.search(project(vf.block(s, s + QUERY_BLOCK)), spec.k_store + MARGIN + 1)
        short = shortlist(rows, cand.astype(np.int64), -dist, spec.k_store + MARGIN // 2)
        yield finalize(vf, rows, short, spec.k_store)


class Projection:
    """The first principal axes of the vectors (PCA), computed on one thread in float64 from
    a fixed sample of rows: the same vectors give the same axes."""

    def __init__(self, vf: VectorFile, dim: int):
        rows = np.arange(0, vf.n, max(1, vf.n // PCA_SAMPLE))[:PCA_SAMPLE]
        total = np.zeros(DIM)
        outer = np.zeros((DIM, DIM))
        with threadpool_limits(limits=1):
            for s in range(0, len(rows), RESCORE_CHUNK * 16):
                x = vf.take(rows[s : s + RESCORE_CHUNK * 16]).astype(np.float64)
                total += x.sum(axis=0)
                outer += x.T @ x
            mean = total / len(rows)
            _, axes = np.linalg.eigh(outer / len(rows) - np.outer(mean, mean))
        self.mean = mean.astype(np.float32)
        self.axes = np.ascontiguousarray(axes[:, ::-1][:, :dim], dtype=np.float32)

    def __call__(self, x: np.ndarray) -> np.ndarray:
        with threadpool_limits(limits=1):
            return np.ascontiguousarray((x - self.mean) @ self.axes, dtype=np.float32)


def _exact_all(vf: VectorFile, width: int) -> Iterator[Lists]:
    """Exact lists of every row. Each pair of blocks is multiplied once (the product is
    symmetric): its rows' candidates and its columns' go to one heap per row (faiss)."""
    want = min(width + MARGIN + 1, vf.n)
    heap = faiss.ResultHeap(vf.n, want, keep_max=True)
    for i0 in range(0, vf.n, QUERY_BLOCK):
        xi = vf.block(i0, i0 + QUERY_BLOCK)
        ri = np.arange(i0, i0 + len(xi))
        for j0 in range(i0, vf.n, QUERY_BLOCK):
            xj = xi if j0 == i0 else vf.block(j0, j0 + QUERY_BLOCK)
            rj = np.arange(j0, j0 + len(xj))
            dots = xi @ xj.T
            heap.add_result_subset(ri, dots, rj)
            if j0 != i0:
                heap.add_result_subset(rj, dots.T, ri)
    heap.finalize()
    for s in range(0, vf.n, QUERY_BLOCK):
        rows = np.arange(s, min(s + QUERY_BLOCK, vf.n))
        scores, cand = heap.D[s : s + len(rows)], heap.I[s : s + len(rows)]
        lists = finalize(vf, rows, shortlist(rows, cand, scores, width), width)
        truncated = np.full(len(rows), vf.n > want)
        yield settle(vf, lists, scores.min(axis=1), truncated, width)


def hnsw_index(vf: VectorFile, spec: GraphSpec) -> tuple[faiss.IndexHNSWFlat, Projection]:
    """An HNSW index of every row's projection on its first `hnsw_dim` principal axes (L2:
    for unit vectors the order of inner products), added in row order by one thread: the
    same vectors give the same graph (its level draws come from a fixed seed)."""
    project = Projection(vf, spec.hnsw_dim)
    index = faiss.IndexHNSWFlat(spec.hnsw_dim, spec.hnsw_m)
    index.hnsw.efConstruction = spec.hnsw_ef_construction
    index.hnsw.efSearch = spec.hnsw_ef_search
    before = faiss.omp_get_max_threads()
    faiss.omp_set_num_threads(1)
    try:
        for _, xb in vf.blocks(DB_BLOCK):
            index.add(project(xb))
    finally:
        faiss.omp_set_num_threads(before)
    return index, project


# -- incremental updates --------------------------------------------------------------------------


def enter(vf: VectorFile, lists: Lists, added: np.ndarray, width: int) -> Lists:
    """Put the added rows into the lists they enter: those closer than a list's last entry.

    A list of length j is the exact top j of the old contents; an added row that beats its
    last entry makes it the exact top j + 1 (cut to `width`); one that does not leaves it
    the exact top j."""
    if len(added) == 0 or len(lists.rows) == 0:
        return lists
    xq = vf.take(lists.rows)
    scores, cand = exact_candidates(vf, xq, width + MARGIN, db_rows=added)
    n_len = lists.lengths()
    at = np.arange(len(n_len)), np.maximum(n_len - 1, 0)
    last_key = _keys(lists.nbr[at], lists.sim[at])  # EMPTY for an empty list
    floor = np.where(n_len > 0, lists.sim[at] / SCALE - EPS, -np.inf)
    passing = scores >= floor[:, None]
    hit = np.flatnonzero(passing.any(axis=1))  # only these lists can change
    if len(hit) == 0:
        return lists
    sub = Lists(lists.rows[hit], lists.nbr[hit], lists.sim[hit])
    short = compact(np.where(passing[hit], cand[hit], -1))
    exact = rescore(vf, sub.rows, short)
    beats = (short >= 0) & (_keys(short, exact) < last_key[hit][:, None])
    short = np.where(beats, short, -1)
    grown = np.minimum(n_len[hit] + beats.sum(axis=1), width)  # its length + what entered
    merged = merge(sub, short, exact, width)
    keep = np.arange(width)[None, :] < grown[:, None]
    merged.nbr = np.where(keep, merged.nbr, -1)
    merged.sim = np.where(keep, merged.sim, 0)
    # every candidate entered and the added rows held more: a closer one may have been cut
    more = (beats.sum(axis=1) == scores.shape[1]) & (len(added) > scores.shape[1])
    merged = settle(vf, merged, scores[hit].min(axis=1), more, width)
    out = Lists(lists.rows, lists.nbr.copy(), lists.sim.copy())
    out.nbr[hit], out.sim[hit] = merged.nbr, merged.sim
    return out
