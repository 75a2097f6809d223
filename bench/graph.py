"""The graph step alone: photo-curate's neighbour search against fastdup's own (`run_mode=2`).

    .venv/bin/python -m bench.graph [--sizes 20000 100000 1000000] [--fastdup-max 100000]
                                    [--exact-sizes 100000] [--recall-queries 1000]

Vectors (bench/vectors.py): fastdup's own vectors of distinct real-photo JPEGs up to
`--real-max` (20,000), synthetic clustered vectors of its dimension beyond. For each size, back
to back, each in a fresh child process (bench/measure.py: wall time, CPU time of the process
tree, peak memory of all its processes):
- curate's neighbours step (tasks/neighbours.py: the vector file from the feature cache, the
  search, the lists) as a run makes it: exact search up to `fastdup.exact_search_max` (50,000
  contents), the HNSW index beyond; with `--exact-sizes`, exact search at those sizes too;
- an incremental night: 1 % new vectors (another seed: other photos, or other synthetic
  vectors) added to the collection, the lists updated from the full build's;
- fastdup `run_mode=2` on the same vectors (k=10, threshold 0.7: how curate ran it before),
  up to `--fastdup-max`, and the ratio of curate's wall and CPU time to it;
- recall@10 of the lists against exact search on `--recall-queries` sampled contents.
Prints the table; writes bench/results/graph.json.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
from pathlib import Path

import duckdb
import numpy as np

from bench.measure import Measured, run_measured
from bench.vectors import vectors
from photo_curate.features import DIM, FEATURES_CSV, FEATURES_DAT

RESULTS = Path(__file__).resolve().parent / "results"
QUIET = {"SENTRY_OPT_OUT": "1", "FASTDUP_PRODUCTION": "1", "DO_NOT_TRACK": "1"}


# -- the child: one neighbours step on a prepared HOME ------------------------------------------


def prepare_home(home: Path, run_id: str, sets: list[Path]) -> None:
    """HOME with the sets' vectors in its feature cache and an `images` table naming them."""
    from photo_curate.home import Home
    from photo_curate.schema import arrow_schema

    h = Home(home).ensure()
    cache = home / "cache" / "features" / "bench"
    cache.mkdir(parents=True, exist_ok=True)
    for k, s in enumerate(sets):
        for f in sorted((s / "features").glob("*.parquet")):
            link = cache / f"{k}-{f.name}"
            if not link.exists():
                link.symlink_to(f)
    cols = ", ".join(
        {"run_id": "$run AS run_id", "path": "printf('v/%08d.jpg', i) AS path",
         "sha256": "sha256", "is_valid": "true AS is_valid",
         "analysis_id": "i AS analysis_id"}.get(f.name, f'NULL AS "{f.name}"')
        for f in arrow_schema("images")
    )  # fmt: skip
    out = h.table_file("images", run_id)
    out.parent.mkdir(parents=True, exist_ok=True)
    con = duckdb.connect()
    con.execute(
        f"""COPY (SELECT {cols} FROM (
                SELECT sha256, row_number() OVER (ORDER BY sha256) - 1 AS i
                FROM read_parquet($g))) TO '{out}' (FORMAT parquet)""",
        {"g": str(cache / "*.parquet"), "run": run_id},
    )
    con.close()


def child(home: Path, run_id: str, base: str | None, exact_max: int) -> None:
    from photo_curate.features import FeatureCache
    from photo_curate.home import Home
    from photo_curate.neighbours import GraphSpec
    from tasks.neighbours import build_neighbours

    spec = GraphSpec(exact_max=exact_max)
    cache = FeatureCache(home / "cache" / "features" / "bench")
    res = build_neighbours(Home(home), run_id, cache, spec, "bench", base)
    print(json.dumps(res.__dict__))


# -- the parent ------------------------------------------------------------------------------------


def _measure_curate(home: Path, run_id: str, base: str | None, exact_max: int) -> dict:
    cmd = [sys.executable, "-m", "bench.graph", "--child", str(home), run_id, base or "-",
           str(exact_max)]  # fmt: skip
    m = run_measured(cmd, env={**os.environ, **QUIET}, timeout=12 * 3600)
    _check(m, "curate neighbours")
    return {**m.as_dict(), "result": json.loads(m.stdout.strip().splitlines()[-1])}


