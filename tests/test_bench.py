"""The benchmark harness: its measurements, collection builders and scoring are right.

The benchmarks themselves take minutes to hours; these check the parts their figures rest on,
on real processes and real photos (the ones in the installed wheels, so no Debian download).
"""

from __future__ import annotations

import csv
import hashlib
import sys
import time
from pathlib import Path

import pytest

from bench import corpus
from bench.measure import run_measured
from bench.peers import components, score
from photo_curate.evaluate import INVALID_VARIANTS, read_truth
from photo_curate.sample import DUPLICATE_VARIANTS, bundled_photos

# a parent holding ~150 MB and a child holding ~250 MB at the same time
ALLOCATE = """
import subprocess, sys, time
a = b"\\x01" * (150 * 1024 * 1024)
c = subprocess.Popen([sys.executable, "-c",
    "import time; b = b'\\x01' * (250 * 1024 * 1024); time.sleep(1.5)"])
c.wait()
"""


def test_measure_counts_every_process_of_the_tool_and_nothing_else() -> None:
    ballast = b"\x01" * (600 * 1024 * 1024)  # a large benchmark process must not count
    m = run_measured([sys.executable, "-c", ALLOCATE])
    assert m.ok
    assert 240 < m.max_rss_mb < 400  # the largest single process: the child
    assert 380 < m.peak_tree_mb < 600  # both at once
    assert m.wall_s > 1.4
    del ballast


BURN = """
import subprocess, sys, time
child = "import time\\nt = time.process_time()\\nwhile time.process_time() - t < 0.6: pass"
subprocess.run([sys.executable, "-c", child], check=True)
time.sleep(0.5)
"""


def test_measure_counts_cpu_seconds_of_the_children_not_sleep() -> None:
    m = run_measured([sys.executable, "-c", BURN])
    assert m.ok
    assert m.wall_s > 1.0
    assert 0.6 <= m.cpu_s < m.wall_s  # the grandchild's busy loop counts, the sleep does not


def test_measure_kills_a_tool_over_its_timeout_with_its_children() -> None:
    t0 = time.perf_counter()
    script = "import subprocess, sys, time; subprocess.Popen(['sleep', '60']); time.sleep(60)"
    m = run_measured([sys.executable, "-c", script], timeout=1.0)
    assert m.timed_out and not m.ok
    assert time.perf_counter() - t0 < 10


def test_measure_reports_a_failure_with_its_error() -> None:
    m = run_measured([sys.executable, "-c", "raise SystemExit('no such folder: /x')"])
    assert m.returncode == 1 and not m.ok
    assert "no such folder: /x" in m.stderr_tail


def _digests(root: Path) -> dict[str, str]:
    return {
        p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in corpus.image_files(root)
    }


