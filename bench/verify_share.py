"""What the pixel comparison costs: the verify step's share of a run.

    .venv/bin/python -m bench.verify_share [--images 2000] [--collection distinct|planted]

Runs `curate run` (the CLI, a fresh home) on a collection of real-photo JPEGs and prints each
step's seconds from the run's `runs.step_seconds`, the verify step's share of the run and its
ratio to the fastdup step of the same run, and how many pairs were compared. A second run
with a changed config (results recomputed, pixel measurements cached per content pair) shows
what an incremental night pays. `distinct` (bench/corpus.py) cuts every file from ~100 photos:
many crops of one photo are neighbours, a hard case for the comparison (most pairs need the
alignment search); `planted` is the sample's mix of copies, edits and defects.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

import duckdb

from bench.corpus import distinct_collection, planted_collection


def _run(source: Path, home: Path, config: Path | None = None) -> dict[str, float]:
    cmd = [str(Path(sys.executable).parent / "curate"), "run", str(source), "--home", str(home)]
    if config:
        cmd += ["--config", str(config)]
    t0 = time.monotonic()
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    wall = time.monotonic() - t0
    if proc.returncode not in (0, 1):
        raise SystemExit(f"curate run failed ({proc.returncode}): {proc.stderr.strip()}")
    con = duckdb.connect(str(home / "catalog.duckdb"), read_only=True)
    row = con.execute(
        "SELECT step_seconds, run_id FROM runs ORDER BY started_at DESC LIMIT 1"
    ).fetchall()[0]
    n_pairs = con.execute(
        "SELECT count(*) FROM pair_checks WHERE run_id = $r", {"r": row[1]}
    ).fetchall()[0][0]
    con.close()
    steps = json.loads(row[0])
    steps["wall"] = wall
    steps["pairs"] = float(n_pairs)
    return steps


def _show(label: str, steps: dict[str, float]) -> None:
    total = sum(v for k, v in steps.items() if k not in ("wall", "pairs"))
    order = ("ingest", "inspect", "fastdup", "parse", "verify", "findings", "validate", "report")
    cells = "  ".join(f"{k} {steps[k]:.1f}" for k in order if k in steps)
    print(f"{label}: {cells}  (steps {total:.1f} s, wall {steps['wall']:.1f} s)")
    verify, fastdup = steps.get("verify", 0.0), max(steps.get("fastdup", 0.0), 1e-9)
    share = 100 * verify / total
    print(f"  verify: {verify:.1f} s for {steps['pairs']:.0f} candidate pairs = {share:.1f} % "
          f"of the steps, {verify / fastdup:.2f} x fastdup")  # fmt: skip


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--images", type=int, default=2000)
    ap.add_argument("--collection", choices=["distinct", "planted"], default="distinct")
    ap.add_argument("--work", default="/tmp/curate-bench-verify")
    args = ap.parse_args()
    if args.collection == "distinct":
        source = distinct_collection(args.images)
    else:
        source, _truth = planted_collection(args.images)
    work = Path(args.work)
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    home = work / "home"
    _show(f"first run, {args.collection} {args.images}", _run(source, home))
    cfg = work / "curate.yaml"  # another threshold: findings recomputed, pixels cached
    cfg.write_text("rules:\n  copy_max_worst_block: 9.5\n")
    _show("re-run with another rule threshold", _run(source, home, cfg))


if __name__ == "__main__":
    main()
