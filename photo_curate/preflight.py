"""What a run needs, checked before anything starts: SOURCE, HOME, PREFECT_HOME, the config.

`check_run` is called by the CLI before Prefect is imported or a server started, and again by
the flow (a deployment run never passed through the CLI); within one process the second call
with the same arguments returns the first one's result. Every problem is one `UserError`
line, found in well under a second, and nothing is left behind: a HOME or PREFECT_HOME folder
created to prove it can be, is removed again when a later check fails. Only light modules
are imported here (no Prefect, pyarrow, DuckDB or httpx).
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from photo_curate import archives
from photo_curate.config import CurateConfig, config_from_mapping
from photo_curate.errors import UserError
from photo_curate.home import Home
from photo_curate.sniff import format_from_bytes

ACCEPTED = "a folder, an archive (zip, tar, tar.gz, tar.bz2, tar.xz) or a URL manifest (.txt/.csv)"
_HEAD = 64 * 1024


@dataclass(frozen=True)
class Source:
    kind: str  # folder | archive | manifest
    path: Path  # absolute
    archive_format: str | None = None


@dataclass(frozen=True)
class Checked:
    """A run that may start: what SOURCE is, where HOME is, the config and the action."""

    source: Source
    home: Home
    config: CurateConfig
    action: str


_checked: dict[str, Checked] = {}


def memo() -> dict[str, Checked]:
    """What this process has checked (handed to the runner's child with the flow call)."""
    return dict(_checked)


def adopt(checked: dict[str, Checked]) -> None:
    """Take over what the command checked: the flow does not check it again."""
    _checked.update(checked)


def check_run(
    source: str | os.PathLike[str],
    home: str | os.PathLike[str] | None,
    config: dict[str, Any] | None,
    apply: bool = False,
    action: str | None = None,
    yes: bool = False,
) -> Checked:
    """Everything a run checks before it starts (see the module docstring)."""
    cfg = config_from_mapping(config or {})
    chosen = action or cfg.actions.action
    if action and action != cfg.actions.action:
        actions = {**cfg.actions.model_dump(), "action": action}
        cfg = config_from_mapping({**cfg.model_dump(mode="json"), "actions": actions})
    key = json.dumps(
        [str(source), str(home), cfg.to_json(), apply, chosen, yes, os.environ.get("PREFECT_HOME")]
    )
    if key in _checked:
        return _checked[key]
    src = check_source(source)
    if apply and chosen == "delete" and not yes:
        raise UserError(
            "action delete removes files permanently (they cannot come back): confirm with "
            "--yes (a deployment: the parameter yes: true), or use quarantine or trash"
        )
    if apply and src.kind == "folder":
        check_writable(src.path)
    h = Home.resolve(home)
    created: list[Path] = []
    try:
        writable_folder(h.root, "--home", created)
        check_prefect_home(created)
    except UserError:
        for folder in reversed(created):
            with contextlib.suppress(OSError):
                folder.rmdir()
        raise
    out = Checked(src, h, cfg, chosen)
    _checked[key] = out
    return out


def check_source(source: str | os.PathLike[str]) -> Source:
    """Classify SOURCE, or a one-line user error for anything missing or unsupported."""
    if not str(source).strip():
        raise UserError("SOURCE is empty: name the folder to curate (deployments: CURATE_SOURCE)")
    p = Path(source).expanduser().absolute()
    if not p.exists():
        raise UserError(f"SOURCE {source}: no such folder, archive or manifest")
    if p.is_dir():
        if not os.access(p, os.R_OK | os.X_OK):
            raise UserError(f"SOURCE {source}: folder is not readable (permission denied)")
        return Source("folder", p)
    if not p.is_file():
        raise UserError(f"SOURCE {source}: not a regular file or folder")
    try:
        with open(p, "rb") as fh:
            head = fh.read(_HEAD)
    except OSError as exc:
        raise UserError(f"SOURCE {source}: unreadable: {exc.strerror or exc}") from None
    fmt = archives.detect(p)
    if fmt:
        return Source("archive", p, fmt)
    manifest = _manifest_kind(head)
    if manifest == "empty" and len(head) < _HEAD:
        raise UserError(f"SOURCE {source}: a URL manifest that lists no URLs")
    if manifest:
        return Source("manifest", p)
    image = format_from_bytes(head)
    if image:
        raise UserError(f"SOURCE {source}: is a file ({image} image), not {ACCEPTED}")
    if _is_text(head):
        raise UserError(
            f"SOURCE {source}: is a text file, but neither a folder, an archive nor a URL "
            "manifest (its first entry is not an http(s) URL)"
        )
    raise UserError(f"SOURCE {source}: is a file, not {ACCEPTED}")


def _is_text(head: bytes) -> bool:
    """UTF-8 without control characters (a zip's or an image's magic bytes have them)."""
    try:
        text = head.decode("utf-8-sig")
    except UnicodeDecodeError as exc:  # a multi-byte character cut at the end of the head
        if exc.start < len(head) - 3:
            return False
        text = head[: exc.start].decode("utf-8-sig")
    return bool(text) and not any(c < " " and c not in "\t\n\r\f" for c in text)


def _manifest_kind(head: bytes) -> str | None:
    """`urls` for text whose first entry (after blank lines, `#` comments and a `url,...`
    header) is an http(s) URL; `empty` for text of only those; None otherwise. Whatever the
    file is called: a .txt of notes is not a manifest."""
    if not _is_text(head):
        return None
    header = False
    for raw in head.decode("utf-8-sig", errors="ignore").splitlines():
        line = raw.strip().strip('"').lower()
        if not line or line.startswith("#"):
            continue
        if not header and (line == "url" or line.startswith(("url,", "url;", "url\t"))):
            header = True
            continue
        return "urls" if line.startswith(("http://", "https://")) else None
    return "empty"


def check_writable(source: Path) -> None:
    """A read-only SOURCE cannot give up files: say so before anything starts."""
    try:
        ro = bool(os.statvfs(source).f_flag & os.ST_RDONLY)
    except OSError:
        return  # the per-file checks will say what is wrong
    if ro:
        raise UserError(
            f"SOURCE {source} is on a read-only file system: nothing can be moved or deleted "
            "(a dry run works; remount it read-write to apply)"
        )


def writable_folder(path: Path, label: str, created: list[Path]) -> None:
    """`path` is (or can be made) a folder we can write to; folders made are added to
    `created`, so a caller can take them back."""
    missing = []
    probe = path
    while not probe.exists():
        if probe.is_symlink():
            raise UserError(f"{label} {path}: {probe} is a dangling symbolic link")
        missing.append(probe)
        probe = probe.parent
    if not probe.is_dir():
        raise UserError(f"{label} {path}: {probe} exists and is not a folder")
    for folder in reversed(missing):
        try:
            folder.mkdir()
        except FileExistsError:
            continue
        except OSError as exc:
            raise UserError(
                f"{label} {path}: cannot be created ({exc.strerror or exc} at {folder})"
            ) from None
        created.append(folder)
    try:
        fd, name = tempfile.mkstemp(prefix=".curate-write-test-", dir=path)
        os.close(fd)
        os.unlink(name)
    except OSError as exc:
        raise UserError(f"{label} {path}: not writable ({exc.strerror or exc})") from None


def check_prefect_home(created: list[Path]) -> None:
    """Prefect keeps its settings and, without PREFECT_API_URL, the local server's database
    in PREFECT_HOME (default ~/.prefect). Unwritable with a server configured, Prefect only
    warns at import (those warnings are silenced); without one, nothing could start."""
    from photo_curate.local_server import prefect_home

    home = prefect_home()
    try:
        writable_folder(home, "PREFECT_HOME", created)
    except UserError as exc:
        if os.environ.get("PREFECT_API_URL"):
            warnings.filterwarnings("ignore", message="Failed to create the Prefect home")
            return
        raise UserError(
            f"{exc}: Prefect keeps its database there; set PREFECT_HOME to a writable folder, "
            "or PREFECT_API_URL to a Prefect server"
        ) from None
