"""The whole flow on real photos with planted defects, against a real Prefect server."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import duckdb
import pytest
from PIL import Image

from photo_curate.evaluate import evaluate
from photo_curate.home import Home
from photo_curate.sample import bundled_photos
from tests.conftest import tree_digest

pytestmark = pytest.mark.slow
DUCKDB_CLI = Path(sys.executable).parent / "duckdb"


@pytest.fixture(scope="module")
def sample_run(sample: tuple[Path, Path], tmp_path_factory: pytest.TempPathFactory, prefect_server):
    from flows.curate import curate

    photos, truth = sample
    before = tree_digest(photos)
    home = tmp_path_factory.mktemp("home")
    result = curate(source=str(photos), home=str(home))
    return photos, truth, Home(home), result, before


def test_run_completes_and_scores_on_planted_defects(sample_run) -> None:
    _photos, truth, home, result, _ = sample_run
    assert result["status"] == "completed"
    assert result["validation"]["success"], result["validation"]["failed"]
    ev = evaluate(home, result["run_id"], truth)
    scores = {s.kind: s for s in ev["scores"]}
    assert scores["invalid"].recall == 1.0 and scores["invalid"].precision == 1.0
    assert scores["duplicate pairs"].precision >= 0.95
    assert scores["duplicate pairs"].recall >= 0.90
    for kind in ("dark", "bright", "blurry"):  # 3-4 planted each in this small sample
        assert scores[kind].recall >= 0.66, kind
        assert scores[kind].precision >= 0.66, kind
    assert ev["bad_keepers"] == []
    assert ev["wrongly_planned"] == []


def test_dry_run_touches_nothing_and_accounts_for_every_file(sample_run) -> None:
    photos, _truth, home, result, before = sample_run
    assert tree_digest(photos) == before
    con = duckdb.connect()
    n_rows = con.execute(
        "SELECT count(*) FROM read_parquet($p) WHERE entry_type = 'file'",
        {"p": str(home.table_file("files", result["run_id"]))},
    ).fetchall()[0][0]
    assert n_rows == len(before)
    assert result["summary"]["files"] == len(before)


def test_catalog_opens_in_the_pip_duckdb_cli(sample_run) -> None:
    _photos, _truth, home, _result, _ = sample_run
    out = subprocess.run(
        [str(DUCKDB_CLI), "-readonly", "-csv", str(home.catalog), "-c",
         "SELECT status, n_files, n_images, n_invalid FROM runs; "
         "SELECT count(*) AS k FROM findings WHERE kind = 'duplicate' AND is_keeper; "
         "SELECT count(DISTINCT group_id) AS g FROM findings WHERE kind = 'duplicate';"],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    lines = out.stdout.split()
    assert "completed" in out.stdout
    keepers, groups = int(lines[-3]), int(lines[-1])
    assert keepers == groups > 0
    cols = subprocess.run(
        [str(DUCKDB_CLI), "-readonly", "-csv", str(home.catalog), "-c",
         "SELECT column_name FROM information_schema.columns WHERE table_name = 'images'"],
        capture_output=True, text=True, check=True,
    ).stdout.split()  # fmt: skip
    wanted = [
        "run_id", "path", "sha256", "size_bytes", "width", "height", "format", "is_valid",
        "error", "blur", "mean", "min", "max", "stdv", "captured_at",
    ]  # fmt: skip
    assert set(wanted) <= set(cols)


def test_report_has_sections_and_thumbnails(sample_run) -> None:
    _photos, _truth, _home, result, _ = sample_run
    html = Path(result["report"]).read_text()
    for section in ("Duplicates", "Near duplicates", "Dark", "Blurry", "Invalid", "Plan"):
        assert f">{section}" in html or section in html
    assert "keeper" in html and "<img" in html
    assert "truncated" in html  # the reason of an invalid file


def test_empty_folder_completes(run_flow, tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    res = run_flow(tmp_path / "empty", tmp_path / "home")
    assert res["status"] == "completed"
    assert res["summary"]["files"] == 0


def test_only_broken_files_and_a_single_photo(run_flow, tmp_path: Path) -> None:
    src = tmp_path / "src"
    src.mkdir()
    (src / "empty.jpg").write_bytes(b"")
    (src / "junk.png").write_bytes(b"\x89PNG garbage")
    res = run_flow(src, tmp_path / "home1")
    assert res["status"] == "completed"
    assert res["summary"]["kinds"]["invalid"]["files"] == 2
    assert "skipped" in res["fastdup"]
    Image.open(bundled_photos()[0]).convert("RGB").save(src / "one photo.jpg")
    res = run_flow(src, tmp_path / "home2")
    assert res["status"] == "completed" and res["summary"]["valid"] == 1


def test_catalog_held_open_does_not_block_a_run(run_flow, collection: Path, tmp_path: Path) -> None:
    home = tmp_path / "home"
    run_flow(collection, home)
    holder = subprocess.Popen(
        [str(DUCKDB_CLI), "-readonly", str(home / "catalog.duckdb")],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        holder.stdin.write("SELECT count(*) FROM runs;\n")
        holder.stdin.flush()
        res = run_flow(collection, home)
        assert res["status"] == "completed"
        holder.stdin.write("SELECT count(*) AS n FROM runs;\n.quit\n")
        out, _ = holder.communicate(timeout=30)
        assert "2" in out  # the open shell sees the second run too (views over Parquet)
    finally:
        if holder.poll() is None:
            holder.kill()
    shutil.rmtree(home)


def test_report_escapes_names_and_rebuilds_identically(run_flow, collection: Path, tmp_path):
    from photo_curate.report import build_report

    evil = collection / "Downloads" / "<img src=x onerror=alert(1)>.jpg"
    evil.write_bytes(b"")  # an invalid file: listed by name in the report
    home = Home(tmp_path / "home")
    res = run_flow(collection, home.root)
    html = Path(res["report"]).read_text()
    assert "<img src=x onerror" not in html
    assert "&lt;img src=x onerror=alert(1)&gt;.jpg" in html
    again = build_report(home, res["run_id"]).read_text()
    assert again == html
