"""Where everything of one curation home lives on disk.

HOME/
  catalog.duckdb            views over the Parquet tables (rebuilt and swapped atomically)
  data/<table>/<run>.parquet one immutable file per run and table
  data/actions/<run>.jsonl  the journal of disk actions (append-only, fsync'd)
  runs/<run>/               per-run work: fastdup work dir, analysis images, logs
  quarantine/<run>/<path>   files moved aside, with their folder structure
  reports/<run>/index.html  the HTML report
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from photo_curate.errors import UserError

DEFAULT_HOME = "curation"


@dataclass(frozen=True)
class Home:
    root: Path

    @classmethod
    def resolve(cls, home: str | os.PathLike[str] | None) -> Home:
        raw = home or os.environ.get("CURATE_HOME") or DEFAULT_HOME
        root = Path(raw).expanduser().absolute()
        if root.exists() and not root.is_dir():
            raise UserError(f"--home {raw}: exists and is not a folder")
        if "?" in str(root):
            # DuckDB reads `?` in a database path as the start of options: the catalog (and
            # its write-ahead log) would land somewhere else
            raise UserError(f"--home {raw}: a '?' in the path is not supported (DuckDB)")
        return cls(root)

    def ensure(self) -> Home:
        try:
            for d in (self.root, self.data, self.root / "runs"):
                d.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise UserError(f"cannot create home {self.root}: {exc.strerror or exc}") from None
        return self

    @property
    def catalog(self) -> Path:
        return self.root / "catalog.duckdb"

    @property
    def data(self) -> Path:
        return self.root / "data"

    @property
    def lock_file(self) -> Path:
        return self.root / ".curate.lock"

    def table_dir(self, table: str) -> Path:
        return self.data / table

    def table_file(self, table: str, run_id: str, suffix: str = ".parquet") -> Path:
        return self.table_dir(table) / f"{run_id}{suffix}"

    def run_dir(self, run_id: str) -> Path:
        return self.root / "runs" / run_id

    def quarantine_dir(self, run_id: str) -> Path:
        return self.root / "quarantine" / run_id

    def report_dir(self, run_id: str) -> Path:
        return self.root / "reports" / run_id

    def report_file(self, run_id: str) -> Path:
        return self.report_dir(run_id) / "index.html"

    @property
    def thumbnails(self) -> Path:
        # v2: transparency over grey (inspect_image.THUMB_VERSION); older ones stay unused
        return self.root / "cache" / "thumbnails" / "v2"
