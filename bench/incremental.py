"""Incremental-run benchmark: first run, unchanged re-run, re-run after adding 1 % new photos.

    .venv/bin/python -m bench.incremental [--images 2100] [--rounds 1]

The collection is bench/speed.py's (distinct JPEGs cut from real photos). Each round, with a
Prefect server running and with no server (Prefect's embedded temporary server), in a fresh
home: `curate run` (first run), the same again (nothing changed), then 1 % new photos (cut
from the same pool with another seed) are added and `curate run` again (incremental), and
`curate run --full` on the grown collection in another fresh home, and once more in a third
(the noise floor). The incremental run's images rows and feature vectors must be bit-identical
to the full run's, and its findings (and pairs, outliers, clusters, plan) equal to the full
run's: the neighbour search is exact up to `fastdup.exact_search_max` and deterministic
(photo_curate/neighbours.py), so two full runs of the same files give the same tables too.
Beyond that size (the HNSW index) the incremental lists may differ from a full build's within
the index's recall; the benchmark then says by how much, next to two full runs' difference.
Wall time of the whole command, and (less sensitive to other load on the machine) CPU time of
curate and its worker and fastdup processes. Prints a table and writes
bench/results/incremental.json.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import resource
import shutil
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

import duckdb

from bench.corpus import distinct_collection
from bench.speed import BIN, RESULTS, prefect_env

TABLES = ("images", "pairs", "outliers", "findings", "clusters", "plan")
CPU: list[float] = []  # CPU seconds of each curate run, in order


def _cpu() -> float:
    """CPU seconds of the waited-for children (curate with its workers and fastdup children)."""
    ru = resource.getrusage(resource.RUSAGE_CHILDREN)
    return ru.ru_utime + ru.ru_stime


def curate(collection: Path, home: Path, env: dict[str, str], *extra: str) -> tuple[float, str]:
    """Seconds of one `curate run` (the whole command) and its run id; CPU seconds in CPU."""
    cpu0 = _cpu()
    t0 = time.perf_counter()
    p = subprocess.run(
        [str(BIN / "curate"), "run", str(collection), "--home", str(home), *extra],
        env=env, capture_output=True, text=True, check=False,
    )  # fmt: skip
    seconds = time.perf_counter() - t0
    CPU.append(_cpu() - cpu0)
    if p.returncode != 0:
        raise SystemExit(f"curate run failed: {p.stderr.strip()}")
    run_id = p.stdout.strip().splitlines()[-1].split("run id:")[-1].strip()
    return seconds, run_id


def run_record(home: Path, run_id: str) -> dict:
    con = duckdb.connect()
    try:
        res = con.execute(
            "SELECT mode, n_images, n_inspected, n_extracted, n_findings, step_seconds "
            "FROM read_parquet($p)",
            {"p": str(home / "data" / "runs" / f"{run_id}.parquet")},
        )
        cols = [d[0] for d in res.description]
        return dict(zip(cols, res.fetchall()[0], strict=True))
    finally:
        con.close()


def differences(a: tuple[Path, str], b: tuple[Path, str]) -> dict[str, int]:
    """Rows (minus run_id) in one run's table and not in the other's, per table."""
    con = duckdb.connect()
    out = {}
    try:
        for t in TABLES:
            x, y = (str(h / "data" / t / f"{r}.parquet") for h, r in (a, b))
            out[t] = con.execute(
                """SELECT count(*) FROM (
                     (SELECT * EXCLUDE (run_id) FROM read_parquet($x)
                      EXCEPT ALL SELECT * EXCLUDE (run_id) FROM read_parquet($y))
                     UNION ALL
                     (SELECT * EXCLUDE (run_id) FROM read_parquet($y)
                      EXCEPT ALL SELECT * EXCLUDE (run_id) FROM read_parquet($x)))""",
                {"x": x, "y": y},
            ).fetchall()[0][0]
    finally:
        con.close()
    return out


def vector_mismatches(a: Path, b: Path) -> dict[str, int]:
    """Feature vectors of the same content hash in two homes' caches: how many, and how many
    differ in any bit (the incremental run's cached vectors against a full run's own)."""
    con = duckdb.connect()
    try:
        xa, xb = (str(h / "cache" / "features" / "*" / "*.parquet") for h in (a, b))
        n, bad = con.execute(
            """SELECT count(*), count(*) FILTER (WHERE x.feature IS DISTINCT FROM y.feature)
               FROM (SELECT DISTINCT ON (sha256) * FROM read_parquet($xa)) x
               JOIN (SELECT DISTINCT ON (sha256) * FROM read_parquet($xb)) y USING (sha256)""",
            {"xa": xa, "xb": xb},
        ).fetchall()[0]
    finally:
        con.close()
    return {"compared": int(n), "different": int(bad)}


def one_round(base: Path, extra: Path, work: Path, env: dict[str, str]) -> dict:
    """first, unchanged, +1 % incremental, and full-on-grown runs in fresh homes."""
    coll = work / "collection"
    shutil.rmtree(coll, ignore_errors=True)
    shutil.copytree(base, coll, copy_function=os.link)  # hard links: instant, same bytes
    home = Path(tempfile.mkdtemp(prefix="curate-inc-", dir=work))
    full_home = Path(tempfile.mkdtemp(prefix="curate-full-", dir=work))
    again_home = Path(tempfile.mkdtemp(prefix="curate-full-again-", dir=work))
    try:
        first, r1 = curate(coll, home, env)
        same, r2 = curate(coll, home, env)
        shutil.copytree(extra, coll / "new", copy_function=os.link)
        inc, r3 = curate(coll, home, env)
        full, r4 = curate(coll, full_home, env, "--full")
        cpu = dict(zip(("first", "unchanged", "incremental", "full_grown"), CPU[-4:], strict=True))
        _, r5 = curate(coll, again_home, env, "--full")  # fastdup's own run-to-run noise
        diff = differences((home, r3), (full_home, r4))
        noise = differences((full_home, r4), (again_home, r5))
        vectors = vector_mismatches(home, full_home)
        recs = {k: run_record(h, r) for k, h, r in (("first", home, r1), ("unchanged", home, r2),
                ("incremental", home, r3), ("full", full_home, r4))}  # fmt: skip
    finally:
        for h in (home, full_home, again_home, coll):
            shutil.rmtree(h, ignore_errors=True)
    return {
        "first_s": first,
        "unchanged_s": same,
        "incremental_s": inc,
        "full_grown_s": full,
        "unchanged_ratio": same / first,
        "incremental_ratio": inc / first,
        "cpu_s": cpu,
        "unchanged_cpu_ratio": cpu["unchanged"] / cpu["first"],
        "incremental_cpu_ratio": cpu["incremental"] / cpu["first"],
        "differences": diff,
        "full_vs_full": noise,
        "vectors": vectors,
        "runs": recs,
    }


def _remove_warm_homes(work: Path) -> None:
    for warm in work.glob("warm-*"):
        shutil.rmtree(warm, ignore_errors=True)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--images", type=int, default=2100)
    ap.add_argument("--rounds", type=int, default=1)
    ap.add_argument("--work", default="/tmp/curate-bench-incremental")
    ap.add_argument("--no-embedded", action="store_true", help="only with a Prefect server")
    args = ap.parse_args()
    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    base = distinct_collection(args.images)  # cached; each round links it into `work`
    n = args.images
    n_new = max(1, round(n / 100))
    extra = distinct_collection(n_new, seed=1)  # other crops: distinct from the base files
    with contextlib.ExitStack() as stack:
        modes = {"server": stack.enter_context(prefect_env("server", work))}
        if not args.no_embedded:
            modes["embedded"] = stack.enter_context(prefect_env("embedded", work))
        results: dict[str, list[dict]] = {m: [] for m in modes}
        stack.callback(_remove_warm_homes, work)
        for env in modes.values():  # warm-up: OS file cache, Prefect's first migrations
            curate(base, Path(tempfile.mkdtemp(prefix="warm-", dir=work)), env)
        for r in range(args.rounds):
            for mode, env in modes.items():
                res = one_round(base, extra, work, env)
                results[mode].append(res)
                print(
                    f"round {r + 1} ({mode}): first {res['first_s']:.1f} s, unchanged "
                    f"{res['unchanged_s']:.1f} s ({res['unchanged_ratio']:.1%}), +{n_new} "
                    f"{res['incremental_s']:.1f} s ({res['incremental_ratio']:.1%}), full on "
                    f"grown {res['full_grown_s']:.1f} s; CPU: first {res['cpu_s']['first']:.1f} s, "
                    f"unchanged {res['unchanged_cpu_ratio']:.1%}, +{n_new} "
                    f"{res['incremental_cpu_ratio']:.1%}; differences {res['differences']}, "
                    f"between two full runs {res['full_vs_full']}; vectors {res['vectors']}",
                    flush=True,
                )
    keys = ("first_s", "unchanged_s", "incremental_s", "full_grown_s", "unchanged_ratio",
            "incremental_ratio", "unchanged_cpu_ratio", "incremental_cpu_ratio")  # fmt: skip
    med = {m: {k: statistics.median(x[k] for x in rs) for k in keys} for m, rs in results.items()}
    rounds = [x for rs in results.values() for x in rs]
    equal = all(not any(x["differences"].values()) for x in rounds)
    same_input = all(
        x["vectors"]["different"] == 0 and x["differences"]["images"] == 0 for x in rounds
    )
    within_noise = all(
        sum(x["differences"].values()) <= sum(x["full_vs_full"].values()) for x in rounds
    )
    print(f"\n{n} images (+{n_new} new), {os.cpu_count()} cores, median of {args.rounds} round(s)")
    print(f"{'':34}" + "".join(f"{m:>12}{'':10}" for m in modes))
    for label, k, rk in (("first run", "first_s", None), ("unchanged re-run", "unchanged_s",
                         "unchanged_ratio"), (f"re-run after +{n_new} photos", "incremental_s",
                         "incremental_ratio"), ("full run on the grown collection",
                         "full_grown_s", None)):  # fmt: skip
        cells = "".join(
            f"{med[m][k]:>10.1f} s" + (f" ({med[m][rk]:6.1%})" if rk else " " * 10) for m in modes
        )
        print(f"{label:34}{cells}")
    for label, k in (("CPU time, unchanged / first", "unchanged_cpu_ratio"),
                     (f"CPU time, +{n_new} photos / first", "incremental_cpu_ratio")):  # fmt: skip
        print(f"{label:34}" + "".join(f"{med[m][k]:>12.1%}{'':10}" for m in modes))
    print(f"incremental findings equal to the full run's: {'yes' if equal else 'NO'}")
    print(
        "images rows and every feature vector bit-identical to the full run's: "
        f"{'yes' if same_input else 'NO'}"
    )
    if not equal:
        print(
            "differences no larger than between two full runs of the same files: "
            f"{'yes' if within_noise else 'NO'}"
        )
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "incremental.json").write_text(
        json.dumps(
            {
                "images": n,
                "new": n_new,
                "cores": os.cpu_count(),
                "median": med,
                "findings_equal": equal,
                "inputs_identical": same_input,
                "within_full_run_noise": within_noise,
                "rounds": results,
            },
            indent=1,
            default=str,
        )
    )
    if not same_input or not (equal or within_noise):
        raise SystemExit("the incremental run's findings differ from the full run's")


if __name__ == "__main__":
    main()
