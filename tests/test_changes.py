"""What changed since the last run: stable finding ids and the change views, on two real runs."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import duckdb
import numpy as np
import pytest
from PIL import Image

from photo_curate.home import Home

pytestmark = pytest.mark.slow

REMOVED = "Backup/old phone/rocket.jpg"  # a byte copy: its duplicate finding goes away
ADDED = "New/night shot.jpg"  # a new, dark photo
CHANGED = "DCIM/2023/astronaut.jpg"  # rewritten in place with other content


def _rows(con: duckdb.DuckDBPyConnection, sql: str, params: dict | None = None) -> set[tuple]:
    return set(con.execute(sql, params or {}).fetchall())


def test_changes_between_two_runs(run_flow, collection: Path, tmp_path: Path) -> None:
    home = Home(tmp_path / "home")
    first = run_flow(collection, home.root)
    assert first["changes"] is None  # nothing to compare with yet

    (collection / REMOVED).unlink()
    (collection / ADDED).parent.mkdir()
    with Image.open(collection / "DCIM/2023/rocket.jpg") as im:
        dark = (np.asarray(im.convert("RGB"), dtype=np.float32) * 0.12).astype(np.uint8)
    Image.fromarray(dark).transpose(Image.Transpose.FLIP_LEFT_RIGHT).save(collection / ADDED)
    shutil.copyfile(collection / "DCIM/2023/rocket.jpg", collection / CHANGED)
    second = run_flow(collection, home.root)

    con = duckdb.connect(str(home.catalog), read_only=True)
    run2, run1 = second["run_id"], first["run_id"]
    files = _rows(con, "SELECT change, path FROM file_changes WHERE run_id = $r", {"r": run2})
    assert files == {("added", ADDED), ("removed", REMOVED), ("changed", CHANGED)}

    new = _rows(
        con,
        "SELECT kind, path FROM finding_changes WHERE run_id = $r AND change = 'new'",
        {"r": run2},
    )
    gone = _rows(
        con,
        "SELECT kind, path FROM finding_changes WHERE run_id = $r AND change = 'gone'",
        {"r": run2},
    )
    assert ("dark", ADDED) in new
    assert ("duplicate", REMOVED) in gone
    # the latest run's new findings, without naming the run
    assert _rows(con, "SELECT kind, path FROM new_findings") == new
    # nothing else changed: every changed finding is on a touched file or in its group
    # (outliers excepted: they are the least similar few percent, relative to the collection)
    touched = {ADDED, REMOVED, CHANGED}
    groups = _rows(
        con,
        "SELECT group_id FROM findings WHERE run_id IN ($a, $b) AND path IN $touched "
        "AND group_id IS NOT NULL",
        {"a": run1, "b": run2, "touched": list(touched)},
    )
    group_ids = {g for (g,) in groups}
    for kind, path in new | gone:
        if path in touched or kind == "outlier":
            continue
        member_of = _rows(
            con,
            "SELECT group_id FROM findings WHERE run_id IN ($a, $b) AND path = $p",
            {"a": run1, "b": run2, "p": path},
        )
        assert {g for (g,) in member_of} & group_ids, path

    # a finding that persists keeps its id: the truncated file is invalid in both runs
    ids = con.execute(
        "SELECT DISTINCT finding_id FROM findings WHERE kind = 'invalid' AND path = $p",
        {"p": "Downloads/truncated.jpg"},
    ).fetchall()
    assert len(ids) == 1 and ids[0][0]
    same = con.execute(
        "SELECT count(*) FROM findings a JOIN findings b USING (finding_id) "
        "WHERE a.run_id = $a AND b.run_id = $b",
        {"a": run1, "b": run2},
    ).fetchall()[0][0]
    assert same > 50

    # the run's own summary agrees with the catalog's views
    ch = second["changes"]
    assert ch["previous_run_id"] == run1
    assert ch["files"] == {"added": 1, "removed": 1, "changed": 1}
    assert sum(k["new"] for k in ch["kinds"].values()) == len(new)
    assert sum(k["gone"] for k in ch["kinds"].values()) == len(gone)
    con.close()

    # and `curate history` shows them per run
    out = subprocess.run(
        [str(Path(sys.executable).parent / "curate"), "history", "--home", str(home.root)],
        capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    assert f"+{len(new)}/-{len(gone)}" in out.splitlines()[1]
