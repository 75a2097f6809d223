"""Incremental runs on real photos: same findings as a full run, no re-reads when unchanged."""

from __future__ import annotations

import hashlib
import os
import shutil
from pathlib import Path

import duckdb
import pytest
from PIL import Image, ImageOps

from photo_curate.graph_state import CONTENTS, LISTS, state_dir
from photo_curate.home import Home
from photo_curate.runs import read_run

pytestmark = pytest.mark.slow
COMPARED = ("images", "pairs", "outliers", "findings", "clusters", "plan")


def _rows(home: Path, table: str, run_id: str) -> list[tuple]:
    """The run's rows of `table` without the run id, sorted (a multiset to compare)."""
    path = Home(home).table_file(table, run_id)
    con = duckdb.connect()
    try:
        rows = con.execute(f"SELECT * EXCLUDE (run_id) FROM read_parquet('{path}')").fetchall()
    finally:
        con.close()
    return sorted(rows, key=repr)


def _nearest_files(home: Path, run_id: str, path: str) -> set[str]:
    """The files of the content nearest to `path`'s (the first entry of its list)."""
    folder = state_dir(Home(home), run_id)
    con = duckdb.connect()
    try:
        rows = con.execute(
            """SELECT f.path FROM read_parquet($l) l
               JOIN read_parquet($c) c USING (row)
               JOIN read_parquet($i) i ON i.sha256 = c.sha256 AND i.path = $p
               JOIN read_parquet($c) nc ON nc.row = l.neighbours[1]
               JOIN read_parquet($i) f ON f.sha256 = nc.sha256""",
            {"l": str(folder / LISTS), "c": str(folder / CONTENTS), "p": path,
             "i": str(Home(home).table_file("images", run_id))},
        ).fetchall()  # fmt: skip
    finally:
        con.close()
    return {r[0] for r in rows}


def _grow(collection: Path) -> dict[str, str]:
    """Add new photos (a crop, a recompressed copy, a byte copy), a broken file, and change
    one photo in place (same path, new content). Returns path -> new sha256 of those."""
    photos = sorted(p for p in (collection / "DCIM").rglob("*.jpg"))
    new = collection / "New"
    new.mkdir()
    for i, src in enumerate(photos[:2]):
        with Image.open(src) as im:
            rgb = im.convert("RGB")
        rgb.crop((8, 8, rgb.width - 8, rgb.height - 8)).save(new / f"crop {i}.jpg", quality=88)
        rgb.save(new / f"recompressed {i}.jpg", quality=60)
    shutil.copy2(photos[2], new / "byte copy.jpg")
    (new / "half.jpg").write_bytes((new / "crop 0.jpg").read_bytes()[:3000])
    changed = photos[3]
    with Image.open(changed) as im:
        ImageOps.mirror(im.convert("RGB")).save(changed, quality=90)
    st = changed.stat()
    os.utime(changed, ns=(st.st_atime_ns, st.st_mtime_ns + 5_000_000_000))
    touched = [*new.iterdir(), changed]
    return {
        p.relative_to(collection).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in touched
    }


def test_incremental_run_finds_what_a_full_run_finds(run_flow, collection: Path, tmp_path):
    home, full_home = tmp_path / "home", tmp_path / "full-home"
    first = run_flow(collection, home)
    assert first["incremental"]["mode"] == "full"
    n_first = first["summary"]["images"]
    touched = _grow(collection)

    inc = run_flow(collection, home)
    full = run_flow(collection, full_home, full=True)
    assert inc["status"] == full["status"] == "completed"
    assert inc["incremental"]["mode"] == "incremental"
    assert inc["incremental"]["reused_from"] == first["run_id"]
    # only the new and the changed files were read; vectors only for new valid content
    assert inc["incremental"]["n_inspected"] == len(touched)
    # not for the byte copy (its content is cached) nor for the truncated file
    assert inc["incremental"]["n_extracted"] == len(touched) - 2
    assert full["incremental"]["n_inspected"] == n_first + len(touched) - 1
    for table in COMPARED:
        assert _rows(home, table, inc["run_id"]) == _rows(full_home, table, full["run_id"]), table
    # outliers are absolute: a file's row moves only where a touched file is (or was) its nearest
    before, after = (
        {r[0]: r for r in _rows(home, "outliers", run)} for run in (first["run_id"], inc["run_id"])
    )
    for path in set(before) | set(after):
        if before.get(path) != after.get(path) and path not in touched:
            nearest = {r[2] for r in (before.get(path), after.get(path)) if r}
            nearest |= _nearest_files(home, inc["run_id"], path)
            assert nearest & set(touched), path
    # the changed file was read again: its row has the new content's hash
    con = duckdb.connect()
    rows = dict(
        con.execute(
            "SELECT path, sha256 FROM read_parquet($p)",
            {"p": str(Home(home).table_file("images", inc["run_id"]))},
        ).fetchall()
    )
    for path, sha in touched.items():
        assert rows[path] == sha, path
    assert (
        inc["summary"]["kinds"]["invalid"]["files"]
        == first["summary"]["kinds"]["invalid"]["files"] + 1
    )


