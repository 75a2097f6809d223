"""Growth: `curate run` wall time and peak memory as the collection grows.

    .venv/bin/python -m bench.growth [--sizes 1000 5000 20000] [--prefect server|embedded]
    .venv/bin/python -m bench.growth --sizes 1000 5000 20000 100000   # 100k: ~15 GB of files
    .venv/bin/python -m bench.growth --sizes 20000 100000 --baseline   # + bare fastdup, ratio

Each size is a collection of distinct real-photo JPEGs (bench/corpus.py: crops, rescales and
re-encodes, built in parallel once and cached under bench/.cache/collections). `curate run`
runs on each in a fresh HOME, in a fresh child (bench/measure.py: wall time, peak memory of the
whole process tree and of its largest process). The linearity check compares the marginal
cost per image of the last step (the extra seconds per extra image between the two largest
sizes) with that of the first step: close to linear when their ratio stays under `--tolerance`
(1.5 by default); a least-squares line gives the fixed cost of a run and the cost per image.
With `--baseline`, each size is also run by bare fastdup (bench/speed.py's baseline, measured
the same way right after curate), and the table shows curate's ratio to it.
Prints a table; writes bench/results/growth.json.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
from pathlib import Path

import numpy as np

from bench.corpus import distinct_collection
from bench.measure import run_measured
from bench.speed import measure_bare_fastdup, prefect_env

RESULTS = Path(__file__).resolve().parent / "results"
CURATE = Path(sys.executable).parent / "curate"


def linearity(points: list[tuple[int, float]]) -> float | None:
    """Marginal seconds per image of the last step over that of the first (1.0 = linear)."""
    if len(points) < 3:
        return None
    (n0, t0), (n1, t1) = points[0], points[1]
    (m0, s0), (m1, s1) = points[-2], points[-1]
    first = (t1 - t0) / (n1 - n0)
    last = (s1 - s0) / (m1 - m0)
    return last / first if first > 0 else None


def bare_fastdup(root: Path, work: Path, timeout: float) -> dict:
    """Wall time and peak memory of bare fastdup on the same folder, in a fresh work dir."""
    work.mkdir(parents=True)
    try:
        m = measure_bare_fastdup(root, work, timeout)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    if not m.ok:
        raise SystemExit(f"bare fastdup failed ({m.returncode}): {m.stderr_tail.strip()[-300:]}")
    return m.as_dict()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--sizes", type=int, nargs="+", default=[1000, 5000, 20000])
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--prefect", choices=("server", "embedded"), default="server")
    ap.add_argument("--tolerance", type=float, default=1.5)
    ap.add_argument("--timeout", type=float, default=12 * 3600, help="seconds per run")
    ap.add_argument("--baseline", action="store_true", help="also time bare fastdup per size")
    args = ap.parse_args()
    sizes = sorted(set(args.sizes))
    work = Path(tempfile.mkdtemp(prefix="curate-bench-growth-"))
    rows = []
    try:
        with prefect_env(args.prefect, work) as env:
            for n in sizes:
                root = distinct_collection(n, seed=args.seed)
                home = work / f"home-{n}"
                m = run_measured(
                    [str(CURATE), "run", str(root), "--home", str(home)],
                    env=env,
                    timeout=args.timeout,
                )
                shutil.rmtree(home, ignore_errors=True)
                if m.returncode not in (0, 1) or m.timed_out:
                    raise SystemExit(
                        f"curate run on {n} images failed ({m.returncode}): "
                        f"{m.stderr_tail.strip()[-300:]}"
                    )
                row = {"images": n, **m.as_dict(), "ms_per_image": 1000 * m.wall_s / n}
                print(
                    f"  {n:>7} images: {m.wall_s:8.1f} s, peak {m.peak_tree_mb:6.0f} MB", flush=True
                )
                if args.baseline:
                    row["fastdup"] = bare_fastdup(root, work / f"fastdup-{n}", args.timeout)
                    row["ratio"] = m.wall_s / row["fastdup"]["wall_s"]
                    row["cpu_ratio"] = m.cpu_s / row["fastdup"]["cpu_s"]
                    print(
                        f"  {n:>7} bare fastdup: {row['fastdup']['wall_s']:8.1f} s, peak "
                        f"{row['fastdup']['peak_tree_mb']:6.0f} MB; curate {row['ratio']:.2f}x "
                        f"(CPU {row['cpu_ratio']:.2f}x)",
                        flush=True,
                    )
                rows.append(row)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    ratio = linearity([(r["images"], r["wall_s"]) for r in rows])
    fit = None
    if len(rows) >= 2:  # least squares: wall = fixed + per_image * n
        per_image, fixed = np.polyfit([r["images"] for r in rows], [r["wall_s"] for r in rows], 1)
        fit = {"fixed_s": float(fixed), "per_image_ms": float(1000 * per_image)}
    print(f"\ncurate run, {os.cpu_count()} cores, Prefect {args.prefect}")
    print(
        f"{'images':>8}{'wall s':>9}{'CPU s':>9}{'ms/image':>10}{'peak MB (all processes)':>25}"
        f"{'largest process MB':>20}"
        + (f"{'bare fastdup s':>16}{'ratio':>7}{'CPU ratio':>11}" if args.baseline else "")
    )
    for r in rows:
        extra = ""
        if "fastdup" in r:
            extra = f"{r['fastdup']['wall_s']:>16.1f}{r['ratio']:>6.2f}x{r['cpu_ratio']:>10.2f}x"
        print(
            f"{r['images']:>8}{r['wall_s']:>9.1f}{r['cpu_s']:>9.1f}{r['ms_per_image']:>10.2f}"
            f"{r['peak_tree_mb']:>25.0f}{r['max_rss_mb']:>20.0f}" + extra
        )
    if fit is not None:
        print(f"fit: wall = {fit['fixed_s']:.1f} s + {fit['per_image_ms']:.2f} ms x images")
    if ratio is None:
        print("linearity: needs three sizes or more")
        verdict = None
    else:
        verdict = ratio <= args.tolerance
        print(
            f"linearity: marginal s/image of the last step / of the first = {ratio:.2f} "
            f"({'close to linear' if verdict else 'NOT linear'}, tolerance {args.tolerance})"
        )
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "growth.json").write_text(
        json.dumps(
            {
                "cores": os.cpu_count(),
                "prefect": args.prefect,
                "runs": rows,
                "fit": fit,
                "linearity_ratio": ratio,
                "close_to_linear": verdict,
                "tolerance": args.tolerance,
            },
            indent=1,
        )
    )


if __name__ == "__main__":
    main()
