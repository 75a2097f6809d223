"""The neighbour graph on fastdup's real vectors: exact, incremental, thread-count independent."""

from __future__ import annotations

import hashlib
import json
import random
import subprocess
import sys
from pathlib import Path

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from PIL import Image
from threadpoolctl import threadpool_limits

import photo_curate.neighbours as nb
import tasks.neighbours as tn
from photo_curate import db
from photo_curate.features import DIM, FeatureCache
from photo_curate.graph_state import CONTENTS, LISTS, ListWriter, state_dir, write_meta
from photo_curate.home import Home
from photo_curate.neighbours import SCALE, GraphSpec, Lists
from photo_curate.sample import bundled_photos
from photo_curate.tableio import RowWriter
from photo_curate.vectors import normalise
from tasks.neighbours import build_neighbours
from tasks.parse import PairSpec, parse_outputs

SPEC = GraphSpec(k=10, extra=10)


@pytest.fixture(scope="module")
def real_vectors(tmp_path_factory: pytest.TempPathFactory) -> dict[str, np.ndarray]:
    """sha256 -> fastdup's vector of ~260 distinct crops of the bundled photos, plus three
    files whose pixels equal another's (bytes appended after the JPEG's end: other content,
    the same vector)."""
    root = tmp_path_factory.mktemp("crops")
    rng = random.Random(5)
    files = []
    for j, src in enumerate(bundled_photos()):
        with Image.open(src) as im:
            rgb = im.convert("RGB")
        w, h = rgb.size
        for i in range(24):
            cw, ch = int(w * rng.uniform(0.35, 0.95)), int(h * rng.uniform(0.35, 0.95))
            x, y = rng.randint(0, w - cw), rng.randint(0, h - ch)
            crop = rgb.crop((x, y, x + cw, y + ch))
            crop.thumbnail((224, 224))
            files.append(root / f"{j:02d}_{i:02d}.jpg")
            crop.save(files[-1], quality=rng.randint(70, 95))
    for i, f in enumerate(files[:3]):
        twin = root / f"twin_{i}.jpg"
        twin.write_bytes(f.read_bytes() + b"\0twin")
        files.append(twin)
    (root / "list.txt").write_text("".join(f"{f}\n" for f in files))
    spec = {"input_list": str(root / "list.txt"), "work_dir": str(root / "fd"), "threads": 4,
            "run_mode": 1}  # fmt: skip
    (root / "spec.json").write_text(json.dumps(spec))
    subprocess.run(
        [sys.executable, "-m", "photo_curate.fastdup_child", str(root / "spec.json")],
        check=True, capture_output=True, timeout=600,
    )  # fmt: skip
    names = (root / "fd" / "atrain_features.dat.csv").read_text().splitlines()[1:]
    feats = np.fromfile(root / "fd" / "atrain_features.dat", dtype="<f4").reshape(-1, DIM)
    out = {}
    for line, vec in zip(names, feats, strict=True):
        path = Path(line.split(",", 1)[1])
        out[hashlib.sha256(path.read_bytes()).hexdigest()] = vec
    assert len(out) == len(files)
    return out


def _setup(tmp_path: Path, vectors: dict[str, np.ndarray]) -> tuple[Home, FeatureCache]:
    home = Home(tmp_path / "home").ensure()
    cache = FeatureCache(home.root / "cache" / "features" / "k")
    cache.folder.mkdir(parents=True)
    shas = sorted(vectors)
    feats = np.stack([vectors[s] for s in shas]).astype(np.float32)
    column = pa.FixedSizeListArray.from_arrays(pa.array(feats.ravel()), DIM)
    pq.write_table(pa.table({"sha256": shas, "feature": column}), cache.folder / "all.parquet")
    return home, cache


def _images(home: Home, run_id: str, shas: list[str], copies: int = 1) -> None:
    with RowWriter(home, "images", run_id) as out:
        for i, sha in enumerate(shas):
            for c in range(copies):
                out.add({"run_id": run_id, "path": f"{sha[:8]}-{c}.jpg", "sha256": sha,
                         "is_valid": True, "analysis_id": i * copies + c})  # fmt: skip


def _lists(home: Home, run_id: str) -> dict[str, list[tuple[str, float]]]:
    """sha256 -> [(neighbour sha256, similarity), ...] as stored."""
    folder = state_dir(home, run_id)
    con = duckdb.connect()
    rows = con.execute(
        """SELECT c.sha256, l.neighbours, l.similarities
           FROM read_parquet($l) l JOIN read_parquet($c) c USING (row)""",
        {"l": str(folder / LISTS), "c": str(folder / CONTENTS)},
    ).fetchall()
    by_row = dict(
        con.execute(
            "SELECT row, sha256 FROM read_parquet($c)", {"c": str(folder / CONTENTS)}
        ).fetchall()
    )
    return {sha: [(by_row[n], s) for n, s in zip(nbrs, sims, strict=True)]
            for sha, nbrs, sims in rows}  # fmt: skip


