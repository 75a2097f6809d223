"""Write one run's table as one Parquet file, atomically.

Files appear under their final name only when complete (write to a hidden temp name, then
os.replace), so a reader or a crashed run never sees half a file, and the catalog's globs
(`*.parquet`) never match a temp file.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import duckdb
import pyarrow.parquet as pq

from photo_curate.home import Home
from photo_curate.schema import arrow_schema, batch_select


@contextmanager
def atomic_path(final: Path) -> Iterator[Path]:
    """Yield a temp path next to `final`; move it into place only if the block succeeds."""
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = temp_name(final)
    try:
        yield tmp
        durable_replace(tmp, final)
    finally:
        if tmp.exists():
            tmp.unlink()


def durable_replace(tmp: Path, final: Path) -> None:
    """fsync the file, rename it into place, fsync the folder: after a power cut the final
    name holds either the old content or the whole new file, never an empty one."""
    fd = os.open(tmp, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, final)
    dfd = os.open(final.parent, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(dfd)
    finally:
        os.close(dfd)


def temp_name(final: Path) -> Path:
    """A hidden sibling name that the catalog's `*.parquet` globs never match."""
    return final.with_name(f".{final.name}.tmp-{os.getpid()}")


_CONVERTER: duckdb.DuckDBPyConnection | None = None


def _converter() -> duckdb.DuckDBPyConnection:
    """One in-memory database per process for RowWriter's conversions (a cursor each: they
    create nothing in it, and opening a database costs ~30 ms a writer)."""
    global _CONVERTER
    if _CONVERTER is None:
        _CONVERTER = duckdb.connect()
    return _CONVERTER


def scratch() -> duckdb.DuckDBPyConnection:
    """A connection for a query that creates nothing (reading a file): a cursor of the
    process's one in-memory database, instead of a new database per query."""
    return _converter().cursor()


class RowWriter:
    """Stream dict rows of a catalog table into its Parquet file in batches.

    DuckDB turns each batch of Python values into Arrow columns: pyarrow's own conversion
    (`Table.from_pylist`) imports pandas, 0.3 s that a run with nothing to do would pay for
    writing its one `runs` row."""

    def __init__(
        self,
        home: Home,
        table: str,
        run_id: str,
        batch_rows: int = 20_000,
        path: Path | None = None,
    ):
        self.schema = arrow_schema(table)
        self.final = path or home.table_file(table, run_id)
        self.final.parent.mkdir(parents=True, exist_ok=True)
        self._tmp = temp_name(self.final)
        self.batch_rows = batch_rows
        self._rows: list[dict[str, Any]] = []
        self._con = _converter().cursor()  # only converts batches; the file is pyarrow's
        self._select = batch_select(table)
        self._writer = pq.ParquetWriter(self._tmp, self.schema, compression="zstd")
        self.count = 0

    def add(self, row: dict[str, Any]) -> None:
        self._rows.append(row)
        if len(self._rows) >= self.batch_rows:
            self._flush()

    def extend(self, rows: Iterable[dict[str, Any]]) -> None:
        for row in rows:
            self.add(row)

    def _flush(self) -> None:
        if self._rows:
            columns = {
                f"c{i}": [r.get(name) for r in self._rows]
                for i, name in enumerate(self.schema.names)
            }
            batch = self._con.sql(self._select, params=columns).to_arrow_table()
            if batch.schema != self.schema:  # a cast imports pyarrow.compute (0.3 s)
                batch = batch.cast(self.schema)
            self._writer.write_table(batch)
            self.count += len(self._rows)
            self._rows = []

    def close(self) -> Path:
        try:
            self._flush()
        except BaseException:
            self.abort()
            raise
        self._writer.close()
        self._con.close()
        durable_replace(self._tmp, self.final)
        return self.final

    def abort(self) -> None:
        self._writer.close()
        self._con.close()
        self._tmp.unlink(missing_ok=True)

    def __enter__(self) -> RowWriter:
        return self

    def __exit__(self, exc_type: Any, *_: Any) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abort()


def copy_to_table(
    con: duckdb.DuckDBPyConnection,
    home: Home,
    table: str,
    run_id: str,
    select_sql: str,
    params: dict[str, Any] | None = None,
) -> Path:
    """Stream a DuckDB query into the run's Parquet file of `table` (no pandas in between)."""
    final = home.table_file(table, run_id)
    with atomic_path(final) as tmp:
        con.execute(
            f"COPY ({select_sql}) TO '{_sql_str(tmp)}' (FORMAT parquet, COMPRESSION zstd)",
            params or {},
        )
    return final


def _sql_str(path: Path | str) -> str:
    return str(path).replace("'", "''")


def sql_literal_path(path: Path | str) -> str:
    """A file path as a quoted SQL string literal (paths are ours, quotes are escaped)."""
    return "'" + _sql_str(path) + "'"
