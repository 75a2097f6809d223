"""Inspect: hash, fully decode and measure every image, in worker processes.

Reads the run's `files` manifest in batches and writes the `images` table (one row per image
candidate, valid or not, with the reason). Valid images also get their analysis copy, which is
what fastdup reads. A decoder that crashes a worker costs that one file, not the run: the
chunk is retried file by file in a fresh pool and the culprit is recorded as invalid. A
decoder that hangs is handled the same way (no chunk finished for STALL_S seconds: the
workers are killed), and a file that alone takes FILE_TIMEOUT_S is invalid.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import signal
from collections.abc import Callable, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import duckdb
from prefect import task

from photo_curate.features import FeatureCache, analysis_name
from photo_curate.home import Home
from photo_curate.incremental import Base, reused_rows_sql
from photo_curate.inspect_image import InspectOptions, inspect_many
from photo_curate.progress import StepProgress
from photo_curate.schema import TABLES, cast_select
from photo_curate.tableio import RowWriter, atomic_path, copy_to_table, sql_literal_path

CHUNK = 32
STALL_S = 600  # no chunk finished for this long: a decoder hangs
FILE_TIMEOUT_S = 120
Item = tuple[int, str, str | None]
# valid, invalid (damaged: an unsupported format is neither), all
_COUNTS = (
    "count(*) FILTER (WHERE is_valid), "
    "count(*) FILTER (WHERE NOT is_valid AND NOT coalesce(unsupported, false)), count(*)"
)


@dataclass(frozen=True)
class InspectResult:
    n_images: int
    n_valid: int
    n_invalid: int
    analysis_dir: str
    n_inspected: int = 0  # read and decoded in this run (the rest reused from the base run)


@dataclass(frozen=True)
class Reuse:
    """Where reusable rows come from: the base run and the feature cache they depend on."""

    base: Base
    cache: FeatureCache


def _plan(con: duckdb.DuckDBPyConnection, home: Home, run_id: str, reuse: Reuse | None) -> None:
    """Table `cand`: the run's image candidates, each with its analysis id (its rank in path
    order, as in a full run) and, when a base run is given, the reusable row of that run."""
    if reuse is not None:
        body = reused_rows_sql(home, reuse.base, run_id, reuse.cache)
    else:
        files = sql_literal_path(home.table_file("files", run_id))
        body = (
            "SELECT path AS cand_path, size_bytes AS cand_size, mtime AS cand_mtime, "
            "mtime_ns AS cand_mtime_ns, row_number() OVER (ORDER BY path) - 1 AS new_analysis_id, "
            f"false AS reuse FROM read_parquet({files}) WHERE status = 'image'"
        )
    con.execute(f"CREATE TEMP TABLE cand AS {body}")


def _candidates(
    con: duckdb.DuckDBPyConnection, batch: int = 4096
) -> Iterator[list[dict[str, Any]]]:
    """The candidates to inspect (not reused), streamed in batches."""
    reader = con.sql(
        "SELECT cand_path AS path, cand_size AS size_bytes, cand_mtime AS mtime, "
        "cand_mtime_ns AS mtime_ns, new_analysis_id AS ident FROM cand "
        "WHERE NOT reuse ORDER BY cand_path"
    ).to_arrow_reader(batch)
    for rb in reader:
        yield rb.to_pylist()


def _reused_select() -> str:
    """The reused rows as `images` rows of this run (new run id, manifest facts, analysis id)."""
    override = {
        "run_id": "$run_id",
        "path": "cand_path",
        "size_bytes": "cand_size",
        "mtime": "cand_mtime",
        "mtime_ns": "cand_mtime_ns",
        "analysis_id": "CASE WHEN is_valid THEN new_analysis_id END",
    }
    cols = ", ".join(
        f'{override.get(n, f"{chr(34)}{n}{chr(34)}")} AS "{n}"' for n, _ in TABLES["images"]
    )
    return f"SELECT {cols} FROM cand WHERE reuse"


def _quiet_worker(log_path: str) -> None:
    """Decoders (libjpeg, libtiff) print warnings on stderr: keep them in the run's log.

    A terminal's Ctrl-C reaches the whole process group: the workers leave it to the parent,
    which kills them (no traceback from each worker, no chunk finished for nothing)."""
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, signal.SIG_IGN)
    fd = os.open(log_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    os.dup2(fd, 2)
    os.close(fd)


def _pool(workers: int, log_path: str) -> ProcessPoolExecutor:
    return ProcessPoolExecutor(
        workers,
        mp_context=multiprocessing.get_context("spawn"),
        initializer=_quiet_worker,
        initargs=(log_path,),
    )


def _kill_workers(pool: ProcessPoolExecutor) -> None:
    """SIGKILL a pool's processes (a hung decoder ignores everything else)."""
    for proc in list(getattr(pool, "_processes", {}).values()):
        with contextlib.suppress(Exception):
            proc.kill()
    pool.shutdown(wait=False, cancel_futures=True)


