"""Ingest: scan SOURCE into the `files` manifest of the run.

Every entry under SOURCE becomes one row: regular files (images and everything else), plus
symlinks, unreadable folders and special files, each with the reason it was skipped. Nothing
is followed out of SOURCE and nothing is silently dropped. Hashing happens in the inspect step,
which reads each image once for hash, decode and metrics together.
"""

from __future__ import annotations

import os
import stat
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from prefect import task

from photo_curate.errors import UserError
from photo_curate.home import Home
from photo_curate.progress import StepProgress
from photo_curate.sniff import (
    IMAGE_EXTENSIONS,
    MOVIE_EXTENSIONS,
    SIDECAR_EXTENSIONS,
    sniff_format,
)
from photo_curate.tableio import RowWriter


@dataclass(frozen=True)
class IngestResult:
    n_files: int  # regular files under SOURCE
    n_images: int  # taken as images (valid or not)
    n_skipped: int  # regular files not taken as images
    n_other: int  # symlinks, unreadable folders, special files (recorded, never touched)


def check_source(source: str | os.PathLike[str]) -> Path:
    """The absolute SOURCE folder, or a one-line user error."""
    if not str(source).strip():
        raise UserError("SOURCE is empty: name the folder to curate (deployments: CURATE_SOURCE)")
    p = Path(source).expanduser()
    if not p.exists():
        raise UserError(f"SOURCE {source}: no such folder")
    if not p.is_dir():
        raise UserError(f"SOURCE {source}: is a file, not a folder")
    if not os.access(p, os.R_OK | os.X_OK):
        raise UserError(f"SOURCE {source}: folder is not readable (permission denied)")
    return p.absolute()


def _mtime(st: os.stat_result) -> datetime:
    return datetime.fromtimestamp(st.st_mtime, UTC).replace(tzinfo=None)


def _utf8_or_none(rel: str) -> str | None:
    try:
        rel.encode("utf-8")
        return rel
    except UnicodeEncodeError:
        return None


def _row(run_id: str, rel: str, entry_type: str, **kw: Any) -> dict[str, Any]:
    row = {
        "run_id": run_id,
        "path": rel,
        "entry_type": entry_type,
        "size_bytes": None,
        "mtime": None,
        "mtime_ns": None,
        "inode": None,
        "format_hint": None,
        "status": "skipped",
        "reason": None,
    }
    row.update(kw)
    return row


def _symlink_reason(path: str, root: Path) -> str:
    target = os.path.realpath(path)
    if not os.path.exists(target):
        return "symlink: broken link, left alone"
    inside = target == str(root) or target.startswith(str(root) + os.sep)
    if not inside:
        return "symlink: points outside SOURCE, not followed"
    if os.path.isdir(target):
        return "symlink: to a folder inside SOURCE, not followed (its files are scanned there)"
    return "symlink: to a file inside SOURCE, not followed (the target itself is curated)"


def _classify_file(path: str, name: str, st: os.stat_result) -> tuple[bool, str | None, str]:
    """(is image candidate, format hint, reason when skipped)."""
    ext = os.path.splitext(name)[1].lower()
    if ext in IMAGE_EXTENSIONS:
        return True, IMAGE_EXTENSIONS[ext], ""
    if ext in SIDECAR_EXTENSIONS:
        return False, None, f"sidecar ({ext}): not an image; it moves with its photo"
    if ext in MOVIE_EXTENSIONS:
        return False, None, f"video ({ext}): not analysed (moves with its still in a Live Photo)"
    if st.st_size == 0:
        return False, None, "not an image: empty file without an image extension"
    try:
        fmt = sniff_format(path)
    except OSError as exc:
        return False, None, f"unreadable: {exc.strerror or exc}"
    if fmt:
        return True, fmt, ""
    return False, None, f"not an image format curated here ({ext or 'no extension'})"


def scan(source: Path, home: Home, run_id: str, include_hidden: bool = False) -> IngestResult:
    """Walk SOURCE (no symlinks followed) and write the run's `files` table."""
    root = source
    prefix = len(str(root).rstrip(os.sep)) + 1  # entry paths are root/...: cheaper than relpath
    home_root = str(home.root)
    n_files = n_images = n_skipped = n_other = 0
    stack = [str(root)]
    with RowWriter(home, "files", run_id) as out, StepProgress("scan", None, "entries") as prog:
        while stack:
            folder = stack.pop()
            try:
                with os.scandir(folder) as it:
                    entries = sorted(it, key=lambda e: e.name)
            except OSError as exc:
                rel = os.path.relpath(folder, root).replace(os.sep, "/")
                out.add(
                    _row(
                        run_id,
                        _utf8_or_none(rel) or rel.encode("utf-8", "backslashreplace").decode(),
                        "dir",
                        reason=f"unreadable folder: {exc.strerror or exc} (its files not counted)",
                    )
                )
                n_other += 1
                continue
            for entry in entries:
                prog.advance()
                rel_raw = entry.path[prefix:].replace(os.sep, "/")
                rel = _utf8_or_none(rel_raw)
                hidden = rel_raw.startswith(".") or "/." in rel_raw  # a dot-name on the way
                try:
                    st = entry.stat(follow_symlinks=False)
                except OSError as exc:
                    out.add(
                        _row(
                            run_id,
                            rel or rel_raw.encode("utf-8", "backslashreplace").decode(),
                            "file",
                            reason=f"vanished or unreadable: {exc.strerror or exc}",
                        )
                    )
                    n_other += 1
                    continue
                if stat.S_ISDIR(st.st_mode):
                    if entry.path == home_root:
                        continue  # the curation home itself (quarantine, reports) is not data
                    stack.append(entry.path)  # hidden folders too: their files are counted
                    continue
                display = rel or rel_raw.encode("utf-8", "backslashreplace").decode()
                base = {
                    "size_bytes": st.st_size,
                    "mtime": _mtime(st),
                    "mtime_ns": st.st_mtime_ns,
                    "inode": st.st_ino,
                }
                if stat.S_ISLNK(st.st_mode):
                    reason = _symlink_reason(entry.path, root)
                    out.add(_row(run_id, display, "symlink", reason=reason, **base))
                    n_other += 1
                    continue
                if not stat.S_ISREG(st.st_mode):
                    out.add(_row(run_id, display, "special", reason="not a regular file", **base))
                    n_other += 1
                    continue
                n_files += 1
                if rel is None:
                    reason = "name is not valid UTF-8: left alone"
                    out.add(_row(run_id, display, "file", reason=reason, **base))
                    n_skipped += 1
                    continue
                is_image, fmt, reason = _classify_file(entry.path, entry.name, st)
                if hidden and not include_hidden:
                    is_image, reason = False, "hidden (dot-file or dot-folder): not curated"
                if is_image:
                    out.add(_row(run_id, rel, "file", status="image", format_hint=fmt, **base))
                    n_images += 1
                else:
                    out.add(_row(run_id, rel, "file", format_hint=fmt, reason=reason, **base))
                    n_skipped += 1
    return IngestResult(n_files, n_images, n_skipped, n_other)


@task(name="ingest", retries=1, retry_delay_seconds=2)
def ingest_task(source: str, home_root: str, run_id: str, include_hidden: bool) -> IngestResult:
    """Scan SOURCE into the manifest (a retry helps with a flaky network file system)."""
    return scan(Path(source), Home(Path(home_root)), run_id, include_hidden)