def test_distinct_collection_is_distinct_reproducible_and_cached(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    photos = bundled_photos()[:4]
    monkeypatch.setattr(corpus, "COLLECTIONS", tmp_path / "a")
    one = corpus.distinct_collection(30, seed=3, workers=2, photos=photos)
    first = _digests(one)
    assert len(first) == 30 and len(set(first.values())) == 30  # 30 files, 30 contents
    stamp = (one.parent / "params.json").stat().st_mtime_ns
    assert corpus.distinct_collection(30, seed=3, workers=2, photos=photos) == one
    assert (one.parent / "params.json").stat().st_mtime_ns == stamp  # reused, not rebuilt
    monkeypatch.setattr(corpus, "COLLECTIONS", tmp_path / "b")
    again = corpus.distinct_collection(30, seed=3, workers=1, photos=photos)
    assert _digests(again) == first  # the same bytes whatever the number of workers
    other = corpus.distinct_collection(30, seed=4, workers=1, photos=photos)
    assert other != again and _digests(other) != first


def test_planted_collection_truth_matches_its_files(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(corpus, "COLLECTIONS", tmp_path)
    photos = bundled_photos()
    # more bases than photos: disjoint tiles of them become the bases
    root, truth_csv = corpus.planted_collection(160, seed=1, max_side=320, workers=2, photos=photos)
    truth = read_truth(truth_csv)
    on_disk = {p.relative_to(root).as_posix() for p in corpus.image_files(root)}
    assert on_disk == set(truth)
    assert 130 <= len(on_disk) <= 190
    originals = [r for r in truth.values() if r["variant"] == "original"]
    assert len(originals) > len(photos)  # tiles were needed
    assert len({r["base"] for r in originals}) == len(originals)  # one original per base
    assert sum(r["variant"] in INVALID_VARIANTS for r in truth.values()) >= 3
    assert sorted(p.name for p in root.parent.iterdir()) == ["params.json", "photos", "truth.csv"]


def test_scores_of_a_perfect_and_a_blind_tool(tmp_path: Path) -> None:
    truth_csv = tmp_path / "truth.csv"
    rows = [
        ("a/1.jpg", "p1", "original"),
        ("b/1.jpg", "p1", "copy"),
        ("c/1.jpg", "p1", "resized"),
        ("a/2.jpg", "p2", "original"),
        ("c/2.jpg", "p2", "cropped"),
        ("x/dark.jpg", "p2", "dark"),
        ("x/blur.jpg", "p1", "blurry"),
        ("bad/t.jpg", "broken", "truncated"),
        ("bad/e.jpg", "broken", "empty"),
    ]
    with open(truth_csv, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["path", "base", "variant", "param"])
        w.writerows([(*r, "") for r in rows])
    # a perfect tool that reports one group as two overlapping sets
    groups = [["a/1.jpg", "b/1.jpg"], ["b/1.jpg", "c/1.jpg"], ["a/2.jpg", "c/2.jpg"]]
    kinds = {
        "invalid": {"bad/t.jpg", "bad/e.jpg"},
        "dark": {"x/dark.jpg"},
        "bright": set(),
        "blurry": {"x/blur.jpg"},
    }
    perfect = score(truth_csv, kinds, groups)
    assert perfect["duplicate pairs"].expected == 4  # 3 pairs of p1, 1 of p2
    for s in perfect.values():
        assert s.precision == 1.0 and s.recall == 1.0
    # a tool that looks only for duplicates and merges p1 with p2
    dup_only = score(truth_csv, {}, [["a/1.jpg", "b/1.jpg", "a/2.jpg"]])
    assert dup_only["invalid"] is None and dup_only["dark"] is None
    d = dup_only["duplicate pairs"]
    assert (d.predicted, d.true_positive) == (3, 1)
    assert set(DUPLICATE_VARIANTS) >= {"original", "copy", "resized", "cropped"}


def test_components_join_groups_that_share_a_file() -> None:
    got = components([["a", "b"], ["c", "d"], ["b", "c"], ["e", "f"], ["g"]])
    assert sorted(got) == [["a", "b", "c", "d"], ["e", "f"]]


def test_linearity_check_tells_linear_from_superlinear_growth() -> None:
    from bench.growth import linearity

    sizes = [1000, 5000, 20000]
    assert linearity([(n, 30 + 0.01 * n) for n in sizes]) == pytest.approx(1.0)
    assert linearity([(n, 30 + 1e-6 * n * n) for n in sizes]) > 3  # quadratic
    assert linearity([(1000, 10.0), (5000, 50.0)]) is None  # two sizes say nothing


@pytest.mark.slow
def test_bare_fastdup_outputs_map_onto_the_collection(
    sample: tuple[Path, Path], tmp_path: Path
) -> None:
    import os

    from bench.peers import fastdup_predictions
    from bench.speed import BARE_FASTDUP, QUIET

    photos, truth_csv = sample
    work = tmp_path / "fastdup"
    work.mkdir()
    m = run_measured(
        [sys.executable, "-c", BARE_FASTDUP, str(work), str(photos)],
        env={**os.environ, **QUIET},
        cwd=work,
    )
    assert m.ok, m.stderr_tail
    kinds, groups = fastdup_predictions(work, photos)
    truth = read_truth(truth_csv)
    assert {"Downloads/empty.jpg", "Downloads/not really.jpg"} <= kinds["invalid"]
    assert "Downloads/truncated.jpg" not in kinds["invalid"]  # fastdup passes it as valid
    assert groups and all(p in truth for g in groups for p in g)
    scores = score(truth_csv, kinds, groups)
    assert scores["duplicate pairs"].recall > 0.5
    # a wrong mapping scores near 0; fastdup alone also groups the sample's similar shots
    assert scores["duplicate pairs"].precision > 0.5
