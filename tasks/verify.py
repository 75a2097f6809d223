"""Verify: pixel evidence for the pairs the embedding proposes.

fastdup's vectors say which images look alike; `photo_curate/compare.py` says how they differ:
the same picture (a copy), the same frame with a strong tone or blur change (a variant), the
same scene (a similar shot), or none of these. This step measures every candidate pair
(`pairs` at or above `rules.verify_similarity`, byte-identical contents excepted) from the
report thumbnails, and writes the run's `pair_checks`: the measurements and the relation that
sql/relation.sql gives them with the config's thresholds.

Measurements are a pure function of the two contents: they are cached per content pair in
HOME/cache/pairs/<key>/, so a run measures only pairs it has not seen. The candidates stream
out of DuckDB in batches and are measured in worker processes; at most a few hundred prepared
images are held per worker.
"""

from __future__ import annotations

import hashlib
import math
import multiprocessing
import os
from collections import OrderedDict
from collections.abc import Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

import duckdb
from prefect import task

from photo_curate.compare import (
    COMPARE_VERSION,
    Original,
    PairMeasures,
    Prepared,
    compare,
    prepare,
)
from photo_curate.config import CurateConfig
from photo_curate.home import Home
from photo_curate.inspect_image import (
    THUMB_VERSION,
    InspectOptions,
    display_size,
    inspect_file,
    read_gray,
    read_thumbnail,
    thumbnail_path,
)
from photo_curate.progress import StepProgress
from photo_curate.rules import params_for, rule_sql
from photo_curate.tableio import atomic_path, copy_to_table, sql_literal_path

BATCH = 256  # pairs per worker task
MIN_POOL = 400  # fewer pairs than this are measured in this process (no pool start-up)
CACHE_IMAGES = 384  # prepared images kept per process (about 100 kB each)
CACHE_ORIGINALS = 16  # originals read for the closer look kept per process (about 200 kB each)
MEASURES = [f.name for f in fields(PairMeasures)]
PAIR_KEY = hashlib.sha256(f"{COMPARE_VERSION}:{THUMB_VERSION}".encode()).hexdigest()[:12]


@dataclass(frozen=True)
class VerifyResult:
    n_candidates: int  # content pairs checked in this run
    n_measured: int  # of them measured now (the rest came from the cache)
    relations: dict[str, int]  # path pairs per relation


def pair_cache(home: Home) -> Path:
    return home.root / "cache" / "pairs" / PAIR_KEY


def _cache_source(folder: Path) -> str:
    if not folder.is_dir() or not any(folder.glob("*.parquet")):
        cols = ", ".join(f"NULL::{_sql_type(n)} AS {n}" for n in MEASURES)
        return f"(SELECT NULL::VARCHAR AS lo, NULL::VARCHAR AS hi, {cols} WHERE false)"
    return f"read_parquet({sql_literal_path(folder / '*.parquet')}, union_by_name=true)"


def _sql_type(name: str) -> str:
    return "BOOLEAN" if name == "flat" else "DOUBLE"


def _candidates(con: duckdb.DuckDBPyConnection, home: Home, run_id: str, cfg: CurateConfig) -> None:
    """Temp table `cand`: the run's candidate path pairs with their content pair (lo < hi)."""
    pairs = sql_literal_path(home.table_file("pairs", run_id))
    images = sql_literal_path(home.table_file("images", run_id))
    con.execute(
        f"""CREATE TEMP TABLE cand AS
            SELECT p.path_a, p.path_b, p.similarity, a.sha256 AS sha_a, b.sha256 AS sha_b,
                   least(a.sha256, b.sha256) AS lo, greatest(a.sha256, b.sha256) AS hi
            FROM read_parquet({pairs}) p
            JOIN read_parquet({images}) a ON a.path = p.path_a AND a.is_valid
            JOIN read_parquet({images}) b ON b.path = p.path_b AND b.is_valid
            WHERE p.similarity >= $threshold""",
        {"threshold": cfg.rules.verify_similarity},
    )


# --- measuring (worker processes) ----------------------------------------------------------

_prepared: OrderedDict[str, Prepared | None] = OrderedDict()


def _load(thumbs: str, sha: str) -> Prepared | None:
    if sha in _prepared:
        _prepared.move_to_end(sha)
        return _prepared[sha]
    rgb = read_thumbnail(thumbnail_path(thumbs, sha))
    got = prepare(rgb) if rgb is not None else None
    _prepared[sha] = got
    if len(_prepared) > CACHE_IMAGES:
        _prepared.popitem(last=False)
    return got