def _brute_force(vectors: dict[str, np.ndarray], shas: list[str], width: int) -> dict:
    """The definition: by similarity (of the stored unit vectors, in float64, rounded)
    descending, then sha256."""
    shas = sorted(shas)
    x = normalise(np.stack([vectors[s] for s in shas])).astype(np.float64)
    sim = np.rint(x @ x.T * SCALE).astype(np.int64)
    out = {}
    for i, sha in enumerate(shas):
        order = sorted((j for j in range(len(shas)) if j != i), key=lambda j: (-sim[i, j], j))
        out[sha] = [(shas[j], sim[i, j] / SCALE) for j in order[:width]]
    return out


@pytest.fixture
def small_blocks(monkeypatch: pytest.MonkeyPatch) -> None:
    """Blocks of a few dozen rows, so a small collection crosses many block boundaries."""
    monkeypatch.setattr(nb, "DB_BLOCK", 37)
    monkeypatch.setattr(nb, "RESCORE_CHUNK", 11)
    monkeypatch.setattr(tn, "QUERY_BLOCK", 29)
    monkeypatch.setattr(nb, "QUERY_BLOCK", 29)


def test_exact_lists_are_the_nearest_by_similarity_then_hash(real_vectors, tmp_path, small_blocks):
    home, cache = _setup(tmp_path, real_vectors)
    shas = sorted(real_vectors)
    _images(home, "r1", shas, copies=2)  # byte copies: one content, one list
    res = build_neighbours(home, "r1", cache, SPEC, "src", None)
    assert (res.how, res.mode, res.n_contents) == ("built", "exact", len(shas))
    got = _lists(home, "r1")
    assert got == _brute_force(real_vectors, shas, SPEC.k_store)
    twins = [s for s, lst in got.items() if lst[0][1] == 1.0]
    assert len(twins) == 6  # the three files with a pixel-equal twin, and the twins


def test_an_update_equals_a_full_build(real_vectors, tmp_path, small_blocks):
    """Removed contents leave the lists, short lists are searched again, new contents enter
    the lists they are closer to: every list is the exact top of its length."""
    home, cache = _setup(tmp_path, real_vectors)
    shas = sorted(real_vectors)
    truth = _brute_force(real_vectors, shas, SPEC.k_store)
    hub = shas[0]
    gone = {s for s, _ in truth[hub][:15]}  # its list falls below k: searched again
    gone |= set(shas[5::40])
    added = set(shas[1::9]) - gone - {hub}
    first = [s for s in shas if s not in added]
    grown = [s for s in shas if s not in gone]
    _images(home, "r1", first)
    build_neighbours(home, "r1", cache, SPEC, "src", None)
    _images(home, "r2", grown)
    res = build_neighbours(home, "r2", cache, SPEC, "src", "r1")
    assert res.how == "updated"
    assert (res.n_added, res.n_removed) == (len(added), len(gone - added))
    assert res.n_searched > res.n_added  # the hub's list was refilled
    want = _brute_force(real_vectors, grown, SPEC.k_store)
    got = _lists(home, "r2")
    assert set(got) == set(want)
    for sha, lst in got.items():
        assert len(lst) >= SPEC.k, sha
        assert lst == want[sha][: len(lst)], sha
    # and the next night, with nothing new, takes the lists over as they are
    _images(home, "r3", grown)
    assert build_neighbours(home, "r3", cache, SPEC, "src", "r2").how == "taken over"
    assert _lists(home, "r3") == got


@pytest.mark.parametrize("exact_max", [10_000, 0], ids=["exact", "hnsw"])
def test_thread_count_changes_no_list(real_vectors, tmp_path, small_blocks, exact_max):
    home, cache = _setup(tmp_path, real_vectors)
    shas = sorted(real_vectors)
    spec = GraphSpec(k=10, extra=10, exact_max=exact_max)
    results = []
    for run_id, n_threads in (("one", 1), ("four", 4)):
        _images(home, run_id, shas)
        with threadpool_limits(limits=n_threads):
            nb.threads(n_threads)
            res = build_neighbours(home, run_id, cache, spec, run_id, None)
        results.append(_lists(home, run_id))
    nb.threads(2)
    assert res.mode == ("exact" if exact_max else "hnsw")
    assert results[0] == results[1]


def test_hnsw_recall_against_exact_search(real_vectors, tmp_path):
    home, cache = _setup(tmp_path, real_vectors)
    shas = sorted(real_vectors)
    _images(home, "h", shas)
    build_neighbours(home, "h", cache, GraphSpec(exact_max=0), "src", None)
    truth = _brute_force(real_vectors, shas, 10)
    got = _lists(home, "h")
    found = sum(len({n for n, _ in got[s][:10]} & {n for n, _ in truth[s]}) for s in shas)
    assert found / (10 * len(shas)) >= 0.99


