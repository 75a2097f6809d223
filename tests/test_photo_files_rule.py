"""sql/photo_files.sql on a hand-built file list: which files make one photo, in what role."""

from __future__ import annotations

from datetime import datetime

import duckdb

from photo_curate.rules import params_for, rule_sql
from tasks.photos import LIVE_MOVIE_MAX_BYTES, convention_params

T0 = datetime(2024, 5, 1, 10, 0, 0)


def _photo_files(files: dict[str, int], images: dict[str, datetime | None]) -> dict[str, tuple]:
    """files: path -> size; images: path -> capture time (these are the image files)."""
    con = duckdb.connect()
    con.execute(
        "CREATE TABLE files (path VARCHAR, entry_type VARCHAR, status VARCHAR, "
        "size_bytes BIGINT, mtime_ns BIGINT)"
    )
    con.executemany(
        "INSERT INTO files VALUES (?, 'file', ?, ?, 0)",
        [(p, "image" if p in images else "skipped", n) for p, n in files.items()],
    )
    con.execute(
        "CREATE TABLE images (path VARCHAR, is_valid BOOLEAN, captured_at TIMESTAMP, "
        "sha256 VARCHAR)"
    )
    con.executemany(
        "INSERT INTO images VALUES (?, true, ?, ?)", [(p, t, p) for p, t in images.items()]
    )
    params = {**convention_params(), "run_id": "r"}
    rows = con.execute(rule_sql("photo_files"), params_for("photo_files", params)).fetchall()
    return {r[2]: (r[3], r[4]) for r in rows}  # path -> (role, primary_path)


def test_photos_are_found_by_the_conventions_photographers_tools_use() -> None:
    files = {
        "Camera/IMG_1.CR2": 25_000_000, "Camera/IMG_1.JPG": 6_000_000,
        "Camera/IMG_1.CR2.xmp": 4_000, "Camera/IMG_1_01.CR2.xmp": 4_000,
        "Phone/IMG_2.HEIC": 2_000_000, "Phone/IMG_2.MOV": 3_000_000,
        "Phone/IMG_2.AAE": 900, "Phone/IMG_O2.AAE": 900,
        "X/a.jpg": 100_000, "X/a.png": 300_000, "X/a.xmp": 900, "X/a.png.xmp": 900,
        "Y/film.jpg": 200_000, "Y/film.mp4": LIVE_MOVIE_MAX_BYTES + 1,
        "Z/b.jpg": 100_000, "Z/b.dng": 20_000_000,
        "notes.txt": 10,
    }  # fmt: skip
    images = {
        "Camera/IMG_1.CR2": T0, "Camera/IMG_1.JPG": T0, "Phone/IMG_2.HEIC": T0,
        "X/a.jpg": None, "X/a.png": None, "Y/film.jpg": None,
        "Z/b.jpg": T0, "Z/b.dng": datetime(2024, 5, 1, 11, 0, 0),  # an hour apart: two photos
    }  # fmt: skip
    assert _photo_files(files, images) == {
        "Camera/IMG_1.JPG": ("primary", "Camera/IMG_1.JPG"),
        "Camera/IMG_1.CR2": ("raw", "Camera/IMG_1.JPG"),
        "Camera/IMG_1.CR2.xmp": ("sidecar", "Camera/IMG_1.JPG"),
        "Camera/IMG_1_01.CR2.xmp": ("sidecar", "Camera/IMG_1.JPG"),
        "Phone/IMG_2.HEIC": ("primary", "Phone/IMG_2.HEIC"),
        "Phone/IMG_2.MOV": ("movie", "Phone/IMG_2.HEIC"),
        "Phone/IMG_2.AAE": ("sidecar", "Phone/IMG_2.HEIC"),
        "Phone/IMG_O2.AAE": ("sidecar", "Phone/IMG_2.HEIC"),
        # two stills of one stem: each its own photo; X/a.xmp is ambiguous, belongs to none
        "X/a.jpg": ("primary", "X/a.jpg"),
        "X/a.png": ("primary", "X/a.png"),
        "X/a.png.xmp": ("sidecar", "X/a.png"),
        # a film beside its poster frame is no Live Photo
        "Y/film.jpg": ("primary", "Y/film.jpg"),
        "Z/b.jpg": ("primary", "Z/b.jpg"),
        "Z/b.dng": ("primary", "Z/b.dng"),
    }
