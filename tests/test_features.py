"""The fastdup feature cache: vectors by content hash in, fastdup's feature files out."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from photo_curate.features import DIM, FeatureCache
from photo_curate.home import Home
from photo_curate.tableio import RowWriter


def _images_table(home: Home, run_id: str, rows: list[tuple[str, str, bool, int | None]]) -> Path:
    """A minimal `images` file: (path, sha256, is_valid, analysis_id)."""
    with RowWriter(home, "images", run_id) as out:
        for path, sha, ok, ident in rows:
            out.add({"run_id": run_id, "path": path, "sha256": sha, "is_valid": ok,
                     "analysis_id": ident})  # fmt: skip
    return home.table_file("images", run_id)


def test_feature_cache_keeps_one_vector_per_content_and_writes_fastdup_files(tmp_path):
    """fastdup's feature files in its row order -> cache by sha256 -> graph input by path."""
    home = Home(tmp_path / "home")
    cache = FeatureCache(tmp_path / "cache")
    images = _images_table(
        home, "r1",
        [("a.jpg", "sa", True, 0), ("b.jpg", "sb", True, 1), ("c.jpg", "sa", True, 2),
         ("d.jpg", "sd", False, None)],
    )  # fmt: skip
    vec = {i: np.full(DIM, i + 0.5, dtype="<f4") for i in range(3)}
    work = tmp_path / "fd"
    work.mkdir()
    order = [2, 0, 1]  # fastdup's rows are not in input order
    (work / "atrain_features.dat.csv").write_text(
        "index,filename\n" + "".join(f"{k},/x/ana/{i:08d}.jpg\n" for k, i in enumerate(order))
    )
    np.stack([vec[i] for i in order]).tofile(work / "atrain_features.dat")
    assert cache.store(work, images, "r1") == 2  # a.jpg and c.jpg share one content
    assert cache.store(work, images, "r2") == 0  # nothing new the second time

    out = tmp_path / "graph"
    assert cache.write_graph_input(images, tmp_path / "ana", out) == 3
    names = (out / "atrain_features.dat.csv").read_text().splitlines()
    assert names == ["index,filename"] + [f"{k},{tmp_path / 'ana'}/{k:08d}.jpg" for k in range(3)]
    got = np.fromfile(out / "atrain_features.dat", dtype="<f4").reshape(-1, DIM)
    assert np.array_equal(got[1], vec[1])
    assert np.array_equal(got[0], got[2])  # the same content, the same vector
    assert got[0][0] in (vec[0][0], vec[2][0])
