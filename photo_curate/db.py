"""DuckDB connections with a memory bound: every connection that a step opens comes from here.

DuckDB's default memory limit is 80 % of the machine's RAM, per connection, and it spills to a
temp folder next to a database file only (none for an in-memory one). A step over a million
images' rows would then take what the machine has. Here every connection gets a
`memory_limit` (CURATE_DUCKDB_MEMORY, default 1 GiB) and a `temp_directory` inside HOME
(`HOME/tmp/duckdb`), so a large join or sort spills to disk instead of growing.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import duckdb

from photo_curate.home import Home

DEFAULT_MEMORY = "1GiB"


def memory_limit() -> str:
    """The memory limit of each connection (DuckDB syntax, e.g. '1GiB', '512MB')."""
    return os.environ.get("CURATE_DUCKDB_MEMORY", DEFAULT_MEMORY)


def temp_directory(home: Home | None) -> Path:
    if home is None:
        return Path(tempfile.gettempdir()) / "photo-curate-duckdb"
    return home.root / "tmp" / "duckdb"


def connect(home: Home | None = None) -> duckdb.DuckDBPyConnection:
    """An in-memory connection bounded by memory_limit(), spilling to HOME/tmp/duckdb."""
    spill = temp_directory(home)
    spill.mkdir(parents=True, exist_ok=True)
    return duckdb.connect(config={"memory_limit": memory_limit(), "temp_directory": str(spill)})
