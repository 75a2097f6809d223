"""How the default thresholds were chosen: sweep each rule's thresholds on finished runs.

    .venv/bin/python -m bench.calibrate [--work /tmp/curate-bench-quality] [--rule bright]

Uses the homes that `bench.quality` left behind (collections built from real photos with
planted defects, one per seed). For every setting it re-runs only the findings step (the SQL
rules, a fraction of a second) on each run's tables and scores it against the ground truth,
then prints precision and recall summed over the seeds. Pick settings that hold up across
seeds and recipes, not the single best row of one collection.
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

GRIDS: dict[str, dict[str, list[Any]]] = {
    "dark": {
        "dark_p95": [40, 50, 60],
        "dark_mean": [40, 50],
        "dark_relative_drop": [20, 30, 45],
        "dark_relative_p95": [100, 120, 140],
    },
    "bright": {
        "bright_clipped": [0.6, 0.8],
        "bright_mean": [230, 240],
        "bright_relative_lift": [40, 50, 60],
        "bright_relative_clipped": [0.35, 0.4, 0.45],
    },
    "blurry": {
        "blur_sharpness": [-2.8, -2.6, -2.4],
        "blur_falloff": [-0.5, -0.55, -0.6, -0.65, -0.7, -0.8, -9],
        "blur_relative_drop": [0.6, 0.8, 1.0],
    },
    "exposure": {
        "exposure_pair_similarity": [0.7, 0.75, 0.8, 0.85],
        "dark_relative_drop": [30, 45],
        "bright_relative_lift": [40, 50],
    },
    "duplicate": {
        "duplicate_similarity": [0.86, 0.88, 0.90, 0.92],
        "duplicate_max_mean_diff": [25, 35, 45],
        "duplicate_max_sharpness_diff": [0.35, 0.45, 0.6],
    },
}
SCORE_OF = {
    "dark": "dark",
    "bright": "bright",
    "blurry": "blurry",
    "exposure": "dark",
    "duplicate": "duplicate pairs",
}


def runs(work: Path) -> list[tuple[Home, str, Path]]:
    out = []
    for home_dir in sorted(work.glob("home-*")):
        seed = home_dir.name.split("-", 1)[1]
        home = Home(home_dir)
        ids = all_run_ids(home)
        truth = work / f"collection-{seed}" / "truth.csv"
        if ids and truth.exists():
            out.append((home, ids[0], truth))
    return out


def sweep(work: Path, rule: str) -> None:
    grid = GRIDS[rule]
    found = runs(work)
    if not found:
        raise SystemExit(f"no runs under {work}: run `python -m bench.quality` first")
    base = CurateConfig().model_dump(mode="json")
    names = list(grid)
    print(f"{rule}: {len(found)} runs; " + " ".join(names) + "   precision recall (all kinds)")
    for values in itertools.product(*(grid[n] for n in names)):
        data = {**base, "rules": {**base["rules"], **dict(zip(names, values, strict=True))}}
        cfg = CurateConfig.model_validate(data)
        totals: dict[str, list[int]] = {}
        for home, run_id, truth in found:
            build_findings(home, run_id, cfg)
            for s in evaluate(home, run_id, truth)["scores"]:  # type: ignore[attr-defined]
                t = totals.setdefault(s.kind, [0, 0, 0])
                t[0] += s.expected
                t[1] += s.predicted
                t[2] += s.true_positive
        cells = []
        for kind, (exp, pred, tp) in totals.items():
            p = tp / pred if pred else 1.0
            r = tp / exp if exp else 1.0
            mark = "*" if kind == SCORE_OF[rule] else " "
            cells.append(f"{mark}{kind[:9]:>9} {100 * p:5.1f}/{100 * r:5.1f}")
        print(" ".join(f"{v!s:>6}" for v in values), " ".join(cells))
    # leave the runs as the defaults would
    for home, run_id, _ in found:
        build_findings(home, run_id, CurateConfig())


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--work", default="/tmp/curate-bench-quality")
    ap.add_argument("--rule", choices=sorted(GRIDS), action="append")
    args = ap.parse_args()
    for rule in args.rule or list(GRIDS):
        sweep(Path(args.work), rule)


if __name__ == "__main__":
    main()