_read: OrderedDict[tuple[str, tuple[int, int]], Any] = OrderedDict()


def _read_cached(path: str, size: tuple[int, int]) -> Any:
    key = (path, size)
    if key in _read:
        _read.move_to_end(key)
        return _read[key]
    got = _read[key] = read_gray(path, size)
    if len(_read) > CACHE_ORIGINALS:
        _read.popitem(last=False)
    return got


def _original(path: str) -> Original | None:
    size = display_size(path)
    return Original(size, lambda s: _read_cached(path, s)) if size else None


def measure_pairs(
    thumbs: str, source: str, pairs: list[tuple[str, str, str, str]]
) -> list[dict[str, Any]]:
    """Measurements of content pairs (lo, hi, a file of lo, a file of hi) from their
    thumbnails, looked at closer from the files when they look alike (a row of NULLs when a
    thumbnail is missing or no alignment exists)."""
    import cv2

    cv2.setNumThreads(1)
    out = []
    for lo, hi, path_lo, path_hi in pairs:
        a, b = _load(thumbs, lo), _load(thumbs, hi)
        m = None
        if a is not None and b is not None:
            oa, ob = (
                _original(os.path.join(source, path_lo)),
                _original(os.path.join(source, path_hi)),
            )
            m = compare(a, b, (oa, ob) if oa and ob else None)
        row: dict[str, Any] = {"lo": lo, "hi": hi}
        row.update(m.as_row() if m else dict.fromkeys(MEASURES))
        out.append(row)
    return out


# --- the step --------------------------------------------------------------------------------


def _ensure_thumbnails(
    con: duckdb.DuckDBPyConnection, home: Home, run_id: str, source: Path
) -> None:
    """Thumbnails are written by inspect; a cleared cache is refilled from the files."""
    images = sql_literal_path(home.table_file("images", run_id))
    reader = con.sql(
        f"""SELECT DISTINCT i.sha256, first(i.path) OVER (PARTITION BY i.sha256) AS path
            FROM read_parquet({images}) i
            WHERE i.sha256 IN (SELECT lo FROM cand UNION SELECT hi FROM cand)"""
    ).to_arrow_reader(4096)
    opts = InspectOptions(thumbnail_dir=str(home.thumbnails))
    for batch in reader:
        for sha, path in zip(*(batch.column(i).to_pylist() for i in range(2)), strict=True):
            if not os.path.exists(thumbnail_path(str(home.thumbnails), sha)):
                inspect_file(str(source / path), None, opts)  # writes its thumbnail if valid


def _missing(
    con: duckdb.DuckDBPyConnection, cache: Path
) -> Iterator[list[tuple[str, str, str, str]]]:
    """The content pairs not measured yet, each with a file of either content."""
    reader = con.sql(
        f"""SELECT lo, hi, min(CASE WHEN sha_a = lo THEN path_a ELSE path_b END),
                   min(CASE WHEN sha_a = lo THEN path_b ELSE path_a END)
            FROM cand
            WHERE lo <> hi AND (lo, hi) NOT IN (SELECT (lo, hi) FROM {_cache_source(cache)})
            GROUP BY lo, hi ORDER BY lo, hi"""
    ).to_arrow_reader(BATCH)
    for batch in reader:
        yield list(zip(*(batch.column(i).to_pylist() for i in range(4)), strict=True))


_STORE_SQL = "SELECT " + ", ".join(
    f"CAST(unnest(${n}) AS {'VARCHAR' if n in ('lo', 'hi') else _sql_type(n)}) AS {n}"
    for n in ("lo", "hi", *MEASURES)
)


def _null_nan(value: Any) -> Any:
    """A measurement that was not taken (NaN) is stored as NULL."""
    return None if isinstance(value, float) and math.isnan(value) else value


def _store(rows: list[dict[str, Any]], writer: Any, con: duckdb.DuckDBPyConnection) -> None:
    """Append measured rows to the cache file (DuckDB turns them into Arrow: pyarrow's own
    conversion of Python lists imports pandas)."""
    params = {n: [_null_nan(r[n]) for r in rows] for n in ("lo", "hi", *MEASURES)}
    writer.write_table(con.sql(_STORE_SQL, params=params).to_arrow_table().cast(writer.schema))


