"""Keep the catalog readable after a crash: broken Parquet files are moved aside.

Our own writes are atomic (temp name, then os.replace), but a power cut, a full disk on a
file system that lies about fsync, or a user's stray copy can still leave a truncated
`HOME/data/<table>/<run>.parquet`. One such file would break every view over its table (the
views read all files of a table), so before the catalog is rebuilt and before a run reads the
history, every table file's footer is read; a file that does not parse is moved to
`HOME/data/.corrupt/<table>/` (kept, never deleted: someone may want to look at it) with a
warning. Temp files left by a killed writer (`.<name>.tmp-<pid>`, never matched by the views)
are removed once their process is gone.

A footer once read is not read again while the file keeps its size and mtime (they are
recorded in `HOME/data/.verified.json`): table files are written once and replaced whole, so a
sweep costs a stat per file, not a footer read, and a year of nightly runs stays cheap.
"""

from __future__ import annotations

import json
import logging
import os
import re
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq

from photo_curate.home import Home

log = logging.getLogger("photo_curate")
CORRUPT_DIR = ".corrupt"
_TEMP = re.compile(r"^\..+\.tmp-(\d+)$")


def parquet_ok(path: Path) -> bool:
    """True when the file has a readable Parquet footer and schema."""
    try:
        meta = pq.read_metadata(path)
        meta.schema.to_arrow_schema()
    except Exception:
        return False
    return True


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _aside(home: Home, table: str, path: Path) -> Path:
    """A free name under HOME/data/.corrupt/<table>/ (never overwrites an earlier one)."""
    folder = home.data / CORRUPT_DIR / table
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / path.name
    n = 1
    while target.exists():
        target = folder / f"{path.name}.{n}"
        n += 1
    return target


VERIFIED = ".verified.json"


def read_stamps(path: Path) -> dict[str, Any]:
    """A small JSON object kept in HOME as a cache; empty when missing or damaged."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def write_stamps(path: Path, data: dict[str, Any]) -> None:
    """Replace such a cache file atomically; a failed write only loses the cache."""
    tmp = path.with_name(f"{path.name}.tmp-{os.getpid()}")
    try:
        tmp.write_text(json.dumps(data, sort_keys=True), encoding="utf-8")
        os.replace(tmp, path)
    except OSError:
        tmp.unlink(missing_ok=True)


def sweep(home: Home) -> list[Path]:
    """Move unreadable Parquet files aside and drop dead writers' temp files.

    Returns where the broken files went. Call with the home lock held, or where a
    concurrent writer's temp file is harmless to skip (a live pid's temp file is kept).
    """
    moved: list[Path] = []
    if not home.data.is_dir():
        return moved
    verified = read_stamps(home.data / VERIFIED)  # missing: every footer is read again
    seen: dict[str, list[int]] = {}
    for table_dir in sorted(p for p in home.data.iterdir() if p.is_dir()):
        if table_dir.name.startswith("."):
            continue
        for path in sorted(table_dir.iterdir()):
            m = _TEMP.match(path.name)
            if m:
                if not _pid_alive(int(m.group(1))):
                    path.unlink(missing_ok=True)
                continue
            if path.suffix != ".parquet" or path.name.startswith("."):
                continue
            key = f"{table_dir.name}/{path.name}"
            try:
                st = path.stat()
            except FileNotFoundError:
                continue
            stamp = [st.st_size, st.st_mtime_ns]
            if verified.get(key) == stamp or parquet_ok(path):
                seen[key] = stamp
                continue
            target = _aside(home, table_dir.name, path)
            try:
                os.replace(path, target)
            except FileNotFoundError:
                continue  # someone else moved it
            log.warning("unreadable Parquet file %s moved to %s", path, target)
            moved.append(target)
    if seen != verified:
        write_stamps(home.data / VERIFIED, seen)
    return moved


_GLOB_CHARS = set("*?[]{}\\")


def files_expr(folder: Path, suffix: str) -> str | None:
    """SQL for the list of a folder's `*<suffix>` files: a glob when the folder's own path has
    no glob characters (new files then show up in views without a rebuild), else an explicit
    list (a HOME called `a[1]` or `x*` must neither match nothing nor another folder)."""
    from photo_curate.tableio import sql_literal_path

    files = sorted(p for p in folder.glob(f"*{suffix}") if not p.name.startswith("."))
    if not files:
        return None
    if _GLOB_CHARS & set(str(folder)):
        return "[" + ", ".join(sql_literal_path(p) for p in files) + "]"
    return sql_literal_path(folder / f"*{suffix}")
