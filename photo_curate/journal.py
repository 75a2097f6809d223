"""The journal of disk actions: `HOME/data/actions/<run_id>.jsonl`, append-only, fsync'd.

Every action writes an `intent` line before it touches the disk and an outcome line after
(`done`, `skipped`, `failed`). Lines are flushed in batches and fsync'd before the batch's
disk work starts, so after a power cut or `kill -9` every file that may have moved has a
durable intent, and recovery can look where the file really is. A torn last line (killed
mid-write) is ignored by the reader.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from photo_curate.home import Home


def _now() -> str:
    return datetime.now(UTC).replace(tzinfo=None).isoformat(timespec="microseconds")


@dataclass
class Entry:
    run_id: str
    op_id: str
    path: str
    action: str  # quarantine | trash | delete | restore
    status: str  # intent | done | skipped | failed
    destination: str | None = None
    sha256: str | None = None
    size_bytes: int | None = None
    detail: str | None = None
    at: str = field(default_factory=_now)


_FIELDS = frozenset(Entry.__dataclass_fields__)


class Journal:
    """Append entries durably; read back the last state of every operation."""

    def __init__(self, home: Home, run_id: str):
        self.path = home.table_file("actions", run_id, ".jsonl")
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.run_id = run_id
        self._fh = open(self.path, "a", encoding="utf-8")  # noqa: SIM115 (closed in close())

    def write(self, entry: Entry) -> None:
        self._fh.write(json.dumps(asdict(entry), ensure_ascii=False) + "\n")

    def sync(self) -> None:
        self._fh.flush()
        os.fsync(self._fh.fileno())

    def close(self) -> None:
        if not self._fh.closed:
            self.sync()
            self._fh.close()

    def __enter__(self) -> Journal:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()


_REQUIRED = ("run_id", "op_id", "path", "action", "status")
_OPTIONAL_STR = ("destination", "sha256", "detail", "at")


def parse_line(line: bytes) -> Entry | None:
    """One journal line as an Entry, or None for anything else.

    A killed writer or a power cut can leave a torn line, a cut UTF-8 sequence or a tail of
    NUL bytes; none of that may stop recovery, and a line that parses as JSON but has the
    wrong shape is not an entry either (recovery acts on paths: only exact strings count).
    """
    try:
        data = json.loads(line.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError):
        return None
    if not isinstance(data, dict) or set(data) - _FIELDS:
        return None
    if not all(isinstance(data.get(k), str) for k in _REQUIRED):
        return None
    if not all(data.get(k) is None or isinstance(data[k], str) for k in _OPTIONAL_STR):
        return None
    size = data.get("size_bytes")
    if size is not None and (isinstance(size, bool) or not isinstance(size, int)):
        return None
    return Entry(**data)


def read_entries(path: Path) -> Iterator[Entry]:
    if not path.exists():
        return
    with open(path, "rb") as fh:
        for line in fh:
            entry = parse_line(line)
            if entry is not None:
                yield entry


def last_states(path: Path) -> dict[str, Entry]:
    """The latest entry of every op_id (its current state)."""
    out: dict[str, Entry] = {}
    for e in read_entries(path):
        out[e.op_id] = e
    return out