def _check(m: Measured, what: str) -> None:
    if not m.ok:
        raise SystemExit(f"{what} failed ({m.returncode}): {m.stderr_tail.strip()[-400:]}")


def _fastdup_input(vset: Path, work: Path) -> int:
    """fastdup's feature files (`atrain_features.dat` + `.csv`) of the set's raw vectors."""
    work.mkdir(parents=True)
    con = duckdb.connect()
    reader = con.sql(
        "SELECT feature FROM read_parquet($g) ORDER BY sha256",
        params={"g": str(vset / "features" / "*.parquet")},
    ).to_arrow_reader(65536)
    n = 0
    with open(work / FEATURES_DAT, "wb") as dat, open(work / FEATURES_CSV, "w") as csv:
        csv.write("index,filename\n")
        for rb in reader:
            flat = rb.column(0).flatten().to_numpy(zero_copy_only=False)
            flat.astype("<f4").tofile(dat)
            for _ in range(len(rb)):
                csv.write(f"{n},/bench/{n:08d}.jpg\n")
                n += 1
    con.close()
    return n


def _measure_fastdup(vset: Path, work: Path) -> dict:
    _fastdup_input(vset, work)
    spec = {"input_list": "", "work_dir": str(work), "threads": 4 * (os.cpu_count() or 1),
            "threshold": 0.7, "lower_threshold": 0.05, "k": 10, "run_mode": 2}  # fmt: skip
    (work.parent / "fastdup-spec.json").write_text(json.dumps(spec))
    cmd = [
        sys.executable,
        "-m",
        "photo_curate.fastdup_child",
        str(work.parent / "fastdup-spec.json"),
    ]
    m = run_measured(cmd, env={**os.environ, **QUIET}, cwd=work.parent, timeout=12 * 3600)
    _check(m, "fastdup run_mode=2")
    return m.as_dict()


def recall_at_10(home: Path, run_id: str, n_queries: int) -> float:
    """Share of the exact 10 nearest found in the stored lists, over sampled contents."""
    from photo_curate import db
    from photo_curate.features import FeatureCache
    from photo_curate.graph_state import LISTS, state_dir
    from photo_curate.home import Home
    from photo_curate.neighbours import exact_lists
    from photo_curate.vectors import contents_sql, write_vectors

    h = Home(home)
    con = db.connect(h)
    cache = FeatureCache(home / "cache" / "features" / "bench")
    con.execute(f"CREATE TABLE contents AS {contents_sql(h.table_file('images', run_id), cache)}")
    vf = write_vectors(con, "contents", cache, home / "recall.f32")
    rows = np.sort(np.random.default_rng(0).choice(vf.n, min(n_queries, vf.n), replace=False))
    truth = exact_lists(vf, rows, 10)
    got = con.execute(
        "SELECT row, neighbours[1:10] AS n FROM read_parquet($p) WHERE row IN $rows ORDER BY row",
        {"p": str(state_dir(h, run_id) / LISTS), "rows": rows.tolist()},
    ).fetchall()
    con.close()
    (home / "recall.f32").unlink()
    found = sum(
        len(set(n) & set(t[t >= 0].tolist())) for (_, n), t in zip(got, truth.nbr, strict=True)
    )
    return found / (10 * len(rows))