def test_unchanged_rerun_reads_no_image_and_carries_the_results(run_flow, collection, tmp_path):
    home = tmp_path / "home"
    first = run_flow(collection, home)
    # Overwrite one photo in place with same-size garbage and restore its mtime: the manifest
    # key (path, size, mtime, inode) is unchanged, so a run that reads no image cannot notice.
    victim = next(p for p in sorted((collection / "DCIM").rglob("*.jpg")))
    st = victim.stat()
    with open(victim, "r+b") as fh:
        fh.write(b"\0" * st.st_size)
    os.utime(victim, ns=(st.st_atime_ns, st.st_mtime_ns))

    again = run_flow(collection, home)
    assert again["status"] == "completed"
    assert again["run_id"] != first["run_id"]
    inc = again["incremental"]
    assert inc == {
        "mode": "unchanged",
        "reused_from": first["run_id"],
        "n_inspected": 0,
        "n_extracted": 0,
    }
    assert "nothing changed since run " + first["run_id"] in again["fastdup"]
    assert again["validation"]["success"] and again["validation"]["checks"] > 0
    for table in COMPARED:
        assert _rows(home, table, again["run_id"]) == _rows(home, table, first["run_id"]), table
    run = read_run(Home(home), again["run_id"])
    assert run["mode"] == "unchanged" and run["n_inspected"] == 0
    assert run["n_findings"] == read_run(Home(home), first["run_id"])["n_findings"]
    assert Path(again["report"]).is_file()

    # --full reads everything again and sees the overwritten photo
    full = run_flow(collection, home, full=True)
    assert full["incremental"]["mode"] == "full"
    assert full["incremental"]["n_inspected"] == first["summary"]["images"]
    assert full["summary"]["valid"] == first["summary"]["valid"] - 1


def test_settings_decide_what_is_reused(run_flow, collection: Path, tmp_path: Path) -> None:
    home = tmp_path / "home"
    first = run_flow(collection, home)
    # a rule threshold: nothing is read again, the graph and rules run on the stored data
    stricter = {"rules": {"duplicate_similarity": 0.97, "near_duplicate_similarity": 0.9}}
    rules = run_flow(collection, home, config=stricter)
    assert rules["incremental"]["mode"] == "incremental"
    assert rules["incremental"]["n_inspected"] == 0 == rules["incremental"]["n_extracted"]
    fresh = run_flow(collection, tmp_path / "fresh", config=stricter)
    for table in COMPARED:
        assert _rows(home, table, rules["run_id"]) == _rows(
            tmp_path / "fresh", table, fresh["run_id"]
        ), table
    # an inspect setting: everything is read again (another cache key)
    inspect = run_flow(collection, home, config={"analysis": {"max_pixels": 100_000}})
    assert inspect["incremental"]["mode"] == "full"
    assert inspect["incremental"]["n_inspected"] == first["summary"]["images"]
    assert inspect["summary"]["valid"] < first["summary"]["valid"]  # large photos now invalid
    # switched off in the config: a full run
    off = run_flow(collection, home, config={"analysis": {"incremental": False}})
    assert off["incremental"]["mode"] == "full"
