"""Quality benchmark: precision and recall of `curate run` against planted ground truth.

    .venv/bin/python -m bench.quality [--seeds 1 2] [--recipe wide|default] [--max-side 1600]

Builds a collection per seed from every real photo available offline (bench/photos.py) in the
sample's roles (photo_curate.sample: copies, defects without their twins, look-changing edits,
a darker copy next to its original), runs `curate run` on it as a user would (the CLI, in a
fresh home), and scores the findings (photo_curate.evaluate). Prints a table per seed and the
totals; writes bench/results/quality.json.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

from bench.photos import photo_pool
from photo_curate.evaluate import Score, evaluate, format_scores
from photo_curate.home import Home
from photo_curate.runs import all_run_ids
from photo_curate.sample import Recipe, build_collection

RESULTS = Path(__file__).resolve().parent / "results"
RECIPES = {
    "default": Recipe(),
    # wider than the sample's: mild and strong versions of every defect
    "wide": Recipe(
        resize=(0.3, 0.8),
        recompress_quality=(25, 75),
        crop=(0.0, 0.06),
        correct=(0.90, 1.12),
        white_balance=(0.94, 1.06),
        dark=(0.10, 0.40),
        overexpose=(2.0, 3.5),
        blur_fraction=(0.004, 0.012),
        reframe=(0.2, 0.4),
    ),
}


def run_one(work: Path, seed: int, recipe: Recipe, max_side: int) -> dict[str, object]:
    coll = work / f"collection-{seed}"
    home = work / f"home-{seed}"
    shutil.rmtree(coll, ignore_errors=True)
    shutil.rmtree(home, ignore_errors=True)
    truth = build_collection(coll, photo_pool(), seed=seed, recipe=recipe, max_side=max_side)
    t0 = time.monotonic()
    proc = subprocess.run(
        [str(Path(sys.executable).parent / "curate"), "run", str(coll / "photos"),
         "--home", str(home)],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    seconds = time.monotonic() - t0
    if proc.returncode not in (0, 1):
        raise SystemExit(f"curate run failed ({proc.returncode}): {proc.stderr.strip()}")
    h = Home(home)
    result = evaluate(h, all_run_ids(h)[0], truth)
    result["seconds"] = seconds
    return result


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seeds", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--recipe", choices=sorted(RECIPES), default="wide")
    ap.add_argument("--max-side", type=int, default=1600)
    ap.add_argument("--work", default="/tmp/curate-bench-quality")
    args = ap.parse_args()
    work = Path(args.work)
    totals: dict[str, list[int]] = {}
    report = []
    for seed in args.seeds:
        res = run_one(work, seed, RECIPES[args.recipe], args.max_side)
        print(f"\nseed {seed} ({res['seconds']:.0f} s)\n{format_scores(res)}")
        for s in res["scores"]:  # type: ignore[attr-defined]
            t = totals.setdefault(s.kind, [0, 0, 0])
            t[0] += s.expected
            t[1] += s.predicted
            t[2] += s.true_positive
        report.append(
            {
                "seed": seed,
                "scores": [s.__dict__ for s in res["scores"]],  # type: ignore[attr-defined]
                "bad_keepers": res["bad_keepers"],
                "wrongly_planned": res["wrongly_planned"],
            }
        )
    total = {"scores": [Score(k, *v) for k, v in totals.items()], "bad_keepers": [],
             "wrongly_planned": []}  # fmt: skip
    bad = sum(len(r["bad_keepers"]) for r in report)
    wrong = sum(len(r["wrongly_planned"]) for r in report)
    total["bad_keepers"] = [None] * bad
    total["wrongly_planned"] = [None] * wrong
    print(f"\nall seeds ({args.recipe} recipe, max side {args.max_side})\n{format_scores(total)}")
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "quality.json").write_text(
        json.dumps({"recipe": args.recipe, "runs": report}, indent=1)
    )


if __name__ == "__main__":
    main()
