"""A run's neighbour lists on disk, kept so that the next run of the same SOURCE updates them.

HOME/cache/graph/<run_id>/
  contents.parquet  (row, sha256): the run's contents, row = rank by sha256 (vectors.py)
  lists.parquet     (row, neighbours INTEGER[], similarities DOUBLE[]), in row order: each
                    content's nearest other contents, nearest first (neighbours.py)
  state.json        the SOURCE, the number of contents and the key the lists were made under

Only the states a later run can start from are kept: a run's own and its base's (the base is
what the next run starts from if this one does not complete).
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from photo_curate.home import Home
from photo_curate.neighbours import SCALE, Lists
from photo_curate.tableio import durable_replace, temp_name

CONTENTS = "contents.parquet"
LISTS = "lists.parquet"
STATE = "state.json"
SCHEMA = pa.schema(
    [
        ("row", pa.int32()),
        ("neighbours", pa.list_(pa.int32())),
        ("similarities", pa.list_(pa.float64())),
    ]
)


def state_dir(home: Home, run_id: str) -> Path:
    return home.root / "cache" / "graph" / run_id


class ListWriter:
    """Streams blocks of lists into lists.parquet (a temp name until closed)."""

    def __init__(self, folder: Path):
        self.final = folder / LISTS
        self._tmp = temp_name(self.final)
        self._writer = pq.ParquetWriter(self._tmp, SCHEMA, compression="zstd")
        self.count = 0

    def write(self, lists: Lists) -> None:
        if len(lists.rows) == 0:
            return
        valid = lists.nbr >= 0
        lengths = valid.sum(axis=1)
        offsets = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int32)
        nbr = pa.ListArray.from_arrays(offsets, pa.array(lists.nbr[valid].astype(np.int32)))
        sim = pa.ListArray.from_arrays(offsets, pa.array(lists.sim[valid] / SCALE))
        rows = pa.array(lists.rows.astype(np.int32))
        self._writer.write_table(pa.Table.from_arrays([rows, nbr, sim], schema=SCHEMA))
        self.count += len(lists.rows)

    def close(self) -> None:
        self._writer.close()
        durable_replace(self._tmp, self.final)

    def abort(self) -> None:
        self._writer.close()
        self._tmp.unlink(missing_ok=True)


def read_lists(folder: Path, width: int, batch: int = 8192) -> Iterator[Lists]:
    """The stored lists in row order, as blocks padded to `width` (-1: no entry)."""
    pf = pq.ParquetFile(folder / LISTS)
    for rb in pf.iter_batches(batch_size=batch):
        rows = rb.column(0).to_numpy().astype(np.int64)
        nbr_col, sim_col = rb.column(1), rb.column(2)
        offsets = nbr_col.offsets.to_numpy()
        lengths = np.diff(offsets)
        flat_n = nbr_col.flatten().to_numpy().astype(np.int64)
        flat_s = np.rint(sim_col.flatten().to_numpy() * SCALE).astype(np.int64)
        nbr = np.full((len(rows), width), -1, dtype=np.int64)
        sim = np.zeros((len(rows), width), dtype=np.int64)
        mask = np.arange(width)[None, :] < lengths[:, None]
        nbr[mask] = flat_n
        sim[mask] = flat_s
        yield Lists(rows, nbr, sim)


def write_meta(folder: Path, source: str, n: int, key: dict[str, object]) -> None:
    tmp = temp_name(folder / STATE)
    tmp.write_text(json.dumps({"source": source, "n": n, "key": key}, sort_keys=True))
    durable_replace(tmp, folder / STATE)


def read_meta(folder: Path) -> dict | None:
    """The state's description, or None when it is missing or incomplete."""
    try:
        meta = json.loads((folder / STATE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not all((folder / f).is_file() for f in (CONTENTS, LISTS)):
        return None
    return meta if isinstance(meta, dict) else None


def carry(home: Home, base_run: str, run_id: str) -> bool:
    """The base run's state becomes this run's (nothing changed): hard links, or copies where
    the file system has none. False when the base has no complete state."""
    src, dst = state_dir(home, base_run), state_dir(home, run_id)
    if read_meta(src) is None:
        return False
    staging = dst.with_name(f".{dst.name}.tmp-{os.getpid()}")
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    for name in (CONTENTS, LISTS, STATE):
        try:
            os.link(src / name, staging / name)
        except OSError:
            shutil.copy2(src / name, staging / name)
    shutil.rmtree(dst, ignore_errors=True)
    os.replace(staging, dst)
    return True


def prune(home: Home, source: str, keep: set[str]) -> None:
    """Remove the states of SOURCE's other runs (and leftovers of interrupted writes)."""
    root = home.root / "cache" / "graph"
    if not root.is_dir():
        return
    for entry in root.iterdir():
        if entry.name in keep or not entry.is_dir():
            continue
        meta = read_meta(entry)
        if entry.name.startswith(".") or meta is None or meta.get("source") == source:
            shutil.rmtree(entry, ignore_errors=True)
