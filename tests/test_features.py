"""The fastdup feature cache: vectors by content hash in, fastdup's feature files out."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from photo_curate import db
from photo_curate.features import DIM, FeatureCache
from photo_curate.home import Home
from photo_curate.tableio import RowWriter
from photo_curate.vectors import contents_sql, write_vectors


def _images_table(home: Home, run_id: str, rows: list[tuple[str, str, bool, int | None]]) -> Path:
    """A minimal `images` file: (path, sha256, is_valid, analysis_id)."""
    with RowWriter(home, "images", run_id) as out:
        for path, sha, ok, ident in rows:
            out.add({"run_id": run_id, "path": path, "sha256": sha, "is_valid": ok,
                     "analysis_id": ident})  # fmt: skip
    return home.table_file("images", run_id)


def test_feature_cache_keeps_one_vector_per_content_and_the_vector_file_one_row(tmp_path):
    """fastdup's feature files in its row order -> cache by sha256 -> the run's vector file:
    one normalised row per content, in sha256 order."""
    home = Home(tmp_path / "home")
    cache = FeatureCache(tmp_path / "cache")
    images = _images_table(
        home, "r1",
        [("a.jpg", "sb", True, 0), ("b.jpg", "sa", True, 1), ("c.jpg", "sb", True, 2),
         ("d.jpg", "sd", False, None)],
    )  # fmt: skip
    vec = {i: np.arange(DIM, dtype="<f4") * (i + 1) + i for i in range(3)}
    work = tmp_path / "fd"
    work.mkdir()
    order = [2, 0, 1]  # fastdup's rows are not in input order
    (work / "atrain_features.dat.csv").write_text(
        "index,filename\n" + "".join(f"{k},/x/ana/{i:08d}.jpg\n" for k, i in enumerate(order))
    )
    np.stack([vec[i] for i in order]).tofile(work / "atrain_features.dat")
    assert cache.store(work, images, "r1") == 2  # a.jpg and c.jpg share one content
    assert cache.store(work, images, "r2") == 0  # nothing new the second time

    con = db.connect(home)
    con.execute(f"CREATE TABLE contents AS {contents_sql(images, cache)}")
    assert con.execute("SELECT row, sha256 FROM contents ORDER BY row").fetchall() == [
        (0, "sa"), (1, "sb")
    ]  # fmt: skip
    vf = write_vectors(con, "contents", cache, tmp_path / "v.f32")
    assert (tmp_path / "v.f32").stat().st_size == 2 * DIM * 4
    got = vf.block(0, 2)
    assert np.allclose(np.linalg.norm(got, axis=1), 1.0, atol=1e-6)
    assert np.allclose(got[0], vec[1] / np.linalg.norm(vec[1]), atol=1e-6)  # b.jpg: "sa"
    assert np.array_equal(vf.take(np.array([1, 0, 1])), got[[1, 0, 1]])
