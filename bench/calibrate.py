"""How the default thresholds were chosen: sweep each rule's thresholds on finished runs.

    .venv/bin/python -m bench.calibrate [--work /tmp/curate-bench-similar] [--pool A] [--rule copy]

Uses the homes that `bench.similar` left behind (similar-but-different shots and defects
without twins, per pool). For every setting it re-runs only the cheap steps on each run's
tables: the relation of every compared pair (sql/relation.sql over the cached pixel
measurements, tasks/verify.py) and the findings (the SQL rules), and scores them against the
ground truth. Calibrate on pool A; pool B is held out to report on. Pick settings that hold up
across collections, not the single best row.
"""

from __future__ import annotations

import argparse
import itertools
from pathlib import Path
from typing import Any

from photo_curate.config import CurateConfig
from photo_curate.evaluate import evaluate
from photo_curate.home import Home
from photo_curate.runs import all_run_ids
from tasks.findings import build_findings
from tasks.verify import verify

GRIDS: dict[str, dict[str, list[Any]]] = {
    "copy": {
        "copy_max_worst_block": [8.0, 10.0, 12.0],
        "copy_max_block_ratio": [4.5, 5.5, 6.5],
        "copy_max_chroma_block": [6.0, 8.0, 10.0],
    },
    "copy_tone": {
        "copy_max_mean_diff": [2.5, 3.0, 3.5],
        "copy_max_tone_shift": [30.0, 40.0, 50.0],
        "copy_min_detail_ratio": [0.75, 0.80, 0.85],
    },
    "similar": {"similar_min_ncc": [0.4, 0.5, 0.6, 0.7]},
    "dark": {
        "dark_p99": [80, 90, 100],
        "dark_max": [100, 120, 140],
        "dark_mean": [50, 60, 70],
    },
    "bright": {
        "bright_clipped": [0.2, 0.3, 0.4],
        "bright_mean": [140, 150, 170],
        "bright_highlights": [0.5, 0.6, 0.7],
    },
    "blurry": {
        "blur_sharpness": [-2.6, -2.5, -2.4, -2.3, -2.2, -2.1],
        "blur_falloff": [-0.6, -0.7, -0.8, -9],
    },
}
SCORE_OF = {
    "copy": "duplicate pairs",
    "copy_tone": "duplicate pairs",
    "similar": "near-duplicate pairs",
    "dark": "dark",
    "bright": "bright",
    "blurry": "blurry",
}


def runs(work: Path, pool: str) -> list[tuple[Home, str, Path, Path]]:
    """(home, run id, truth.csv, photos folder) of every bench.similar run of the pool."""
    out = []
    for home_dir in sorted(work.glob(f"home-*-{pool}-*")):
        name = home_dir.name.removeprefix("home-")
        home = Home(home_dir)
        ids = all_run_ids(home)
        coll = work / name
        if ids and (coll / "truth.csv").exists():
            out.append((home, ids[0], coll / "truth.csv", coll / "photos"))
    return out


def _rescore(found: list[tuple[Home, str, Path, Path]], cfg: CurateConfig) -> dict[str, list[int]]:
    totals: dict[str, list[int]] = {"must stay, planned": [0, 0, 0]}
    for home, run_id, truth, photos in found:
        verify(home, run_id, cfg, photos)  # the pixel measurements are cached: SQL only
        build_findings(home, run_id, cfg)
        res = evaluate(home, run_id, truth)
        for s in res["scores"]:  # type: ignore[attr-defined]
            t = totals.setdefault(s.kind, [0, 0, 0])
            t[0] += s.expected
            t[1] += s.predicted
            t[2] += s.true_positive
        totals["must stay, planned"][1] += len(res["similar_planned"])  # type: ignore[arg-type]
    return totals


def sweep(work: Path, pool: str, rule: str) -> None:
    grid = GRIDS[rule]
    found = runs(work, pool)
    if not found:
        raise SystemExit(f"no runs of pool {pool} under {work}: run `python -m bench.similar`")
    base = CurateConfig().model_dump(mode="json")
    names = list(grid)
    print(f"{rule}: {len(found)} runs of pool {pool}; " + " ".join(names))
    for values in itertools.product(*(grid[n] for n in names)):
        data = {**base, "rules": {**base["rules"], **dict(zip(names, values, strict=True))}}
        totals = _rescore(found, CurateConfig.model_validate(data))
        cells = []
        for kind, (exp, pred, tp) in totals.items():
            if kind == "must stay, planned":
                cells.append(f"stay-planned {pred}")
                continue
            if kind in ("invalid", "unsupported"):
                continue
            p = tp / pred if pred else 1.0
            r = tp / exp if exp else 1.0
            mark = "*" if kind == SCORE_OF[rule] else " "
            cells.append(f"{mark}{kind[:9]:>9} {100 * p:5.1f}/{100 * r:5.1f}")
        print(" ".join(f"{v!s:>6}" for v in values), " ".join(cells))
    _rescore(found, CurateConfig())  # leave the runs as the defaults would


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--work", default="/tmp/curate-bench-similar")
    ap.add_argument("--pool", default="A", choices=["A", "B"])
    ap.add_argument("--rule", choices=sorted(GRIDS), action="append")
    args = ap.parse_args()
    for rule in args.rule or list(GRIDS):
        sweep(Path(args.work), args.pool, rule)


if __name__ == "__main__":
    main()
