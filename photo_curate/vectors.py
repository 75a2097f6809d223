"""The run's feature vectors as one memory-mapped file: one row per distinct content.

Rows are the run's contents (the sha256 of every valid image with a cached vector) in sha256
order, so a row number is a content's rank by hash: breaking ties by row breaks them by hash.
Each row is fastdup's vector L2-normalised (in float64, stored as little-endian float32), so
an inner product is the cosine similarity. Byte copies are one content and share one row.

The file is written from the feature cache (Parquet) in Arrow batches and read back in blocks
through a memory map: no step holds every vector in Python memory.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import duckdb
import numpy as np
import pyarrow as pa

from photo_curate.features import DIM, FeatureCache
from photo_curate.tableio import sql_literal_path

ROW_BYTES = DIM * 4
_BATCH = 8192


class VectorFile:
    """n rows of DIM float32 in `path`, read through one read-only memory map.

    Blocks are copied out of the map; the map's pages are the kernel's page cache (they count
    towards the process's resident memory as they are touched, at most the file's size, and
    the kernel reclaims them under pressure)."""

    def __init__(self, path: Path, n: int):
        self.path = path
        self.n = n
        if n and path.stat().st_size != n * ROW_BYTES:
            raise RuntimeError(f"{path} holds {path.stat().st_size} bytes, not {n} vectors")
        self._mm = np.memmap(path, dtype="<f4", mode="r", shape=(n, DIM)) if n else None

    def block(self, start: int, stop: int) -> np.ndarray:
        """Rows [start, stop) as a float32 array of their own."""
        stop = min(stop, self.n)
        if stop <= start or self._mm is None:
            return np.empty((0, DIM), dtype=np.float32)
        return np.array(self._mm[start:stop], dtype=np.float32)

    def take(self, rows: np.ndarray) -> np.ndarray:
        """The given rows (any order, repeats allowed) as a float32 array."""
        rows = np.asarray(rows, dtype=np.int64)
        if rows.size == 0 or self._mm is None:
            return np.empty((0, DIM), dtype=np.float32)
        return np.asarray(self._mm[rows], dtype=np.float32)

    def blocks(self, size: int) -> Iterator[tuple[int, np.ndarray]]:
        for start in range(0, self.n, size):
            yield start, self.block(start, start + size)

    def close(self) -> None:
        self._mm = None


def normalise(feats: np.ndarray) -> np.ndarray:
    """Rows scaled to unit length in float64, returned as float32 (a zero row stays zero)."""
    x = feats.astype(np.float64)
    norms = np.sqrt(np.einsum("ij,ij->i", x, x))
    norms[norms == 0] = 1.0
    return (x / norms[:, None]).astype("<f4")


def contents_sql(images_file: Path, cache: FeatureCache) -> str:
    """(row, sha256) of the run's contents: valid images whose vector is cached, by hash."""
    return f"""
        SELECT (row_number() OVER (ORDER BY sha256) - 1)::INTEGER AS row, sha256
        FROM (SELECT DISTINCT sha256 FROM read_parquet({sql_literal_path(images_file)})
              WHERE is_valid AND analysis_id IS NOT NULL AND sha256 IS NOT NULL
                AND sha256 IN (SELECT sha256 FROM {cache.source()}))"""


def write_vectors(
    con: duckdb.DuckDBPyConnection, contents_table: str, cache: FeatureCache, out: Path
) -> VectorFile:
    """Write the normalised vector of every row of `contents_table(row, sha256)` to `out`.

    A hash cached twice (two runs that both extracted it) is taken from one file only, the
    first by name, so the same cache always gives the same bytes."""
    n = con.execute(f'SELECT count(*) FROM "{contents_table}"').fetchall()[0][0]
    out.parent.mkdir(parents=True, exist_ok=True)
    with open(out, "wb") as fh:
        fh.truncate(n * ROW_BYTES)
    if n == 0:
        return VectorFile(out, 0)
    glob = sql_literal_path(cache.folder / "*.parquet")
    reader = con.sql(
        f"""WITH x AS (SELECT sha256, feature, filename
                       FROM read_parquet({glob}, filename = true)),
                 pick AS (SELECT sha256, min(filename) AS filename FROM x GROUP BY sha256)
            SELECT c.row, x.feature
            FROM x JOIN pick USING (sha256, filename) JOIN "{contents_table}" c USING (sha256)"""
    ).to_arrow_reader(_BATCH)
    written = 0
    for rb in reader:
        rows = rb.column(0).to_numpy()
        col = rb.column(1)
        if isinstance(col, pa.ChunkedArray):
            col = col.combine_chunks()
        feats = col.flatten().to_numpy(zero_copy_only=False).reshape(len(rows), DIM)
        mm = np.memmap(out, dtype="<f4", mode="r+", shape=(n, DIM))
        mm[rows] = normalise(feats)  # no msync: this process reads it back from the cache
        del mm
        written += len(rows)
    if written != n:
        raise RuntimeError(f"{written} of {n} vectors found in the feature cache")
    return VectorFile(out, n)
