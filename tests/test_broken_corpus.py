"""Pillow's own test images (about 1,000 odd and broken files in 40+ formats): a run over
them completes, accounts for every file and says why each invalid one is invalid."""

from __future__ import annotations

import os
import subprocess
import sys
import tarfile
from pathlib import Path

import duckdb
import pytest

from photo_curate.home import Home
from tests.conftest import tree_digest

pytestmark = pytest.mark.slow
CACHE = Path(__file__).resolve().parent / ".cache"


@pytest.fixture(scope="module")
def corpus() -> Path:
    """Tests/images of Pillow's source distribution (fetched once with pip, cached)."""
    target = CACHE / "pillow-images"
    if not target.exists():
        CACHE.mkdir(exist_ok=True)
        subprocess.run(
            [sys.executable, "-m", "pip", "download", "--no-binary", ":all:", "--no-deps",
             "--quiet", "pillow==10.3.0", "-d", str(CACHE)],
            check=True, timeout=600,
        )  # fmt: skip
        with tarfile.open(next(CACHE.glob("pillow-10.3.0.tar.gz"))) as tar:
            members = [m for m in tar.getmembers() if "/Tests/images/" in m.name and m.isfile()]
            tar.extractall(CACHE / "x", members=members, filter="data")
        (CACHE / "x" / "pillow-10.3.0" / "Tests" / "images").rename(target)
    return target


def test_every_broken_file_is_accounted_for(run_flow, corpus: Path, tmp_path: Path) -> None:
    on_disk = sum(len(files) for _d, _s, files in os.walk(corpus))
    assert on_disk > 900
    home = Home(tmp_path / "home")
    before = tree_digest(corpus)
    res = run_flow(corpus, home.root)
    assert tree_digest(corpus) == before  # read, never changed
    assert res["status"] == "completed", res["validation"]["failed"]
    con = duckdb.connect()
    files = str(home.table_file("files", res["run_id"]))
    images = str(home.table_file("images", res["run_id"]))
    n_rows, unexplained = con.execute(
        "SELECT count(*), count(*) FILTER (WHERE status = 'skipped' AND reason IS NULL) "
        "FROM read_parquet($f) WHERE entry_type = 'file'",
        {"f": files},
    ).fetchall()[0]
    assert n_rows == on_disk and unexplained == 0
    n_images, n_invalid, no_reason = con.execute(
        "SELECT count(*), count(*) FILTER (WHERE NOT is_valid), "
        "count(*) FILTER (WHERE NOT is_valid AND error IS NULL) FROM read_parquet($i)",
        {"i": images},
    ).fetchall()[0]
    assert n_images > 700 and n_invalid > 50 and no_reason == 0
    truncated = {
        r[0] for r in con.execute(
            "SELECT path FROM read_parquet($i) WHERE error LIKE 'truncated%'", {"i": images}
        ).fetchall()
    }  # fmt: skip
    assert {"truncated_jpeg.jpg", "truncated_image.png"} <= truncated
    # decompression bombs and absurd dimensions are refused from the header, never decoded
    bombs = dict(
        con.execute(
            "SELECT path, error FROM read_parquet($i) WHERE path IN ('decompression_bomb.gif', "
            "'decompression_bomb.ico', 'bmp/b/reallybig.bmp', 'bmp/b/badwidth.bmp')",
            {"i": images},
        ).fetchall()
    )
    assert len(bombs) == 4 and all(e.startswith("too large: Image size") for e in bombs.values())