def _hand_state(home: Home, run_id: str, lists: dict[int, list[tuple[int, float]]]) -> None:
    folder = state_dir(home, run_id)
    folder.mkdir(parents=True)
    shas = [f"s{i}" for i in range(len(lists))]
    pq.write_table(pa.table({"row": pa.array(range(len(shas)), pa.int32()), "sha256": shas}),
                   folder / CONTENTS)  # fmt: skip
    writer = ListWriter(folder)
    width = max(len(v) for v in lists.values())
    nbr = np.full((len(lists), width), -1, dtype=np.int64)
    sim = np.zeros((len(lists), width), dtype=np.int64)
    for r, entries in lists.items():
        for j, (n, s) in enumerate(entries):
            nbr[r, j], sim[r, j] = n, round(s * SCALE)
    writer.write(Lists(np.arange(len(lists)), nbr, sim))
    writer.close()
    write_meta(folder, "src", len(lists), {})


def test_pairs_and_outliers_from_hand_built_lists(tmp_path):
    """k nearest above min_similarity make pairs, every file of one content with every file
    of the other; byte copies are a star around the first copy; outliers by their nearest."""
    home = Home(tmp_path / "home").ensure()
    with RowWriter(home, "images", "r") as out:
        for path, sha in (("a1", "s0"), ("a2", "s0"), ("a3", "s0"), ("b", "s1"), ("c", "s2"),
                          ("d", "s3"), ("bad", None)):  # fmt: skip
            out.add({"run_id": "r", "path": path, "sha256": sha, "is_valid": sha is not None,
                     "analysis_id": None if sha is None else 0})  # fmt: skip
    _hand_state(home, "r", {
        0: [(1, 0.95), (2, 0.71), (3, 0.5)],
        1: [(0, 0.95), (2, 0.75), (3, 0.55)],
        2: [(1, 0.75), (0, 0.71), (3, 0.4)],
        3: [(1, 0.55), (0, 0.5), (2, 0.4)],
    })  # fmt: skip
    res = parse_outputs(home, "r", PairSpec(k=2, min_similarity=0.72, outlier_similarity=0.6))
    con = duckdb.connect()
    pairs = con.execute(
        "SELECT path_a, path_b, similarity FROM read_parquet($p) ORDER BY ALL",
        {"p": str(home.table_file("pairs", "r"))},
    ).fetchall()
    assert pairs == [
        ("a1", "a2", 1.0),
        ("a1", "a3", 1.0),
        ("a1", "b", 0.95),
        ("a2", "b", 0.95),
        ("a3", "b", 0.95),
        ("b", "c", 0.75),
    ]  # fmt: skip  (c's 2nd nearest, a at 0.71, is below min_similarity; d is nobody's)
    outliers = con.execute(
        "SELECT path, similarity, nearest FROM read_parquet($p)",
        {"p": str(home.table_file("outliers", "r"))},
    ).fetchall()
    assert outliers == [("d", 0.55, "b")]
    assert (res.n_pairs, res.n_outliers) == (6, 1)


def test_connections_are_bounded_and_spill_inside_home(tmp_path, monkeypatch):
    home = Home(tmp_path / "home").ensure()
    monkeypatch.setenv("CURATE_DUCKDB_MEMORY", "300MB")
    con = db.connect(home)
    limit, spill = con.execute(
        "SELECT current_setting('memory_limit'), current_setting('temp_directory')"
    ).fetchall()[0]
    assert limit in ("286.1 MiB", "300.0 MB") and Path(spill) == home.root / "tmp" / "duckdb"
    # a sort larger than the limit spills there instead of failing
    n = con.execute(
        "SELECT count(*) FROM (SELECT i, repeat('x', 200) || i AS s FROM range(3000000) t(i) "
        "ORDER BY s DESC)"
    ).fetchall()[0][0]
    assert n == 3_000_000


def test_more_ties_than_candidates_are_settled_by_hash(real_vectors, tmp_path, small_blocks):
    """60 contents with one vector: every candidate set of theirs is all ties, so each row is
    scanned against every vector and its list is the first 20 others by hash."""
    original, one = next(iter(real_vectors.items()))
    same = {hashlib.sha256(f"same {i}".encode()).hexdigest(): one for i in range(60)}
    vectors = {**real_vectors, **same}
    home, cache = _setup(tmp_path, vectors)
    _images(home, "r", sorted(vectors))
    build_neighbours(home, "r", cache, SPEC, "src", None)
    got = _lists(home, "r")
    assert got == _brute_force(vectors, sorted(vectors), SPEC.k_store)
    tied = sorted({*same, original})
    assert [n for n, _ in got[tied[0]]] == tied[1:21]
