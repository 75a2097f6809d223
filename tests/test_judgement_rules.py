"""The judgement rules of sql/ on tiny hand-built tables: exactly these rows come out.

Each test builds the tables a rule reads (`images`, `pair_checks`, `checks`, `flags`, ...) in
an in-memory DuckDB, runs the rule with the config's default thresholds (or the ones named),
and compares the rows.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import duckdb
import pytest

from photo_curate.config import CurateConfig
from photo_curate.rules import params_for, rule_sql
from tasks.findings import rule_parameters

IMAGE_DEFAULTS: dict[str, Any] = {
    "sha256": None, "is_valid": True, "unsupported": False, "error": None, "width": 640,
    "height": 480, "size_bytes": 1000, "mean": 120.0, "min": 0.0, "max": 255.0, "p05": 20.0,
    "p50": 120.0, "p95": 220.0, "p99": 240.0, "highlights": 0.1, "clipped_dark": 0.0,
    "clipped_bright": 0.01, "flat_share": 0.0, "sharpness": -0.5, "sharp_512": -0.5,
    "sharp_256": -0.5, "sharp_128": -0.5, "captured_at": None, "mtime": None,
    "jpeg_quality": 90,
}  # fmt: skip
T0 = datetime(2024, 6, 1, 9, 30)
TYPES = {"sha256": "VARCHAR", "error": "VARCHAR", "is_valid": "BOOLEAN", "unsupported": "BOOLEAN",
         "width": "INTEGER", "height": "INTEGER", "size_bytes": "BIGINT", "jpeg_quality": "INTEGER",
         "captured_at": "TIMESTAMP", "mtime": "TIMESTAMP"}  # fmt: skip


def _params(**rules: Any) -> dict[str, Any]:
    base = CurateConfig().model_dump(mode="json")
    cfg = CurateConfig.model_validate({**base, "rules": {**base["rules"], **rules}})
    return rule_parameters(cfg, "run")


def _images(con: duckdb.DuckDBPyConnection, rows: dict[str, dict[str, Any]]) -> None:
    cols = list(IMAGE_DEFAULTS)
    con.execute(
        "CREATE TABLE images (path VARCHAR, "
        + ", ".join(f"{c} {TYPES.get(c, 'DOUBLE')}" for c in cols)
        + ")"
    )
    for path, over in rows.items():
        values = {**IMAGE_DEFAULTS, "sha256": f"h-{path}", **over}
        con.execute(
            f"INSERT INTO images VALUES (?, {', '.join('?' for _ in cols)})",
            [path, *(values[c] for c in cols)],
        )


def _pair_checks(con: duckdb.DuckDBPyConnection, rows: list[tuple[str, str, float, str]]) -> None:
    con.execute(
        "CREATE TABLE pair_checks (path_a VARCHAR, path_b VARCHAR, similarity DOUBLE, "
        "relation VARCHAR, evidence VARCHAR)"
    )
    for a, b, sim, rel in rows:
        con.execute("INSERT INTO pair_checks VALUES (?, ?, ?, ?, ?)", [a, b, sim, rel, f"{rel}!"])


def _photos(con: duckdb.DuckDBPyConnection, sets: dict[str, list[tuple[str, str]]]) -> None:
    """`photo_files` and `photo_sets` of the given photos {primary: [(path, role), ...]};
    every other image is a photo of its own."""
    rows = [(p, p, "primary") for p in sets] + [
        (p, path, role) for p, members in sets.items() for path, role in members
    ]
    con.execute("CREATE TABLE photo_files (photo_id VARCHAR, path VARCHAR, role VARCHAR)")
    if rows:
        con.executemany("INSERT INTO photo_files VALUES (?, ?, ?)", rows)
    con.execute(
        "INSERT INTO photo_files SELECT path, path, 'primary' FROM images "
        "WHERE path NOT IN (SELECT path FROM photo_files)"
    )
    con.execute(
        "CREATE TABLE IF NOT EXISTS decided (decision_id VARCHAR, verdict VARCHAR, "
        "kind VARCHAR, path VARCHAR)"
    )
    con.execute(
        "CREATE TABLE IF NOT EXISTS ungrouped AS SELECT path FROM photo_files "
        "WHERE role IN ('raw', 'still')"
    )
    con.execute(
        "CREATE TABLE photo_sets AS SELECT photo_id AS path, bool_or(role = 'raw') AS has_raw, "
        "bool_or(role = 'sidecar') AS has_sidecar, min(path) FILTER (role = 'raw') AS raw_path "
        "FROM photo_files GROUP BY photo_id"
    )


def _run(con: duckdb.DuckDBPyConnection, rule: str, params: dict[str, Any]) -> list[tuple]:
    return sorted(con.execute(rule_sql(rule), params_for(rule, params)).fetchall())


# --- relation.sql --------------------------------------------------------------------------

COPY_MEASURES = {
    "ncc": 0.99, "overlap": 0.95, "flat": False, "raw_diff": 1.0, "tone_shift": 1.0,
    "contrast_ratio": 0.98, "mean_diff": 0.8, "worst_block": 2.0, "block_ratio": 1.5,
    "chroma_corr": 0.99, "saturation_ratio": 0.97, "chroma_shift": 0.5, "chroma_residual": 0.8,
    "worst_chroma_block": 2.0, "detail_ratio": 0.97, "blur_sigma": 0.0, "blur_diff": 0.8,
    "blur_worst_block": 2.0, "fine_block": 1.5, "reframe": 0.0,
}  # fmt: skip


def _checks_table(
    con: duckdb.DuckDBPyConnection, cases: dict[str, dict[str, Any]], similarity: float = 0.95
) -> None:
    """`checks` (a copy's measurements, changed per case) and `images` of pairs NAME/a, NAME/b."""
    cols = list(COPY_MEASURES)
    con.execute(
        "CREATE TABLE checks (path_a VARCHAR, path_b VARCHAR, similarity DOUBLE, "
        "same_bytes BOOLEAN, "
        + ", ".join(f"{c} {'BOOLEAN' if c == 'flat' else 'DOUBLE'}" for c in cols)
        + ")"
    )
    images = {}
    for name, over in cases.items():
        m = {**COPY_MEASURES, **{k: v for k, v in over.items() if k in COPY_MEASURES}}
        con.execute(
            f"INSERT INTO checks VALUES (?, ?, ?, ?, {', '.join('?' for _ in cols)})",
            [f"{name}/a", f"{name}/b", over.get("similarity", similarity),
             over.get("same_bytes", False), *(m[c] for c in cols)],
        )  # fmt: skip
        images[f"{name}/a"] = {"sharp_512": over.get("sharp_a", -0.5),
                               "captured_at": over.get("taken_a")}  # fmt: skip
        images[f"{name}/b"] = {"sharp_512": -0.5, "captured_at": over.get("taken_b"),
                               "width": over.get("width_b", 640),
                               "height": over.get("height_b", 480)}  # fmt: skip
    _images(con, images)


def _relations(cases: dict[str, dict[str, Any]]) -> dict[str, str]:
    con = duckdb.connect()
    _checks_table(con, cases)
    rows = con.execute(rule_sql("relation"), params_for("relation", _params())).fetchall()
    return {r[1].split("/")[0]: r[4] for r in rows}


def test_relation_tells_copies_variants_similar_shots_and_strangers() -> None:
    got = _relations({
        "copy": {},
        "bytes": {"same_bytes": True, "mean_diff": None, "ncc": None},
        "burst": {"worst_block": 49.0, "block_ratio": 9.0, "mean_diff": 4.7, "ncc": 0.93},
        "bw": {"chroma_corr": 0.0, "saturation_ratio": 0.0},
        "graded": {"chroma_residual": 5.0, "worst_chroma_block": 14.0},
        "reframed": {"overlap": 0.6, "mean_diff": None, "ncc": 0.98},
        "darker": {"tone_shift": 90.0, "contrast_ratio": 0.26, "mean_diff": 0.5},
        "blurred": {"detail_ratio": 0.3, "mean_diff": 3.2, "worst_block": 8.0,
                    "blur_sigma": 1.2, "blur_diff": 1.0, "blur_worst_block": 3.0},
        "sharpened": {"sharp_a": 0.3},  # the 512 px analysis copies differ in detail
        "stranger": {"worst_block": 90.0, "block_ratio": 3.0, "mean_diff": 40.0, "ncc": 0.3},
        "dim-pair": {"worst_block": 30.0, "mean_diff": 12.0, "ncc": 0.7, "similarity": 0.78},
        "plain-same": {"flat": True, "raw_diff": 1.5},
        "plain-other": {"flat": True, "raw_diff": 30.0},
        "plain-reframed": {"flat": True, "raw_diff": 0.7, "width_b": 921, "height_b": 1102},
        "plain-crop": {"flat": True, "raw_diff": 0.3, "width_b": 620, "height_b": 470},
        "plain-retouched": {"flat": True, "raw_diff": 0.4, "fine_block": 16.0},  # pattern moved
        "plain-unread": {"flat": True, "raw_diff": 0.4, "fine_block": None},  # not looked at
        # a next frame with little motion: framed alike, a few windows apart at thumbnail size
        "next-frame": {"mean_diff": 2.7, "worst_block": 11.3, "fine_block": 5.2,
                       "reframe": 0.0015},
        # a crop of a fine texture aliases at thumbnail size; closer, it is the same
        "texture-crop": {"mean_diff": 2.7, "worst_block": 14.0, "fine_block": 0.6,
                         "reframe": 0.04},
        "moved": {"fine_block": 11.0},  # alike at thumbnail size, a subject moved seen closer
        "small": {"fine_block": None},  # files too small to look closer: the thumbnails decide
        # a fine texture aliases at thumbnail size after a small crop; closer, it is the same
        "texture": {"mean_diff": 3.2, "worst_block": 6.6, "fine_block": 0.8},
        "texture-small": {"mean_diff": 3.2, "worst_block": 6.6, "fine_block": None},
        # a burst of a still scene: alike to the pixel, but the camera took two shots
        "burst-still": {"taken_a": T0, "taken_b": T0 + timedelta(milliseconds=300)},
        "copy-same-time": {"taken_a": T0, "taken_b": T0},
        "copy-exif-gone": {"taken_a": T0},  # a messenger strips EXIF: the pixels decide
        "darker-later": {"tone_shift": 90.0, "contrast_ratio": 0.26, "mean_diff": 0.5,
                         "taken_a": T0, "taken_b": T0 + timedelta(seconds=2)},
        "bytes-other-time": {"same_bytes": True, "mean_diff": None, "ncc": None,
                             "taken_a": T0, "taken_b": T0 + timedelta(seconds=2)},
    })  # fmt: skip
    assert got == {
        "copy": "copy", "bytes": "copy", "burst": "similar", "bw": "similar",
        "graded": "similar", "reframed": "similar", "darker": "variant", "blurred": "variant",
        "sharpened": "variant", "stranger": "none", "dim-pair": "none",
        "plain-same": "copy", "plain-other": "none", "moved": "similar", "small": "copy",
        "plain-reframed": "similar", "plain-crop": "copy", "texture": "copy",
        "texture-small": "similar", "plain-retouched": "similar", "plain-unread": "similar",
        "next-frame": "similar", "texture-crop": "copy",
        "burst-still": "similar", "copy-same-time": "copy", "copy-exif-gone": "copy",
        "darker-later": "similar", "bytes-other-time": "copy",
    }  # fmt: skip


def test_two_shots_say_when_they_were_taken() -> None:
    con = duckdb.connect()
    _checks_table(con, {"burst": {"taken_a": T0, "taken_b": T0 + timedelta(milliseconds=250)}})
    row = con.execute(rule_sql("relation"), params_for("relation", _params())).fetchall()[0]
    assert row[4:6] == (
        "similar",
        "two shots: alike, but taken at 2024-06-01 09:30:00.000 and 2024-06-01 09:30:00.250 (EXIF)",
    )


# --- duplicate, near-duplicate and cluster edges --------------------------------------------


def test_duplicate_edges_are_byte_copies_and_pixel_copies_only() -> None:
    con = duckdb.connect()
    _images(con, {"a": {"sha256": "x"}, "a2": {"sha256": "x"}, "b": {}, "c": {}, "d": {},
                  "e": {}, "bad": {"is_valid": False}, "b.dng": {"sha256": "x"},
                  "a3": {"sha256": "x"}})  # fmt: skip
    _photos(con, {"b": [("b.dng", "raw")]})  # a photo's RAW is judged with its JPEG
    con.execute("INSERT INTO ungrouped VALUES ('a3')")  # a person said: do not group it
    _pair_checks(con, [("a", "b", 0.97, "copy"), ("a", "c", 0.99, "similar"),
                       ("b", "d", 0.93, "variant"), ("c", "e", 0.79, "copy")])  # fmt: skip
    con.execute("CREATE TABLE flags AS SELECT path, false AS dark, false AS bright, "
                "path = 'e' AS blurry FROM images")  # fmt: skip
    assert _run(con, "duplicate_edges", _params()) == [
        ("a", "a2", 1.0, "byte-identical"),
        ("a", "b", 0.97, "copy!"),
    ]  # c~e is below duplicate_similarity (0.80)
    low = _params(duplicate_similarity=0.75, near_duplicate_similarity=0.75)
    assert _run(con, "duplicate_edges", low) == [
        ("a", "a2", 1.0, "byte-identical"),
        ("a", "b", 0.97, "copy!"),
        ("c", "e", 0.79, "copy!"),  # a flag on one of them (e) does not matter: keeper.sql
    ]


def test_near_duplicate_and_cluster_edges_come_from_verified_relations() -> None:
    con = duckdb.connect()
    _pair_checks(con, [("a", "b", 0.97, "copy"), ("a", "c", 0.92, "similar"),
                       ("b", "d", 0.76, "variant"), ("c", "e", 0.9, "none"),
                       ("f", "g", 0.78, "similar")])  # fmt: skip
    con.execute("CREATE TABLE dup_edges AS SELECT 'a' AS path_a, 'b' AS path_b, 0.97 AS similarity")
    assert _run(con, "near_duplicate_edges", _params()) == [
        ("a", "c", 0.92, "similar!", "similar"),
        ("b", "d", 0.76, "variant!", "variant"),
        ("f", "g", 0.78, "similar!", "similar"),
    ]
    assert _run(con, "cluster_edges", _params()) == [
        ("a", "b", 0.97), ("a", "b", 0.97), ("a", "c", 0.92),
    ]  # fmt: skip


# --- per-image rules --------------------------------------------------------------------------


def test_dark_needs_no_upper_tones_and_compares_with_copies_only() -> None:
    con = duckdb.connect()
    _images(con, {
        "under": {"mean": 25.0, "p95": 48.0, "p99": 60.0, "max": 80.0},
        "night-sky": {"mean": 29.0, "p95": 58.0, "p99": 69.0, "max": 130.0},  # stars
        "low-key": {"mean": 45.0, "p95": 160.0, "p99": 220.0},
        "screenshot": {"mean": 30.0, "p95": 40.0, "p99": 50.0, "max": 60.0, "flat_share": 0.8},
        "darker-copy": {"mean": 70.0, "p95": 95.0, "p99": 120.0},
        "its-original": {"mean": 130.0, "p95": 230.0},
        "dim-burst": {"mean": 70.0, "p95": 95.0, "p99": 120.0},
        "bright-burst": {"mean": 130.0, "p95": 230.0},
    })  # fmt: skip
    _pair_checks(con, [("darker-copy", "its-original", 0.8, "variant"),
                       ("bright-burst", "dim-burst", 0.9, "similar")])  # fmt: skip
    rows = _run(con, "dark", _params())
    assert [(p, s) for p, s, _ in rows] == [("darker-copy", 120.0), ("under", 60.0)]
    assert rows[0][2] == "dark: 60 levels darker than its copy its-original (p95 95)"
    assert rows[1][2] == "dark: 99% of pixels below 61 of 255 (mean 25)"


def test_bright_is_blown_highlights_not_a_bright_scene() -> None:
    con = duckdb.connect()
    _images(con, {
        "burnt": {"mean": 200.0, "clipped_bright": 0.55, "highlights": 0.5},
        "washed-out": {"mean": 243.0, "clipped_bright": 0.2, "highlights": 0.9},
        "snow": {"mean": 205.0, "clipped_bright": 0.08, "highlights": 0.7},
        "sunset": {"mean": 120.0, "clipped_bright": 0.35, "highlights": 0.2},
        "white-graphic": {"mean": 240.0, "clipped_bright": 0.9, "highlights": 0.95,
                          "flat_share": 0.9},
    })  # fmt: skip
    _pair_checks(con, [])
    rows = _run(con, "bright", _params())
    assert [(p, s) for p, s, _ in rows] == [("burnt", 200.0), ("washed-out", 243.0)]
    assert rows[1][2] == "bright: 20% of pixels blown out, 90% in the top tones (mean 243)"


def test_blurry_compares_detail_with_copies_of_the_picture_only() -> None:
    con = duckdb.connect()
    _images(con, {
        "soft": {"sharpness": -2.6, "sharp_512": -2.6, "sharp_256": -2.4, "sharp_128": -2.1},
        "blurred-copy": {"sharpness": -1.8, "sharp_512": -1.8, "sharp_256": -1.6,
                         "sharp_128": -1.5},
        "its-original": {"sharpness": -0.5, "sharp_512": -0.5},
        "plain-burst": {"sharpness": -1.8, "sharp_512": -1.8, "sharp_256": -1.6,
                        "sharp_128": -1.5},
        "busy-burst": {"sharpness": -0.5, "sharp_512": -0.5},
        "render": {"sharpness": -3.0, "flat_share": 0.6},
    })  # fmt: skip
    _pair_checks(con, [("blurred-copy", "its-original", 0.9, "variant"),
                       ("busy-burst", "plain-burst", 0.9, "similar")])  # fmt: skip
    rows = _run(con, "blurry", _params())
    assert [p for p, _, _ in rows] == ["blurred-copy", "soft"]
    assert rows[0][2] == "blurry: 20.0x less detail than its copy its-original"


def test_unsupported_is_not_invalid_and_never_planned() -> None:
    con = duckdb.connect()
    _images(con, {
        "a.dng": {"is_valid": False, "unsupported": True, "error": "unsupported format: DNG"},
        "cut.jpg": {"is_valid": False, "error": "truncated: no end-of-image marker"},
        "ok.jpg": {},
    })  # fmt: skip
    assert _run(con, "unsupported", _params()) == [("a.dng", None, "unsupported format: DNG")]
    assert _run(con, "invalid", _params()) == [
        ("cut.jpg", None, "truncated: no end-of-image marker")
    ]
    con.execute(
        "CREATE TABLE raw_findings AS SELECT * FROM (VALUES "
        "('a.dng', 'unsupported', NULL, NULL, NULL, 'unsupported format: DNG'), "
        "('a.dng', 'outlier', 0.3, NULL, NULL, 'outlier'), "
        "('cut.jpg', 'invalid', NULL, NULL, NULL, 'truncated')) "
        "t(path, kind, score, group_id, is_keeper, reason)"
    )
    con.execute("CREATE TABLE protected (path VARCHAR)")
    _photos(con, {})
    params = _params()
    params["act_on"] = ["invalid", "outlier", "duplicate"]
    plan = {(r[1], r[2]): r[6] for r in _run(con, "plan", params)}
    assert plan == {("a.dng", "outlier"): "review", ("a.dng", "unsupported"): "review",
                    ("cut.jpg", "invalid"): "quarantine"}  # fmt: skip


# --- best shot --------------------------------------------------------------------------------


@pytest.fixture
def shots() -> duckdb.DuckDBPyConnection:
    con = duckdb.connect()
    _images(con, {
        "sharp": {"sharp_256": -0.4, "width": 800, "height": 600},
        "soft": {"sharp_256": -0.9, "width": 1600, "height": 1200},
        "blown": {"sharp_256": -0.3, "clipped_bright": 0.4},
        "sharp-copy": {"sharp_256": -0.2, "width": 400, "height": 300},
    })  # fmt: skip
    con.execute("CREATE TABLE members AS SELECT 'g' AS group_id, path, NULL::DOUBLE AS score "
                "FROM images")  # fmt: skip
    con.execute("CREATE TABLE flags AS SELECT path, false AS dark, path = 'blown' AS bright, "
                "false AS blurry FROM images")  # fmt: skip
    con.execute("CREATE TABLE pic AS SELECT * FROM (VALUES ('sharp', 'sharp'), "
                "('sharp-copy', 'sharp')) t(path, picture)")  # fmt: skip
    con.execute("CREATE TABLE dup_order AS SELECT 'sharp' AS path, 1 AS rank")
    con.execute("CREATE TABLE evidence AS SELECT 'sharp' AS path_a, 'soft' AS path_b, "
                "'a local change: worst block 49.0' AS evidence")  # fmt: skip
    return con


def test_best_shot_is_the_sharpest_well_exposed_picture_and_says_why(
    shots: duckdb.DuckDBPyConnection,
) -> None:
    rows = {r[1]: (r[4], r[7]) for r in _run(shots, "best_shot", _params())}
    assert rows["sharp"][0] is True
    assert rows["sharp"][1].startswith("best shot of 4 similar shots (no defect, sharpness -0.40")
    assert rows["soft"] == (False, "similar shot of sharp (a local change: worst block 49.0); "
                            "the best shot is sharp: it is sharper (-0.40 vs -0.90)")  # fmt: skip
    assert rows["blown"] == (False, "similar shot of sharp (the same scene); the best shot is "
                             "sharp: this one is flagged dark, bright or blurry")  # fmt: skip
    # the copy is sharper at 256 px, but it is a copy of the best picture, not another shot
    assert rows["sharp-copy"] == (False, "copy of the best shot sharp (see its duplicate group)")


def _keeper_group(
    con: duckdb.DuckDBPyConnection,
    bright: str | None = None,
    evidence: tuple[str, str, str] | None = None,
    sets: dict[str, list[tuple[str, str]]] | None = None,
) -> None:
    """What keeper.sql reads for one group of all `images`: no preferred folder, `bright` the
    only flagged file, the pixel `evidence` (path_a, path_b, what they showed) of one pair,
    the photos `sets`."""
    con.execute("CREATE TABLE members AS SELECT 'g' AS group_id, path, 0.99::DOUBLE AS score "
                "FROM images")  # fmt: skip
    con.execute("CREATE TABLE prefs AS SELECT path, false AS preferred FROM images")
    con.execute("CREATE TABLE flags AS SELECT path, false AS dark, "
                "coalesce(path = $b, false) AS bright, false AS blurry FROM images",
                {"b": bright})  # fmt: skip
    con.execute("CREATE TABLE evidence (path_a VARCHAR, path_b VARCHAR, evidence VARCHAR)")
    if evidence:
        con.execute("INSERT INTO evidence VALUES (?, ?, ?)", list(evidence))
    _photos(con, sets or {})


def test_keeper_prefers_an_unflagged_copy_and_names_the_pixel_evidence() -> None:
    con = duckdb.connect()
    _images(con, {"orig.jpg": {"width": 800, "height": 600},
                  "brighter.jpg": {"width": 1600, "height": 1200}})  # fmt: skip
    _keeper_group(con, "brighter.jpg", ("brighter.jpg", "orig.jpg", "same picture: mean diff 0.7"))
    rows = {r[1]: (r[4], r[7]) for r in _run(con, "keeper", _params())}
    assert rows["orig.jpg"][0] is True  # fewer pixels, but the other copy is flagged bright
    reason = "copy of orig.jpg (same picture: mean diff 0.7), kept because it is not flagged"
    assert rows["brighter.jpg"] == (False, reason + " dark, bright or blurry")


def test_keeper_does_not_prefer_a_copy_that_was_not_judged() -> None:
    """A mildly darkened copy of a white-background photo looks like a graphic (its background
    is no longer clipped but flat), so no rule judged it: the flagged original stays."""
    con = duckdb.connect()
    _images(con, {"orig.jpg": {"mtime": datetime(2024, 1, 1)},
                  "fixed.jpg": {"flat_share": 0.49, "mtime": datetime(2024, 2, 1)}})  # fmt: skip
    _keeper_group(con, "orig.jpg", ("fixed.jpg", "orig.jpg", "same picture: mean diff 0.5"))
    rows = {r[1]: (r[4], r[7]) for r in _run(con, "keeper", _params())}
    assert rows == {
        "orig.jpg": (True, "keeper of 2: 640x480, 1000 bytes"),
        "fixed.jpg": (False, "copy of orig.jpg (same picture: mean diff 0.5), kept because it "
                             "is the earlier file"),
    }  # fmt: skip


def test_keeper_is_the_photo_with_the_raw_original() -> None:
    """Two copies of one picture, one of them the JPEG of a RAW + JPEG pair: that photo stays
    (with its RAW), although the other copy has more pixels."""
    con = duckdb.connect()
    _images(con, {"Camera/IMG_1.JPG": {"width": 800, "height": 600},
                  "Export/IMG_1.jpg": {"width": 1600, "height": 1200}})  # fmt: skip
    _keeper_group(con, sets={"Camera/IMG_1.JPG": [("Camera/IMG_1.CR2", "raw")]})
    rows = {r[1]: (r[4], r[7]) for r in _run(con, "keeper", _params())}
    assert rows["Camera/IMG_1.JPG"][0] is True
    assert rows["Export/IMG_1.jpg"] == (
        False, "copy of Camera/IMG_1.JPG (the same picture), kept because it is the photo with "
               "the RAW original (Camera/IMG_1.CR2)",
    )  # fmt: skip


def test_a_photo_is_planned_whole_by_its_primary_file() -> None:
    """The plan acts on a photo for what its primary file shows; its other files follow it
    and are never acted on alone; one unreadable or protected file holds the whole photo."""
    con = duckdb.connect()
    _images(con, {p: {} for p in ("a.jpg", "a.cr2", "b.jpg", "b.dng", "c.jpg", "k.jpg")})
    con.execute(
        "CREATE TABLE raw_findings AS SELECT * FROM (VALUES "
        "('a.jpg', 'duplicate', 0.99, 'g', false, 'copy of k.jpg'), "
        "('a.cr2', 'invalid', NULL, NULL, NULL, 'corrupt'), "  # follows its photo's action
        "('b.jpg', 'duplicate', 0.99, 'g', false, 'copy of k.jpg'), "
        "('b.dng', 'unsupported', NULL, NULL, NULL, 'unsupported format: DNG'), "
        "('c.jpg', 'duplicate', 0.99, 'g', false, 'copy of k.jpg'), "
        "('k.jpg', 'duplicate', 0.99, 'g', true, 'keeper of 4')) "
        "t(path, kind, score, group_id, is_keeper, reason)"
    )
    _photos(con, {"a.jpg": [("a.cr2", "raw"), ("a.xmp", "sidecar")],
                  "b.jpg": [("b.dng", "raw")],
                  "c.jpg": [("Keep/c.xmp", "sidecar")]})  # fmt: skip
    con.execute("CREATE TABLE protected AS SELECT 'Keep/c.xmp' AS path")
    params = _params()
    params["act_on"] = ["invalid", "duplicate"]
    plan = {r[1]: (r[6], r[7]) for r in _run(con, "plan", params)}
    assert plan == {
        "a.jpg": ("quarantine", "copy of k.jpg [one photo with a.cr2, a.xmp]"),
        "a.cr2": ("quarantine", "corrupt"),
        "b.jpg": ("review", "copy of k.jpg [one photo with b.dng]"),
        "b.dng": ("review", "unsupported format: DNG"),
        "c.jpg": ("keep", "copy of k.jpg [protected folder: never touched] [one photo with c.xmp]"),
        "k.jpg": ("keep", "keeper of 4"),
    }


def test_a_persons_decision_overrides_the_rules() -> None:
    """keep: never planned, whatever the rules say; remove: a flagged photo the rules left for
    review is planned; neither touches a keeper; the reason names the decision."""
    con = duckdb.connect()
    _images(con, {p: {} for p in ("a.jpg", "b.jpg", "k.jpg", "n.jpg", "q.jpg")})
    con.execute(
        "CREATE TABLE raw_findings AS SELECT * FROM (VALUES "
        "('a.jpg', 'duplicate', 0.99, 'g', false, 'copy of k.jpg'), "
        "('k.jpg', 'duplicate', 0.99, 'g', true, 'keeper of 2'), "
        "('n.jpg', 'near_duplicate', 0.9, 'h', false, 'similar shot of q.jpg'), "
        "('q.jpg', 'near_duplicate', 0.9, 'h', true, 'best shot of 2')) "
        "t(path, kind, score, group_id, is_keeper, reason)"
    )
    con.execute(
        "CREATE TABLE decided AS SELECT * FROM (VALUES ('d1', 'keep', NULL, 'a.jpg'), "
        "('d2', 'remove', NULL, 'n.jpg'), ('d3', 'remove', NULL, 'k.jpg'), "
        "('d4', 'remove', NULL, 'b.jpg')) t(decision_id, verdict, kind, path)"
    )
    con.execute("CREATE TABLE protected (path VARCHAR)")
    _photos(con, {})
    params = _params()
    params["act_on"] = ["duplicate"]
    plan = {r[1]: (r[6], r[7]) for r in _run(con, "plan", params)}
    assert plan == {
        "a.jpg": ("keep", "copy of k.jpg [decision d1: keep]"),
        "k.jpg": ("keep", "keeper of 2"),
        "n.jpg": ("quarantine", "similar shot of q.jpg [decision d2: remove]"),
        "q.jpg": ("keep", "best shot of 2"),
    }  # b.jpg has no finding: a remove decision alone plans nothing
