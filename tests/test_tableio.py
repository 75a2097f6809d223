"""RowWriter: Python rows in, the table's exact Parquet schema out, atomically."""

from __future__ import annotations

import subprocess
import sys
from datetime import datetime
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from photo_curate.home import Home
from photo_curate.schema import TABLES, arrow_schema
from photo_curate.tableio import RowWriter

SAMPLES = {
    "VARCHAR": ["a b", "ünï 名前", None],
    "JSON": ['{"k": [1, 2]}', None, "[]"],
    "TIMESTAMP": [datetime(2024, 2, 29, 23, 59, 58, 123456), None, datetime(1970, 1, 1)],
    "BIGINT": [2**62, None, -1],
    "INTEGER": [2**31 - 1, 0, None],
    "DOUBLE": [0.1, 3, None],  # an int in a DOUBLE column is a number, not an error
    "BOOLEAN": [True, None, False],
}


def _rows(table: str, n: int) -> list[dict]:
    return [
        {name: SAMPLES[typ][i % len(SAMPLES[typ])] for name, typ in TABLES[table]} for i in range(n)
    ]


@pytest.mark.parametrize("table", sorted(TABLES))
def test_rows_round_trip_in_the_tables_schema(tmp_path: Path, table: str) -> None:
    home = Home(tmp_path / "home").ensure()
    rows = _rows(table, 5)
    with RowWriter(home, table, "r1", batch_rows=2) as out:  # three batches
        out.extend(rows)
    got = pq.read_table(home.table_file(table, "r1"))
    assert got.schema == arrow_schema(table)
    assert got.to_pylist() == pa.Table.from_pylist(rows, schema=arrow_schema(table)).to_pylist()
    assert out.count == 5


def test_missing_keys_are_null_and_extra_keys_ignored(tmp_path: Path) -> None:
    home = Home(tmp_path / "home").ensure()
    with RowWriter(home, "runs", "r1") as out:
        out.add({"run_id": "r1", "status": "running", "not_a_column": 1})
    (row,) = pq.read_table(home.table_file("runs", "r1")).to_pylist()
    assert row["run_id"] == "r1" and row["status"] == "running" and row["n_files"] is None
    assert "not_a_column" not in row


def test_a_bad_value_raises_and_leaves_no_file(tmp_path: Path) -> None:
    home = Home(tmp_path / "home").ensure()
    final = home.table_file("runs", "r1")
    with (
        pytest.raises(Exception, match=r"(?i)convert|cast"),
        RowWriter(home, "runs", "r1") as out,
    ):
        out.add({"run_id": "r1", "n_files": "many"})
    assert not final.exists()
    assert list(final.parent.iterdir()) == []  # no temp file left either


def test_writing_a_row_does_not_import_pandas(tmp_path: Path) -> None:
    """The point of converting through DuckDB: a run with nothing to do skips pandas' import."""
    code = (
        "import sys; from pathlib import Path; from photo_curate.home import Home; "
        "from photo_curate.tableio import RowWriter; "
        f"h = Home(Path({str(tmp_path)!r})).ensure(); "
        "w = RowWriter(h, 'runs', 'r1'); w.add({'run_id': 'r1'}); w.close(); "
        "print('pandas' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