def _run_isolated(
    items: list[Item], opts: InspectOptions, log_path: str
) -> list[tuple[int, dict[str, Any]]]:
    """Inspect items one per fresh pool, so a decoder that crashes or hangs names its file."""
    out = []
    for item in items:
        pool = _pool(1, log_path)
        try:
            out.extend(pool.submit(inspect_many, [item], opts).result(timeout=FILE_TIMEOUT_S))
        except BrokenProcessPool:
            out.append(
                (
                    item[0],
                    {
                        "is_valid": False,
                        "unsupported": False,
                        "error": "decoder crashed on this file",
                    },
                )
            )
        except TimeoutError:
            error = f"decoder hung: no result after {FILE_TIMEOUT_S} s"
            out.append((item[0], {"is_valid": False, "unsupported": False, "error": error}))
        finally:
            _kill_workers(pool)
    return out


def inspect_all(
    source: Path,
    home: Home,
    run_id: str,
    workers: int,
    opts: InspectOptions,
    reuse: Reuse | None = None,
) -> InspectResult:
    """Write the run's `images`: rows reused from the base run, the other files inspected."""
    con = duckdb.connect()
    try:
        _plan(con, home, run_id, reuse)
        n_reused, total = con.execute(
            "SELECT count(*) FILTER (WHERE reuse), count(*) FILTER (WHERE NOT reuse) FROM cand"
        ).fetchall()[0]
        final = home.table_file("images", run_id)
        inspected = home.run_dir(run_id) / "inspected.parquet" if n_reused else final
        res = _inspect(con, source, home, run_id, workers, opts, total, inspected)
        if n_reused:
            new = f"SELECT * FROM read_parquet({sql_literal_path(inspected)})"
            body = cast_select("images", f"({_reused_select()} UNION ALL {new})")
            copy_to_table(con, home, "images", run_id, body, {"run_id": run_id})
            inspected.unlink()
        n_valid, n_bad, n_all = con.execute(
            f"SELECT {_COUNTS} FROM read_parquet({sql_literal_path(final)})"
        ).fetchall()[0]
    finally:
        con.close()
    return InspectResult(n_all, n_valid, n_bad, res.analysis_dir, res.n_inspected)


