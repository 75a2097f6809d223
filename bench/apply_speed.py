"""Apply and undo speed: `curate apply` and `curate undo` on a 2,000+ image collection.

    .venv/bin/python -m bench.apply_speed [--images 2100]

Uses the speed benchmark's collection (bench/speed.py: crops and rescales of real photos, of
which most are duplicates of one another), copied to a scratch folder, one dry `curate run`,
then times the user's commands: `curate apply` (quarantine, journal on: an fsync'd intent
before and an outcome after every file) and `curate undo`, and checks the tree is back byte
for byte. Writes bench/results/apply.json.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

from bench.speed import build_speed_collection

RESULTS = Path(__file__).resolve().parent / "results"
CURATE = Path(sys.executable).parent / "curate"


def digest(root: Path) -> dict[str, str]:
    return {
        p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


def timed(*args: str) -> tuple[float, str]:
    t0 = time.perf_counter()
    p = subprocess.run([str(CURATE), *args], capture_output=True, text=True, check=False)
    if p.returncode != 0:
        raise SystemExit(f"curate {args[0]} failed: {p.stderr.strip()}")
    return time.perf_counter() - t0, p.stdout


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--images", type=int, default=2100)
    ap.add_argument("--work", default="/tmp/curate-bench-apply")
    args = ap.parse_args()
    work = Path(args.work)
    shutil.rmtree(work, ignore_errors=True)
    source = build_speed_collection(args.images)
    coll = work / "photos"
    shutil.copytree(source, coll, copy_function=shutil.copy2)
    home = work / "home"
    before = digest(coll)
    run_s, out = timed("run", str(coll), "--home", str(home))
    run_id = out.strip().split()[-1]
    apply_s, out = timed("apply", run_id, "--home", str(home))
    applied = out.splitlines()[0]
    moved = len(before) - len(digest(coll))
    undo_s, out = timed("undo", run_id, "--home", str(home))
    same = digest(coll) == before
    print(f"{len(before)} files; dry run {run_s:.1f} s")
    print(f"curate apply: {apply_s:5.1f} s for {moved} files moved to quarantine ({applied})")
    print(f"curate undo:  {undo_s:5.1f} s ({out.splitlines()[0]}); tree identical: {same}")
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "apply.json").write_text(json.dumps(
        {"files": len(before), "moved": moved, "apply_s": apply_s, "undo_s": undo_s,
         "identical_after_undo": same}, indent=1))  # fmt: skip
    if not same:
        raise SystemExit("undo did not restore the tree")


if __name__ == "__main__":
    main()
