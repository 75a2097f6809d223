"""Ingest: every entry under SOURCE accounted for; nothing followed out of it."""

from __future__ import annotations

import os
from pathlib import Path

import duckdb
import pytest
from PIL import Image

from photo_curate.errors import UserError
from photo_curate.home import Home
from tasks.ingest import check_source, scan


def _rows(home: Home, run_id: str) -> dict[str, tuple]:
    con = duckdb.connect()
    rows = con.execute(
        "SELECT path, entry_type, status, reason, format_hint FROM read_parquet($p)",
        {"p": str(home.table_file("files", run_id))},
    ).fetchall()
    return {r[0]: r[1:] for r in rows}


def test_odd_names_links_and_non_images(tmp_path: Path) -> None:
    src = tmp_path / "src"
    (src / "a b").mkdir(parents=True)
    (src / ".hidden").mkdir()
    img = Image.new("RGB", (32, 32), "blue")
    img.save(src / "a b" / "ünï cödé.jpg")
    img.save(src / "line\nbreak.png")
    img.save(src / "-rf.jpg")
    img.save(src / "no_extension", format="PNG")
    img.save(src / ".hidden" / "secret.jpg")
    (src / "notes.txt").write_text("hello")
    (src / "empty.jpg").write_bytes(b"")
    outside = tmp_path / "outside.jpg"
    img.save(outside)
    os.symlink(outside, src / "link_out.jpg")
    os.symlink(src / "-rf.jpg", src / "link_in.jpg")
    os.symlink(src / "missing.jpg", src / "broken.jpg")
    os.symlink(src / "a b", src / "dirlink")
    home = Home(tmp_path / "home").ensure()
    res = scan(src, home, "r1")
    rows = _rows(home, "r1")
    assert (res.n_files, res.n_images, res.n_skipped, res.n_other) == (7, 5, 2, 4)
    assert rows["a b/ünï cödé.jpg"][1] == "image"
    assert rows["line\nbreak.png"][1] == "image"
    assert rows["-rf.jpg"][1] == "image"
    assert rows["no_extension"][1:] == ("image", None, "PNG")  # found by its bytes
    assert rows["empty.jpg"][1] == "image"  # an empty .jpg is an invalid image, not "skipped"
    assert "hidden" in rows[".hidden/secret.jpg"][2]
    assert rows["notes.txt"][2] == "not an image format curated here (.txt)"
    assert "outside SOURCE" in rows["link_out.jpg"][2]
    assert "inside SOURCE" in rows["link_in.jpg"][2]
    assert "broken" in rows["broken.jpg"][2]
    assert rows["dirlink"][0] == "symlink"
    assert len(rows) == 11


def test_home_inside_source_is_not_scanned(tmp_path: Path) -> None:
    src = tmp_path / "src"
    src.mkdir()
    Image.new("RGB", (32, 32)).save(src / "a.jpg")
    home = Home(src / "curation").ensure()
    (home.root / "quarantine").mkdir()
    Image.new("RGB", (32, 32)).save(home.root / "quarantine" / "b.jpg")
    scan(src, home, "r1")
    assert set(_rows(home, "r1")) == {"a.jpg"}


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads every file")
def test_unreadable_folder_is_recorded(tmp_path: Path) -> None:
    src = tmp_path / "src"
    (src / "locked").mkdir(parents=True)
    (src / "locked").chmod(0)
    try:
        home = Home(tmp_path / "home").ensure()
        scan(src, home, "r1")
        assert "unreadable folder" in _rows(home, "r1")["locked"][2]
    finally:
        (src / "locked").chmod(0o755)


def test_source_checks(tmp_path: Path) -> None:
    with pytest.raises(UserError, match="SOURCE is empty"):
        check_source("")
    with pytest.raises(UserError, match="no such folder"):
        check_source(tmp_path / "missing")
    f = tmp_path / "file.jpg"
    f.write_bytes(b"x")
    with pytest.raises(UserError, match="is a file"):
        check_source(f)
