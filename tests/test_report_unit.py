"""Report pieces that need no run: the histograms are counted by DuckDB."""

from __future__ import annotations

import duckdb

from photo_curate.report import _histogram, svg_histogram


def test_histogram_counts_every_finite_value_of_valid_images_once() -> None:
    con = duckdb.connect()
    con.execute(
        "CREATE TABLE images AS SELECT * FROM (VALUES "
        "(true, -10.0), (true, 0.0), (true, 127.5), (true, 254.9), (true, 255.0), (true, 900.0),"
        "(true, NULL), (true, 'nan'::DOUBLE), (false, 100.0)) t(is_valid, mean)"
    )
    counts = _histogram(con, "mean", 0, 255, bins=10)
    assert sum(counts) == 6  # NULL, NaN and the invalid image are left out
    assert counts[0] == 2 and counts[5] == 1 and counts[9] == 3  # out of range: clamped


def test_svg_marks_thresholds() -> None:
    svg = svg_histogram([1, 0, 3], 0, 255, [(50.0, "dark below")], "p95")
    assert svg.count("<rect") == 3 and "dark below" in svg and svg.startswith("<svg")
