"""Relative paths from untrusted text (archive members, manifest lines) that stay inside a folder.

An archive member or a manifest's path column is attacker-controlled: an absolute path, a
`..` component or a Windows drive would write outside the target folder (zip-slip). Such
names are refused with a reason, never "repaired" into something the user did not write.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

_DRIVE = re.compile(r"^[A-Za-z]:")
MAX_COMPONENT_BYTES = 255


class UnsafePath(ValueError):
    """A name that would leave the target folder or cannot be a file name here."""


def safe_relpath(name: str) -> str:
    """`name` as a clean relative path with `/` separators, or UnsafePath with the reason."""
    n = name.replace("\\", "/")
    if n.startswith("/") or _DRIVE.match(n):
        raise UnsafePath("absolute path: would be written outside the folder")
    if "\x00" in n:
        raise UnsafePath("a NUL character in the name")
    parts = [p for p in n.split("/") if p not in ("", ".")]
    if ".." in parts:
        raise UnsafePath("a '..' component: would be written outside the folder")
    if not parts:
        raise UnsafePath("empty name")
    for p in parts:
        if len(os.fsencode(p)) > MAX_COMPONENT_BYTES:
            raise UnsafePath(f"a name component longer than {MAX_COMPONENT_BYTES} bytes")
    return "/".join(parts)


def inside(root: Path, rel: str) -> Path:
    """root/rel, checked to stay under root after resolving links that already exist."""
    target = root / rel
    real_root = os.path.realpath(root)
    real_parent = os.path.realpath(target.parent)
    if os.path.commonpath([real_root, real_parent]) != real_root:
        raise UnsafePath("resolves outside the folder (through a link)")
    return target


def folder_name(name: str, limit: int = 60) -> str:
    """A plain folder name made from a file name (letters, digits, `._-`; never hidden)."""
    clean = re.sub(r"[^A-Za-z0-9._-]+", "_", name).strip("._-")
    return clean[:limit] or "source"