def _measure_missing(
    con: duckdb.DuckDBPyConnection, home: Home, run_id: str, workers: int, source: Path
) -> int:
    """Measure the content pairs not in the cache; add them to it (one file per run)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    cache = pair_cache(home)
    total = con.execute(
        f"""SELECT count(*) FROM (SELECT DISTINCT lo, hi FROM cand WHERE lo <> hi
            AND (lo, hi) NOT IN (SELECT (lo, hi) FROM {_cache_source(cache)}))"""
    ).fetchall()[0][0]
    if total == 0:
        return 0
    thumbs = str(home.thumbnails)
    schema = pa.schema(
        [("lo", pa.string()), ("hi", pa.string())]
        + [(n, pa.bool_() if n == "flat" else pa.float64()) for n in MEASURES]
    )
    cache.mkdir(parents=True, exist_ok=True)
    with (
        atomic_path(cache / f"{run_id}.parquet") as tmp,
        StepProgress("verify", total, "pairs") as prog,
    ):
        writer = pq.ParquetWriter(tmp, schema, compression="zstd")
        rows_con = duckdb.connect()  # `con` streams the pairs to measure
        try:
            batches = _missing(con, cache)
            if total < MIN_POOL or workers <= 1:
                for pairs in batches:
                    _store(measure_pairs(thumbs, str(source), pairs), writer, rows_con)
                    prog.advance(len(pairs))
            else:
                _in_pool(batches, thumbs, str(source), workers, writer, rows_con, prog)
        finally:
            writer.close()
            rows_con.close()
    return int(total)


def _in_pool(
    batches: Iterator[list[tuple[str, str, str, str]]],
    thumbs: str,
    source: str,
    workers: int,
    writer: Any,
    con: duckdb.DuckDBPyConnection,
    prog: StepProgress,
) -> None:
    pool = ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn"))
    pending: set[Future[list[dict[str, Any]]]] = set()
    try:
        for pairs in batches:
            pending.add(pool.submit(measure_pairs, thumbs, source, pairs))
            if len(pending) >= 2 * workers:
                done, pending = wait(pending, return_when=FIRST_COMPLETED)
                for fut in done:
                    rows = fut.result()
                    _store(rows, writer, con)
                    prog.advance(len(rows))
        for fut in pending:
            rows = fut.result()
            _store(rows, writer, con)
            prog.advance(len(rows))
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


def verify(home: Home, run_id: str, cfg: CurateConfig, source: Path) -> VerifyResult:
    """Write the run's `pair_checks`: every candidate pair, measured and classified."""
    con = duckdb.connect()
    try:
        _candidates(con, home, run_id, cfg)
        n_cand = con.execute("SELECT count(DISTINCT (lo, hi)) FROM cand").fetchall()[0][0]
        if n_cand:
            _ensure_thumbnails(con, home, run_id, source)
        n_new = _measure_missing(con, home, run_id, cfg.workers(), source)
        images = sql_literal_path(home.table_file("images", run_id))
        con.execute(f"CREATE TEMP VIEW images AS SELECT * FROM read_parquet({images})")
        con.execute(
            f"""CREATE TEMP VIEW checks AS
                SELECT c.path_a, c.path_b, c.similarity, c.lo = c.hi AS same_bytes,
                       {", ".join(f"m.{n}" for n in MEASURES)}
                FROM cand c LEFT JOIN (
                    SELECT DISTINCT ON (lo, hi) * FROM {_cache_source(pair_cache(home))}
                ) m ON m.lo = c.lo AND m.hi = c.hi"""
        )
        params = {**cfg.rules.model_dump(), "run_id": run_id}
        copy_to_table(
            con, home, "pair_checks", run_id, rule_sql("relation"), params_for("relation", params)
        )
        counts = dict(
            con.execute(
                "SELECT relation, count(*) FROM read_parquet($p) GROUP BY relation",
                {"p": str(home.table_file("pair_checks", run_id))},
            ).fetchall()
        )
    finally:
        con.close()
    return VerifyResult(int(n_cand), n_new, counts)


@task(name="verify")
def verify_task(home_root: str, run_id: str, cfg: CurateConfig, source: str) -> VerifyResult:
    """Pixel evidence for the candidate pairs (deterministic: no retries)."""
    return verify(Home(Path(home_root)), run_id, cfg, Path(source))
