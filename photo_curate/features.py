"""fastdup's feature vectors, cached per content hash in HOME/cache/features/<key>/.

fastdup extracts a 576-float vector from each analysis copy; the analysis copy is a pure
function of the file's bytes (and the inspect settings in the key), so the vector is too.
Each run that extracts vectors adds one Parquet file `<run_id>.parquet` (sha256, feature);
a run extracts (fastdup `run_mode=1`) only the hashes it does not find there, and the
neighbour search reads all of them (photo_curate/vectors.py). Everything streams through
DuckDB and Arrow batches.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa

from photo_curate import db
from photo_curate.tableio import atomic_path, sql_literal_path

DIM = 576  # fastdup's default model
FEATURES_CSV = "atrain_features.dat.csv"
FEATURES_DAT = "atrain_features.dat"
_BATCH = 8192


def analysis_name(analysis_dir: Path | str, analysis_id: int) -> str:
    """The analysis copy's file name: fastdup's rows are mapped back by this number."""
    return os.path.join(str(analysis_dir), f"{analysis_id:08d}.jpg")


@dataclass(frozen=True)
class FeatureCache:
    folder: Path  # HOME/cache/features/<inspect key>

    def source(self) -> str:
        """SQL for the cached (sha256, feature) rows (no rows when the cache is empty)."""
        if not self.folder.is_dir() or not any(self.folder.glob("*.parquet")):
            return f"(SELECT NULL::VARCHAR AS sha256, NULL::FLOAT[{DIM}] AS feature WHERE false)"
        return f"read_parquet({sql_literal_path(self.folder / '*.parquet')})"

    def store(self, work: Path, images_file: Path, run_id: str) -> int:
        """Add the vectors fastdup wrote in `work` (rows named by analysis id) to the cache.

        Only hashes not cached yet are written; byte-identical files share one row.
        """
        rows = _fastdup_rows(work)
        con = db.connect()
        try:
            con.register("fd", rows)
            self.folder.mkdir(parents=True, exist_ok=True)
            final = self.folder / f"{run_id}.parquet"
            img = f"read_parquet({sql_literal_path(images_file)})"
            with atomic_path(final) as tmp:
                con.execute(
                    f"""COPY (
                          SELECT i.sha256, any_value(fd.feature) AS feature
                          FROM fd JOIN {img} i ON i.analysis_id = fd.analysis_id
                          WHERE i.sha256 IS NOT NULL
                            AND i.sha256 NOT IN (SELECT sha256 FROM {self.source()})
                          GROUP BY i.sha256
                        ) TO {sql_literal_path(tmp)} (FORMAT parquet, COMPRESSION zstd)"""
                )
            n = con.execute(f"SELECT count(*) FROM read_parquet({sql_literal_path(final)})")
            return int(n.fetchall()[0][0])
        finally:
            con.close()


def _fastdup_rows(work: Path) -> pa.RecordBatchReader:
    """(analysis_id, feature) batches from fastdup's feature files, in its row order."""
    import pyarrow.compute as pc
    import pyarrow.csv as pacsv

    csv_path, dat_path = work / FEATURES_CSV, work / FEATURES_DAT
    n_floats = dat_path.stat().st_size // 4
    matrix = np.memmap(dat_path, dtype="<f4", mode="r", shape=(n_floats // DIM, DIM))
    schema = pa.schema([("analysis_id", pa.int64()), ("feature", pa.list_(pa.float32(), DIM))])

    def batches() -> Iterator[pa.RecordBatch]:
        reader = pacsv.open_csv(
            csv_path,
            read_options=pacsv.ReadOptions(block_size=1 << 20),
            convert_options=pacsv.ConvertOptions(
                include_columns=["filename"], column_types={"filename": pa.string()}
            ),
        )
        row = 0
        for rb in reader:
            names = rb.column(0)
            ids = pc.cast(pc.extract_regex(names, r"(?P<id>\d+)\.jpg$").field("id"), pa.int64())
            block = np.ascontiguousarray(matrix[row : row + len(names)]).reshape(-1)
            if block.size != len(names) * DIM:
                raise RuntimeError(f"fastdup's feature file in {work} has fewer rows than names")
            feats = pa.FixedSizeListArray.from_arrays(pa.array(block), DIM)
            yield pa.record_batch([ids, feats], schema=schema)
            row += len(names)

    return pa.RecordBatchReader.from_batches(schema, batches())
