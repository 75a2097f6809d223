"""`HOME/catalog.duckdb`: views over the Parquet tables, swapped in atomically.

DuckDB locks a database file: a user's open read-only shell would block a writer that opens
the catalog in place. So no process ever writes the catalog in place: the data lives in
immutable Parquet files, and after each change a new small catalog file of views is built next
to the old one and moved over it with os.replace. A shell that has the old file open keeps
working (and its glob views see the new Parquet files too). The file is written with storage
compatibility v1.5.0 so the pip `duckdb-cli` (1.5) opens it.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import duckdb

from photo_curate.errors import UserError
from photo_curate.home import Home
from photo_curate.integrity import files_expr, read_stamps, sweep, write_stamps
from photo_curate.rules import SQL_DIR
from photo_curate.schema import TABLES, cast_select, empty_select
from photo_curate.tableio import temp_name

STORAGE_COMPATIBILITY = "v1.5.0"
BUILT_FROM = ".catalog-built-from.json"  # in HOME/data: what the catalog file was built from

# Views on top of the tables: questions people ask of the run history.
DERIVED_VIEWS: dict[str, str] = {
    "latest_run": """
        SELECT * FROM runs ORDER BY started_at DESC LIMIT 1""",
    "finding_counts": """
        SELECT run_id, kind, count(*) AS n_files, count(DISTINCT group_id) AS n_groups,
               count(*) FILTER (WHERE action IN ('quarantine', 'trash', 'delete')) AS n_planned
        FROM findings GROUP BY run_id, kind""",
}
LATEST_RUNS = """
        SELECT * FROM runs WHERE status = 'completed'
        QUALIFY row_number() OVER (PARTITION BY source ORDER BY started_at DESC, run_id DESC) = 1"""


def latest_views() -> list[str]:
    """`latest_runs`: the latest completed run of each SOURCE; `latest_<table>`: the rows of
    those runs in every per-run table (what "the duplicates now" means after many runs)."""
    out = [f"CREATE VIEW latest_runs AS {LATEST_RUNS}"]
    for table, columns in TABLES.items():
        if table != "runs" and any(name == "run_id" for name, _ in columns):
            out.append(
                f'CREATE VIEW "latest_{table}" AS SELECT * FROM "{table}" '
                "WHERE run_id IN (SELECT run_id FROM latest_runs)"
            )
    return out


# "What changed since the last run" views, in dependency order (sql/views/<name>.sql).
CHANGE_VIEWS = ("run_sequence", "finding_changes", "file_changes", "new_findings")


def _source_for(home: Home, table: str) -> str | None:
    """The read expression over a table's files, or None when it has none yet."""
    folder = home.table_dir(table)
    if table == "actions":
        pattern = files_expr(folder, ".jsonl")
        if pattern is None:
            return None
        cols = ", ".join(f"'{name}': '{typ}'" for name, typ in TABLES[table])
        return (
            f"read_json({pattern}, format='newline_delimited', columns={{{cols}}}, "
            "ignore_errors=true)"
        )
    pattern = files_expr(folder, ".parquet")
    if pattern is None:
        return None
    return f"read_parquet({pattern}, union_by_name=true)"


def statements(home: Home) -> list[str]:
    """The catalog's CREATE VIEW statements, as they would be built now."""
    out = []
    for table in TABLES:
        src = _source_for(home, table)
        body = cast_select(table, src) if src else empty_select(table)
        out.append(f'CREATE VIEW "{table}" AS {body}')
    for name, body in DERIVED_VIEWS.items():
        out.append(f'CREATE VIEW "{name}" AS {body}')
    out += latest_views()
    for name in CHANGE_VIEWS:
        body = (SQL_DIR / "views" / f"{name}.sql").read_text(encoding="utf-8")
        out.append(f'CREATE VIEW "{name}" AS {body}')
    return out


def rebuild(home: Home) -> Path:
    """Write a fresh catalog of views and move it over the old one (after moving aside any
    unreadable Parquet file, which would break its table's view).

    Skipped when the catalog on disk was built from the same statements: views over a folder's
    glob see new Parquet files without a rebuild, so most runs change no view at all (a
    rebuild binds every view, reading Parquet footers, and syncs a new file to disk)."""
    sweep(home)
    todo = statements(home)
    stamp = _stamp(todo)
    if _built_from(home) == stamp:
        return home.catalog
    final = home.catalog
    tmp = temp_name(final)
    tmp.unlink(missing_ok=True)
    con = duckdb.connect(str(tmp), config={"storage_compatibility_version": STORAGE_COMPATIBILITY})
    try:
        for statement in todo:
            con.execute(statement)
        con.execute("CHECKPOINT")
    finally:
        con.close()
    wal = tmp.with_name(tmp.name + ".wal")
    wal.unlink(missing_ok=True)
    os.replace(tmp, final)
    _record_built_from(home, stamp)
    return final


def _stamp(todo: list[str]) -> str:
    text = "\n".join([STORAGE_COMPATIBILITY, duckdb.__version__, *todo])
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def _built_from(home: Home) -> str | None:
    """The statements' stamp of the catalog on disk, if it is still the file that was built."""
    recorded = read_stamps(home.data / BUILT_FROM)
    try:
        st = home.catalog.stat()
    except OSError:
        return None
    if (recorded.get("size"), recorded.get("mtime_ns")) != (st.st_size, st.st_mtime_ns):
        return None  # replaced or touched by someone else: build it again
    return recorded.get("stamp")


def _record_built_from(home: Home, stamp: str) -> None:
    st = home.catalog.stat()
    write_stamps(
        home.data / BUILT_FROM, {"stamp": stamp, "size": st.st_size, "mtime_ns": st.st_mtime_ns}
    )


def connect_readonly(home: Home) -> duckdb.DuckDBPyConnection:
    """A read-only connection to the catalog (what `curate sql` and reports use)."""
    if not home.catalog.exists():
        raise UserError(f"no catalog at {home.catalog}: run `curate run SOURCE` first")
    try:
        return duckdb.connect(str(home.catalog), read_only=True)
    except duckdb.Error as exc:
        raise UserError(f"cannot open {home.catalog}: {str(exc).splitlines()[0]}") from None
