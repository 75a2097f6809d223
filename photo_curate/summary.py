"""The counts of a run, computed from its tables (true counts, unlike fastdup's summary)."""

from __future__ import annotations

from typing import Any

import duckdb

from photo_curate.config import recorded_config
from photo_curate.home import Home
from photo_curate.integrity import read_stamps, write_stamps
from photo_curate.tableio import sql_literal_path

KIND_LABELS = {
    "invalid": "invalid (corrupt, truncated, empty)",
    "unsupported": "unsupported format (review)",
    "duplicate": "duplicates",
    "near_duplicate": "near duplicates (review)",
    "dark": "dark",
    "bright": "bright / overexposed",
    "blurry": "blurry",
    "outlier": "outliers",
}


def run_view(con: duckdb.DuckDBPyConnection, home: Home, table: str, run_id: str) -> None:
    path = home.table_file(table, run_id)
    if path.exists():
        body = f"SELECT * FROM read_parquet({sql_literal_path(path)})"
    else:
        from photo_curate.schema import empty_select

        body = empty_select(table)
    con.execute(f'CREATE OR REPLACE VIEW "{table}" AS {body}')


def _act_on(home: Home, run_id: str) -> list[str]:
    """The finding kinds the run's plan acts on (its recorded config)."""
    from photo_curate.runs import read_run

    run = read_run(home, run_id) or {}
    return list(recorded_config(run).actions.act_on)


SUMMARY_TABLES = ("files", "images", "findings", "clusters", "plan", "photo_files")


def compute(home: Home, run_id: str) -> dict[str, Any]:
    """Counts per kind, groups, plan and bytes for one run; kept in its run folder while its
    tables stay the same files (every run also shows the previous run's counts)."""
    stamp = []
    for table in SUMMARY_TABLES:
        try:
            st = home.table_file(table, run_id).stat()
            stamp.append([table, st.st_ino, st.st_size, st.st_mtime_ns])
        except OSError:
            stamp.append([table, None])
    cache = home.run_dir(run_id) / "summary.json"
    kept = read_stamps(cache)
    if kept.get("stamp") == stamp and isinstance(kept.get("summary"), dict):
        return kept["summary"]
    out = _compute(home, run_id)
    if home.run_dir(run_id).is_dir():
        write_stamps(cache, {"stamp": stamp, "summary": out})
    return out


def _compute(home: Home, run_id: str) -> dict[str, Any]:
    con = duckdb.connect()
    for t in SUMMARY_TABLES:
        run_view(con, home, t, run_id)
    one = con.execute(
        """SELECT
            (SELECT count(*) FROM files WHERE entry_type = 'file') AS files,
            (SELECT count(*) FROM images) AS images,
            (SELECT count(*) FILTER (WHERE is_valid) FROM images) AS valid,
            (SELECT count(*) FROM files WHERE entry_type = 'file' AND status = 'skipped')
                AS skipped,
            (SELECT count(*) FROM files WHERE entry_type <> 'file') AS other_entries,
            (SELECT count(DISTINCT cluster_id) FROM clusters) AS clusters,
            (SELECT coalesce(max(size), 0) FROM clusters) AS largest_cluster,
            (SELECT count(DISTINCT photo_id) FROM photo_files) AS photos,
            (SELECT count(DISTINCT photo_id) FROM photo_files WHERE n_files > 1)
                AS photos_of_several_files,
            (SELECT count(*) FROM plan) AS planned_files,
            (SELECT coalesce(sum(size_bytes), 0) FROM plan) AS planned_bytes"""
    )
    out = dict(zip([d[0] for d in one.description], one.fetchall()[0], strict=True))
    act_on = _act_on(home, run_id)
    kinds = con.execute(
        """SELECT kind, count(DISTINCT path) AS files, count(DISTINCT group_id) AS groups,
                  count(DISTINCT path) FILTER (WHERE action IN ('quarantine','trash','delete')
                                               AND list_contains($act_on, kind)) AS planned
           FROM findings GROUP BY kind""",
        {"act_on": act_on},
    ).fetchall()
    out["kinds"] = {k: {"files": f, "groups": g, "planned": p} for k, f, g, p in kinds}
    out["actions"] = dict(con.sql("SELECT action, count(*) FROM plan GROUP BY action").fetchall())
    con.close()
    return out


def _delta(now: int, before: int | None) -> str:
    if before is None:
        return ""
    d = now - before
    return f"  ({d:+d})" if d else "  (=)"


def human_size(n: int | float | None) -> str:
    """Bytes as a person reads them: 512 B, 3.4 KiB, 212 MiB, 1.5 GiB."""
    if n is None:
        return "?"
    size = float(n)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(size) < 1024 or unit == "TiB":
            if unit == "B":
                return f"{int(size)} B"
            return f"{size:.1f} {unit}" if abs(size) < 100 else f"{size:.0f} {unit}"
        size /= 1024
    raise AssertionError("unreachable")


def format_summary(
    s: dict[str, Any], previous: dict[str, Any] | None = None, run_id: str | None = None
) -> str:
    """A summary a person can read (the change since the previous run in brackets)."""
    prev_kinds = (previous or {}).get("kinds", {})
    files, valid, images = s["files"], s["valid"], s["images"]
    pct = 100.0 * valid / images if images else 0.0
    lines = [
        f"files          {files:>8}{_delta(files, (previous or {}).get('files'))}",
        f"images         {images:>8}   valid {valid} ({pct:.1f} %)",
        f"skipped        {s['skipped']:>8}   (not images; other entries: {s['other_entries']})",
    ]
    if s.get("photos_of_several_files"):  # RAW + JPEG, sidecars, Live Photo movies
        lines.append(
            f"photos         {s['photos']:>8}   {s['photos_of_several_files']} of them several "
            "files (RAW + JPEG, sidecars, movies: moved together)"
        )
    for kind, label in KIND_LABELS.items():
        k = s["kinds"].get(kind, {"files": 0, "groups": 0, "planned": 0})
        before = prev_kinds.get(kind, {}).get("files") if previous else None
        extra = ""
        if kind in ("duplicate", "near_duplicate"):
            extra = f"   in {k['groups']} groups"
        if k["planned"]:
            extra += f"   {k['planned']} planned"
        lines.append(f"{label:<36} {k['files']:>6}{_delta(k['files'], before)}{extra}")
    lines.append(
        f"clusters of similar shots            {s['clusters']:>6}   largest {s['largest_cluster']}"
    )
    acts = ", ".join(f"{n} {a}" for a, n in sorted(s["actions"].items())) or "nothing"
    lines.append(f"plan: {acts} ({human_size(s['planned_bytes'])})")
    if run_id:
        lines.insert(0, f"run {run_id}")
    return "\n".join(lines)
