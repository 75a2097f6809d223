"""What `curate run SOURCE` accepts, and how it becomes the folder a run curates.

SOURCE is a folder (curated in place), an archive (zip, tar, tar.gz, tar.bz2, tar.xz, told by
content, not by name: unpacked into HOME/sources/<name>-<hash>/) or a manifest of URLs (a text
or CSV file: downloaded into HOME/downloads/<name>-<hash>/). Everything an archive or manifest
produces is written inside HOME, and each member's or URL's outcome is a catalog row
(`archive_members`, `downloads`). `runs.source` keeps what the user named, `runs.source_dir`
the folder that was curated.
"""

from __future__ import annotations

import contextlib
import hashlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import duckdb

from photo_curate import archives, downloads
from photo_curate.config import SourcesConfig
from photo_curate.errors import UserError
from photo_curate.hashing import sha256_file
from photo_curate.home import Home
from photo_curate.preflight import Source, check_source  # noqa: F401 (told apart there)
from photo_curate.safe_paths import folder_name
from photo_curate.schema import TABLES
from photo_curate.tableio import RowWriter, copy_to_table, sql_literal_path


@dataclass(frozen=True)
class Acquired:
    """The folder the run curates, and what getting it took."""

    folder: Path
    kind: str
    counts: dict[str, int] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)  # the first few failures, for the log


def unpack_source(src: Source, home: Home, run_id: str, cfg: SourcesConfig) -> Acquired:
    """Unpack an archive into HOME/sources/ (reused when identical) and record its members."""
    assert src.archive_format
    stem = folder_name(archives.archive_stem(src.path.name))
    folder = home.root / "sources" / f"{stem}-{sha256_file(src.path)[:12]}"
    limits = archives.Limits(cfg.max_unpacked_mib * 1024**2, cfg.max_members, cfg.max_ratio)
    res = archives.unpack(src.path, src.archive_format, folder, limits)
    _record_members(home, run_id, res.members_file)
    problems = _first_skipped(res.members_file)
    counts = {"files": res.n_files, "skipped": res.n_skipped, "reused": int(res.reused)}
    return Acquired(res.folder, "archive", counts, problems)


def _record_members(home: Home, run_id: str, members_file: Path) -> None:
    cols = ", ".join(f"'{n}': '{t}'" for n, t in TABLES["archive_members"] if n != "run_id")
    con = duckdb.connect()
    try:
        src = f"read_json({sql_literal_path(members_file)}, format='newline_delimited', " \
              f"columns={{{cols}}})"  # fmt: skip
        copy_to_table(
            con, home, "archive_members", run_id,
            f"SELECT $run_id AS run_id, * FROM {src}", {"run_id": run_id},
        )  # fmt: skip
    finally:
        con.close()


def _first_skipped(members_file: Path, limit: int = 5) -> list[str]:
    con = duckdb.connect()
    try:
        rows = con.execute(
            f"SELECT member, reason FROM read_json({sql_literal_path(members_file)}, "
            "format='newline_delimited') WHERE status = 'skipped' LIMIT $n",
            {"n": limit},
        ).fetchall()
    except duckdb.Error:
        return []
    finally:
        con.close()
    return [f"{m}: {r}" for m, r in rows]


def download_source(src: Source, home: Home, run_id: str, cfg: SourcesConfig) -> Acquired:
    """Download a manifest's URLs into HOME/downloads/; all failing is a user error."""
    key = hashlib.sha256(str(src.path).encode()).hexdigest()[:8]
    name = f"{folder_name(src.path.stem)}-{key}"
    folder = home.root / "downloads" / name
    partial = home.root / "downloads" / ".partial" / name
    folder.mkdir(parents=True, exist_ok=True)
    opts = downloads.Options(
        workers=cfg.download_workers,
        timeout_s=cfg.timeout_seconds,
        retries=cfg.retries,
        backoff_s=cfg.backoff_seconds,
        attempt_s=cfg.attempt_seconds,
        max_bytes=cfg.max_download_mib * 1024**2,
    )
    counts = {"downloaded": 0, "cached": 0, "failed": 0}
    problems: list[str] = []
    entries = downloads.read_manifest(src.path)
    with RowWriter(home, "downloads", run_id) as out:
        for row in downloads.download_all(entries, folder, partial, opts):
            out.add({"run_id": run_id, **row})
            counts[row["status"]] += 1
            if row["status"] == "failed" and len(problems) < 5:
                problems.append(f"line {row['line']} {row['url']}: {row['error']}")
    total = sum(counts.values())
    if counts["failed"] == total:  # nothing came: leave no empty folder behind
        for empty in (folder, partial, partial.parent):
            with contextlib.suppress(OSError):
                empty.rmdir()
    if total == 0:
        raise UserError(f"manifest {src.path.name}: lists no URLs")
    if counts["failed"] == total:
        raise UserError(
            f"manifest {src.path.name}: none of its {total} URLs could be downloaded "
            f"({problems[0]})"
        )
    return Acquired(folder, "manifest", counts, problems)


def describe(acq: Acquired) -> str | None:
    """One line for the summary: what the archive or manifest gave."""
    c: dict[str, Any] = acq.counts
    if acq.kind == "archive":
        how = "reused the unpacked folder" if c.get("reused") else "unpacked"
        return f"archive: {how}: {c['files']} files, {c['skipped']} members skipped"
    if acq.kind == "manifest":
        return (
            f"downloads: {c['downloaded']} downloaded, {c['cached']} already there, "
            f"{c['failed']} failed"
        )
    return None