def one_size(n: int, args: argparse.Namespace, work: Path) -> dict:
    real_max = args.real_max if n <= args.real_max else 0  # the night's vectors: the same kind
    base, extra = vectors(n, real_max=real_max), vectors(max(1, n // 100), 1, real_max)
    kind = "real" if n <= args.real_max else "synthetic"
    row: dict = {"vectors": n, "kind": kind}
    home = work / f"home-{n}"
    prepare_home(home, "full", [base])
    row["curate"] = _measure_curate(home, "full", None, args.exact_max)
    mode = row["curate"]["result"]["mode"]
    print(f"  {n:>8} {kind}: curate {mode} {row['curate']['wall_s']:.1f} s, peak "
          f"{row['curate']['peak_tree_mb']:.0f} MB", flush=True)  # fmt: skip
    if mode == "hnsw" or args.recall_all:
        row["recall_at_10"] = recall_at_10(home, "full", args.recall_queries)
        print(f"  {n:>8} recall@10 {row['recall_at_10']:.4f}", flush=True)
    prepare_home(home, "night", [base, extra])
    row["night"] = _measure_curate(home, "night", "full", args.exact_max)
    print(f"  {n:>8} +1 %: {row['night']['wall_s']:.1f} s ({row['night']['result']['how']})",
          flush=True)  # fmt: skip
    shutil.rmtree(home, ignore_errors=True)
    if n in args.exact_sizes and mode != "exact":
        exact_home = work / f"exact-{n}"
        prepare_home(exact_home, "full", [base])
        row["exact"] = _measure_curate(exact_home, "full", None, n)
        print(f"  {n:>8} exact: {row['exact']['wall_s']:.1f} s", flush=True)
        shutil.rmtree(exact_home, ignore_errors=True)
    if n <= args.fastdup_max:
        fd_work = work / f"fastdup-{n}" / "graph"
        row["fastdup"] = _measure_fastdup(base, fd_work)
        shutil.rmtree(fd_work.parent, ignore_errors=True)
        row["ratio"] = row["curate"]["wall_s"] / row["fastdup"]["wall_s"]
        row["cpu_ratio"] = row["curate"]["cpu_s"] / row["fastdup"]["cpu_s"]
        print(f"  {n:>8} fastdup run_mode=2: {row['fastdup']['wall_s']:.1f} s; curate "
              f"{row['ratio']:.2f}x", flush=True)  # fmt: skip
    return row


def _cell(row: dict, key: str, field: str, fmt: str) -> str:
    return format(row[key][field], fmt) if key in row else "-"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--sizes", type=int, nargs="+", default=[20000, 100000, 1000000])
    ap.add_argument("--real-max", type=int, default=20000, help="real vectors up to this size")
    ap.add_argument("--exact-max", type=int, default=50000, help="fastdup.exact_search_max")
    ap.add_argument("--exact-sizes", type=int, nargs="*", default=[],
                    help="also time exact search at these sizes")  # fmt: skip
    ap.add_argument("--fastdup-max", type=int, default=100000)
    ap.add_argument("--recall-queries", type=int, default=1000)
    ap.add_argument("--recall-all", action="store_true", help="recall for exact sizes too")
    ap.add_argument("--work", default=None)
    args = ap.parse_args()
    work = Path(args.work or tempfile.mkdtemp(prefix="curate-bench-graph-"))
    work.mkdir(parents=True, exist_ok=True)
    rows = []
    try:
        for n in sorted(set(args.sizes)):
            rows.append(one_size(n, args, work))
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print(f"\ngraph step alone, {os.cpu_count()} cores (wall s / CPU s / peak MB of all processes)")
    print(f"{'vectors':>9} {'kind':>9} {'curate':>24} {'mode':>6} {'+1 % night':>11} "
          f"{'fastdup run_mode=2':>24} {'ratio':>6} {'CPU ratio':>9} {'recall@10':>9} "
          f"{'exact search':>14}")  # fmt: skip
    for r in rows:
        c = r["curate"]
        cur = f"{c['wall_s']:.1f} / {c['cpu_s']:.1f} / {c['peak_tree_mb']:.0f}"
        fd = "-"
        if "fastdup" in r:
            f = r["fastdup"]
            fd = f"{f['wall_s']:.1f} / {f['cpu_s']:.1f} / {f['peak_tree_mb']:.0f}"
        ratio = f"{r['ratio']:.2f}x" if "ratio" in r else "-"
        cpu_ratio = f"{r['cpu_ratio']:.2f}x" if "cpu_ratio" in r else "-"
        rec = f"{r['recall_at_10']:.4f}" if "recall_at_10" in r else "exact"
        ex = f"{_cell(r, 'exact', 'wall_s', '.1f')} s" if "exact" in r else "-"
        print(f"{r['vectors']:>9} {r['kind']:>9} {cur:>24} {c['result']['mode']:>6} "
              f"{r['night']['wall_s']:>9.1f} s {fd:>24} {ratio:>6} {cpu_ratio:>9} {rec:>9} "
              f"{ex:>14}")  # fmt: skip
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "graph.json").write_text(
        json.dumps({"cores": os.cpu_count(), "dim": DIM, "rows": rows}, indent=1)
    )


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        _, _, home_arg, run_arg, base_arg, exact_arg = sys.argv
        child(Path(home_arg), run_arg, None if base_arg == "-" else base_arg, int(exact_arg))
    else:
        main()
