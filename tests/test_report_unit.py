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


def _table(con: duckdb.DuckDBPyConnection, home, table: str, run_id: str, n: int, **cols) -> None:
    """The run's Parquet file of `table` with `n` rows: `cols` as SQL over range's `i`, the
    other columns NULL."""
    from photo_curate.schema import TABLES
    from photo_curate.tableio import copy_to_table

    exprs = {"run_id": "$run_id", **cols}
    select = ", ".join(
        f'CAST({exprs.get(name, "NULL")} AS {typ}) AS "{name}"' for name, typ in TABLES[table]
    )
    copy_to_table(con, home, table, run_id, f"SELECT {select} FROM range({n}) t(i)",
                  {"run_id": run_id})  # fmt: skip


def test_report_of_100000_images_stays_small_with_contents_and_folding(tmp_path) -> None:
    """A run of 100,000 images with 20,000 duplicate groups and 80,000 planned files: the
    report is a static page of bounded size (capped sections), a table of contents whose links
    all land on a section, every section but the summary folded, no script."""
    import re

    from photo_curate.home import Home
    from photo_curate.report import CAP_GROUPS, CAP_IMAGES, CAP_MEMBERS, build_report
    from photo_curate.runs import write_run

    home = Home(tmp_path / "home").ensure()
    run_id, n = "20260101T000000-big0", 100_000
    write_run(home, {"run_id": run_id, "status": "completed", "source": str(tmp_path / "src")})
    con = duckdb.connect()
    path = "printf('DCIM/%03d/IMG_%06d.jpg', i // 1000, i)"
    _table(con, home, "files", run_id, n, path=path, entry_type="'file'", status="'image'")
    _table(con, home, "images", run_id, n, path=path, sha256="md5(i::VARCHAR) || md5(i::VARCHAR)",
           size_bytes="2500000 + i", width="4000", height="3000", is_valid="true",
           mean="i % 255", p95="(i * 7) % 255", sharpness="-3 + (i % 40) / 10")  # fmt: skip
    _table(con, home, "findings", run_id, n, path=path,
           kind="CASE WHEN i < 99000 THEN 'duplicate' ELSE 'dark' END",
           group_id="CASE WHEN i < 99000 THEN 'g' || (i // 5) END", is_keeper="i % 5 = 0",
           action="CASE WHEN i % 5 = 0 THEN 'keep' ELSE 'quarantine' END",
           score="i % 100", reason="'copy of the keeper'")  # fmt: skip
    _table(con, home, "plan", run_id, 80_000, path=path, action="'quarantine'",
           kinds="'duplicate'", size_bytes="2500000")  # fmt: skip
    _table(con, home, "clusters", run_id, 5_000, path=path, cluster_id="'c' || (i // 50)",
           size="50")  # fmt: skip
    html = build_report(home, run_id).read_text(encoding="utf-8")

    assert len(html.encode()) < 1_500_000, len(html)
    cards = html.count('<div class="card')
    assert cards <= 2 * CAP_GROUPS * (CAP_MEMBERS + 1) + 4 * CAP_IMAGES + CAP_GROUPS * 7
    assert html.count("<tr><td>DCIM/") <= 4 * CAP_IMAGES + CAP_IMAGES  # plan and invalid rows
    assert "<script" not in html and "Content-Security-Policy" in html
    assert "default-src 'none'" in html
    toc = re.search(r'<nav class="toc".*?</nav>', html, re.S).group(0)
    links = re.findall(r'href="#([^"]+)"', toc)
    sections = dict(re.findall(r'<details class="section" id="([^"]+)"( open)?>', html))
    assert links and set(links) <= set(sections), (links, sections)
    assert {s for s, is_open in sections.items() if is_open} == {"summary"}
    assert "80000 files, 186 GiB" in toc  # the plan with its size, as a person reads it
    assert "19800 groups" in toc