def _inspect(
    con: duckdb.DuckDBPyConnection,
    source: Path,
    home: Home,
    run_id: str,
    workers: int,
    opts: InspectOptions,
    total: int,
    out_path: Path,
) -> InspectResult:
    analysis_dir = home.run_dir(run_id) / "analysis"
    analysis_dir.mkdir(parents=True, exist_ok=True)
    log_path = str(home.run_dir(run_id) / "decoder-warnings.log")
    meta: dict[int, dict[str, Any]] = {}
    n_valid = n_invalid = n_done = 0

    def chunks() -> Iterator[list[Item]]:
        for batch in _candidates(con):
            for i in range(0, len(batch), CHUNK):
                items: list[Item] = []
                for rec in batch[i : i + CHUNK]:
                    ident = rec.pop("ident")
                    meta[ident] = rec
                    abs_path = str(source / rec["path"])
                    items.append((ident, abs_path, analysis_name(analysis_dir, ident)))
                yield items

    if total == 0:
        RowWriter(home, "images", run_id, path=out_path).close()
        return InspectResult(0, 0, 0, str(analysis_dir), 0)
    workers = max(1, min(workers, -(-total // CHUNK)))  # a few new files: fewer processes to start
    with (
        RowWriter(home, "images", run_id, path=out_path) as out,
        StepProgress("inspect", total, "images") as prog,
    ):

        def emit(results: list[tuple[int, dict[str, Any]]]) -> None:
            nonlocal n_valid, n_invalid, n_done
            for ident, res in results:
                rec = meta.pop(ident)
                row = {
                    "run_id": run_id,
                    "path": rec["path"],
                    "size_bytes": rec["size_bytes"],
                    "mtime": rec["mtime"],
                    "mtime_ns": rec["mtime_ns"],
                    "analysis_id": ident if res.get("is_valid") else None,
                    **{k: v for k, v in res.items() if k != "analysis_file"},
                }
                out.add(row)
                if res.get("is_valid"):
                    n_valid += 1
                elif not res.get("unsupported"):
                    n_invalid += 1
                n_done += 1
            prog.advance(len(results))

        pool = _pool(workers, log_path)
        pending: dict[Future[Any], list[Item]] = {}
        source_iter = chunks()
        exhausted = False
        try:
            while True:
                while not exhausted and len(pending) < workers * 4:
                    try:
                        items = next(source_iter)
                    except StopIteration:
                        exhausted = True
                        break
                    pending[pool.submit(inspect_many, items, opts)] = items
                if not pending:
                    break
                done, _ = wait(pending, timeout=STALL_S, return_when=FIRST_COMPLETED)
                broken: list[Item] = []
                for fut in done:
                    items = pending.pop(fut)
                    try:
                        emit(fut.result())
                    except BrokenProcessPool:
                        broken.extend(items)
                if broken or not done:
                    # hung (nothing finished in time) or dead: every chunk still in flight is
                    # redone file by file, with timeouts, and the pool replaced
                    for items in pending.values():
                        broken.extend(items)
                    pending.clear()
                    _kill_workers(pool)
                    emit(_run_isolated(broken, opts, log_path))
                    pool = _pool(workers, log_path)
        except BaseException:  # interrupted or failed: the chunks in flight are of no use
            _kill_workers(pool)
            raise
        finally:
            pool.shutdown(wait=True, cancel_futures=True)
    return InspectResult(n_done, n_valid, n_invalid, str(analysis_dir), n_done)


# --- shards: the same inspection split into independent slices (engine: dask) ----------------


@dataclass(frozen=True)
class InspectShard:
    """A slice of the run's candidates to inspect: analysis ids lo..hi (inclusive)."""

    index: int
    lo: int
    hi: int
    n: int


def candidates_file(home: Home, run_id: str) -> Path:
    return home.run_dir(run_id) / "candidates.parquet"


def shard_part(home: Home, run_id: str, index: int) -> Path:
    return home.run_dir(run_id) / "shards" / f"images-{index:05d}.parquet"


def plan_shards(
    home: Home, run_id: str, reuse: Reuse | None, shard_size: Callable[[int], int]
) -> list[InspectShard]:
    """Write the run's candidates (as `inspect_all` plans them) to a Parquet file that every
    shard reads, and cut the ones to inspect into ranges of `shard_size(n)` by analysis id
    (path order), so each shard's output is a disjoint, stable slice of a full run's."""
    con = duckdb.connect()
    try:
        _plan(con, home, run_id, reuse)
        out = candidates_file(home, run_id)
        with atomic_path(out) as tmp:
            con.execute(f"COPY cand TO {sql_literal_path(tmp)} (FORMAT parquet)")
        total = con.execute("SELECT count(*) FROM cand WHERE NOT reuse").fetchall()[0][0]
        rows = con.execute(
            """SELECT shard, min(new_analysis_id), max(new_analysis_id), count(*) FROM (
                 SELECT new_analysis_id,
                        (row_number() OVER (ORDER BY new_analysis_id) - 1) // $n AS shard
                 FROM cand WHERE NOT reuse)
               GROUP BY shard ORDER BY shard""",
            {"n": shard_size(int(total))},
        ).fetchall()
    finally:
        con.close()
    return [InspectShard(int(i), int(lo), int(hi), int(n)) for i, lo, hi, n in rows]


def inspect_shard(
    source: Path, home: Home, run_id: str, shard: InspectShard, workers: int, opts: InspectOptions
) -> int:
    """Inspect one shard into its own Parquet part (same rows as a full run's for those
    files); the analysis copies go to the run's shared analysis folder. Returns rows written."""
    con = duckdb.connect()
    try:
        con.execute(
            "CREATE TEMP TABLE cand AS SELECT * FROM read_parquet($f) "
            "WHERE new_analysis_id BETWEEN $lo AND $hi",
            {"f": str(candidates_file(home, run_id)), "lo": shard.lo, "hi": shard.hi},
        )
        part = shard_part(home, run_id, shard.index)
        part.parent.mkdir(parents=True, exist_ok=True)
        res = _inspect(con, source, home, run_id, workers, opts, shard.n, part)
    finally:
        con.close()
    return res.n_images


def merge_shards(home: Home, run_id: str, n_shards: int) -> InspectResult:
    """The run's `images` table: the reused rows plus every shard's part, in one DuckDB COPY."""
    con = duckdb.connect()
    try:
        cand = sql_literal_path(candidates_file(home, run_id))
        con.execute(f"CREATE TEMP VIEW cand AS SELECT * FROM read_parquet({cand})")
        n_reused, n_new = con.execute(
            "SELECT count(*) FILTER (WHERE reuse), count(*) FILTER (WHERE NOT reuse) FROM cand"
        ).fetchall()[0]
        parts = [shard_part(home, run_id, i) for i in range(n_shards)]
        missing = [p for p in parts if not p.exists()]
        if missing:
            raise RuntimeError(f"inspect shard part {missing[0]} is missing")
        selects = [_reused_select()] if n_reused else []
        if parts:
            files = ", ".join(sql_literal_path(p) for p in parts)
            selects.append(f"SELECT * FROM read_parquet([{files}])")
        if selects:
            body = cast_select("images", f"({' UNION ALL '.join(selects)})")
            params = {"run_id": run_id} if n_reused else None  # only the reused rows use it
            copy_to_table(con, home, "images", run_id, body, params)
        else:
            RowWriter(home, "images", run_id).close()
        final = sql_literal_path(home.table_file("images", run_id))
        n_valid, n_bad, n_all = con.execute(
            f"SELECT {_COUNTS} FROM read_parquet({final})"
        ).fetchall()[0]
    finally:
        con.close()
    for part in parts:  # their rows are in the images table now
        part.unlink()
    candidates_file(home, run_id).unlink()
    analysis_dir = home.run_dir(run_id) / "analysis"
    analysis_dir.mkdir(parents=True, exist_ok=True)
    return InspectResult(n_all, n_valid, n_bad, str(analysis_dir), int(n_new))


@task(name="inspect")
def inspect_task(
    source: str,
    home_root: str,
    run_id: str,
    workers: int,
    opts: InspectOptions,
    reuse: Reuse | None = None,
) -> InspectResult:
    """Decode check of every new or changed image (no retries: a retry would re-read them)."""
    return inspect_all(Path(source), Home(Path(home_root)), run_id, workers, opts, reuse)
