"""Speed and quality against peers: curate run, bare fastdup, cleanvision, imagededup (PHash).

    .venv/bin/python -m bench.peers [--images 700] [--seed 0] [--prefect server|embedded]

One collection with planted defects and its ground truth (bench/corpus.py's planted collection:
photo_curate.sample's recipe over real photos, the truth format bench/quality.py scores), then,
back to back in this one invocation, each tool in a fresh child process of its own
(bench/measure.py: wall time, peak memory of the whole process tree and of its largest
process):
- `curate run` into a fresh HOME (the first run), then again unchanged into the same HOME;
- bare fastdup: `fastdup.create(work_dir, input_dir).run()` with its own defaults, as
  bench/speed.py runs it;
- cleanvision: `Imagelab(data_path=...).find_issues()` with its defaults;
- imagededup: `PHash().find_duplicates(image_dir=..., recursive=True)` with its defaults.
The peers live in their own venv, bench/.venv-peers (made here from bench/peers-requirements.txt
on first use, or by `make bench-peers`), so they never touch the product's pins.

Quality: precision and recall per finding kind, each tool's output mapped onto our kinds
(curate: its findings; fastdup: `atrain_features.bad.csv` is invalid, connected components
are duplicate groups, and its documented summary thresholds on `atrain_stats.csv` (mean < 4
dark, mean > 253 bright, blur < 150 blurry); cleanvision: exact and near duplicate sets are
duplicate groups, dark / light / blurry issues; imagededup: duplicates only). Duplicate pairs
are all pairs inside each tool's groups (its edges joined into connected components). A kind a
tool does not look for shows "-". A tool that fails is written down with its last error line;
when cleanvision fails on the folder, it is run again on the valid files alone (the truth's
broken files and the text file left out) so that its quality can still be shown, labelled as such.
Prints the tables; writes bench/results/peers.json.
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
from collections import defaultdict
from collections.abc import Iterator
from pathlib import Path

from bench.corpus import distinct_collection, image_files, planted_collection
from bench.measure import Measured, last_line, run_measured
from bench.speed import measure_bare_fastdup, prefect_env
from photo_curate.evaluate import (
    DEFECTS,
    INVALID_VARIANTS,
    Score,
    _pairs,
    evaluate,
    read_truth,
)
from photo_curate.home import Home
from photo_curate.runs import all_run_ids
from photo_curate.sample import DUPLICATE_VARIANTS

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results"
PEERS_VENV = HERE / ".venv-peers"
REQUIREMENTS = HERE / "peers-requirements.txt"
CURATE = Path(sys.executable).parent / "curate"
NOT_PHOTOS = {*INVALID_VARIANTS, "not_image"}  # what the second cleanvision run leaves out
KINDS = ("invalid", "duplicate pairs", "dark", "bright", "blurry")

# fastdup's own summary thresholds (stack-notes: dark mean < 4, bright mean > 253, blur < 150)
FASTDUP_DARK, FASTDUP_BRIGHT, FASTDUP_BLUR = 4.0, 253.0, 150.0

CLEANVISION = r"""
import json, os, sys
from cleanvision import Imagelab
root, out = sys.argv[1], sys.argv[2]
if len(sys.argv) > 3:
    lab = Imagelab(filepaths=[ln for ln in open(sys.argv[3]).read().splitlines() if ln])
else:
    lab = Imagelab(data_path=root)
lab.find_issues()
iss = lab.issues
rel = lambda p: os.path.relpath(p, root).replace(os.sep, "/")
kinds = {}
for col, kind in (("is_dark_issue", "dark"), ("is_light_issue", "bright"),
                  ("is_blurry_issue", "blurry")):
    if col in iss:
        kinds[kind] = [rel(p) for p in iss.index[iss[col]]]
groups = []
for key in ("exact_duplicates", "near_duplicates"):
    groups += [[rel(p) for p in s] for s in lab.info.get(key, {}).get("sets", [])]
json.dump({"kinds": kinds, "groups": groups, "n_seen": len(iss)}, open(out, "w"))
"""

IMAGEDEDUP = r"""
import json, os, sys
from imagededup.methods import PHash
root, out = sys.argv[1], sys.argv[2]
dups = PHash().find_duplicates(image_dir=root, recursive=True)
rel = lambda p: os.path.relpath(os.path.join(root, p), root).replace(os.sep, "/")
groups = [[rel(k)] + [rel(v) for v in vs] for k, vs in dups.items() if vs]
json.dump({"kinds": {}, "groups": groups, "n_seen": len(dups)}, open(out, "w"))
"""


# -- the peers' venv ----------------------------------------------------------------------------


def peers_python(install: bool = True) -> Path | None:
    """bench/.venv-peers/bin/python, made (or remade when the requirements change) if asked."""
    py = PEERS_VENV / "bin" / "python"
    stamp = PEERS_VENV / ".installed"
    want = hashlib.sha256(REQUIREMENTS.read_bytes()).hexdigest()
    if py.exists() and stamp.exists() and stamp.read_text() == want:
        return py
    if not install:
        return None
    print(f"installing the peers into {PEERS_VENV} (torch included: several GB, minutes)")
    subprocess.run([sys.executable, "-m", "venv", "--clear", str(PEERS_VENV)], check=True)
    subprocess.run(
        [str(py), "-m", "pip", "install", "--quiet", "-r", str(REQUIREMENTS)], check=True
    )
    stamp.write_text(want)
    return py


# -- scoring ------------------------------------------------------------------------------------


def components(groups: list[list[str]]) -> list[list[str]]:
    """Groups that share a file are one group (union-find over the members)."""
    parent: dict[str, str] = {}

    def find(x: str) -> str:
        while parent.setdefault(x, x) != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    for g in groups:
        for m in g[1:]:
            parent[find(m)] = find(g[0])
    out: dict[str, list[str]] = defaultdict(list)
    for m in parent:
        out[find(m)].append(m)
    return [sorted(v) for v in out.values() if len(v) > 1]


def score(truth_csv: Path, kinds: dict[str, set[str]], groups: list[list[str]] | None) -> dict:
    """Scores per kind (None where the tool does not look for that kind)."""
    truth = read_truth(truth_csv)
    out: dict[str, Score | None] = {}
    if "invalid" in kinds:
        exp = {p for p, r in truth.items() if r["variant"] in INVALID_VARIANTS}
        out["invalid"] = Score(
            "invalid", len(exp), len(kinds["invalid"]), len(exp & kinds["invalid"])
        )
    else:
        out["invalid"] = None
    if groups is not None:
        by_base: dict[str, list[str]] = defaultdict(list)
        for p, r in truth.items():
            if r["variant"] in DUPLICATE_VARIANTS:
                by_base[r["base"]].append(p)
        exp_pairs = _pairs(by_base)
        got = _pairs({str(i): g for i, g in enumerate(components(groups))})
        out["duplicate pairs"] = Score(
            "duplicate pairs", len(exp_pairs), len(got), len(exp_pairs & got)
        )
    else:
        out["duplicate pairs"] = None
    for variant, kind in DEFECTS.items():
        if kind in kinds:
            exp = {p for p, r in truth.items() if r["variant"] == variant}
            out[kind] = Score(kind, len(exp), len(kinds[kind]), len(exp & kinds[kind]))
        else:
            out[kind] = None
    return out


# -- the tools ----------------------------------------------------------------------------------


def run_curate(photos: Path, truth: Path | None, env: dict[str, str], timeout: float) -> list[dict]:
    home = Path(tempfile.mkdtemp(prefix="curate-peers-home-"))
    rows = []
    try:
        for label in ("curate run (first)", "curate run (unchanged re-run)"):
            m = run_measured(
                [str(CURATE), "run", str(photos), "--home", str(home)], env=env, timeout=timeout
            )
            ok = m.returncode in (0, 1) and not m.timed_out  # 1: a validation failed
            row = _row(label, m, ok)
            if ok and "first" in label and truth is not None:
                h = Home(home)
                res = evaluate(h, all_run_ids(h)[0], truth)
                row["scores"] = {s.kind: s for s in res["scores"]}  # type: ignore[attr-defined]
                row["bad_keepers"] = len(res["bad_keepers"])  # type: ignore[arg-type]
            rows.append(row)
    finally:
        shutil.rmtree(home, ignore_errors=True)
    return rows


def run_fastdup(photos: Path, truth: Path | None, timeout: float) -> dict:
    work = Path(tempfile.mkdtemp(prefix="bare-fastdup-"))
    try:
        m = measure_bare_fastdup(photos, work, timeout)
        row = _row("fastdup (bare, defaults)", m, m.ok)
        if m.ok and truth is not None:
            kinds, groups = fastdup_predictions(work, photos)
            row["scores"] = score(truth, kinds, groups)
        return row
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _read_csv(path: Path) -> Iterator[dict[str, str]]:
    """The rows of one of fastdup's CSV files, streamed; none when fastdup did not write it."""
    if path.exists():
        with open(path, newline="", encoding="utf-8") as fh:
            yield from csv.DictReader(fh)


def fastdup_predictions(work: Path, photos: Path) -> tuple[dict[str, set[str]], list[list[str]]]:
    """fastdup's outputs mapped onto our kinds (see the module docstring)."""

    def rel(name: str) -> str:
        return os.path.relpath(os.path.join(photos, name), photos).replace(os.sep, "/")

    names = {r["index"]: rel(r["filename"]) for r in _read_csv(work / "atrain_features.dat.csv")}
    kinds: dict[str, set[str]] = {"invalid": set(), "dark": set(), "bright": set(), "blurry": set()}
    for r in _read_csv(work / "atrain_features.bad.csv"):
        kinds["invalid"].add(rel(r["filename"]))
    for r in _read_csv(work / "atrain_stats.csv"):
        name = names.get(r["index"]) or (rel(r["filename"]) if r.get("filename") else None)
        if name is None:
            continue
        mean, blur = float(r["mean"]), float(r["blur"])
        if mean < FASTDUP_DARK:
            kinds["dark"].add(name)
        if mean > FASTDUP_BRIGHT:
            kinds["bright"].add(name)
        if blur < FASTDUP_BLUR:
            kinds["blurry"].add(name)
    by_comp: dict[str, list[str]] = defaultdict(list)
    for r in _read_csv(work / "connected_components.csv"):
        name = names.get(r["__id"])
        if name is not None:
            by_comp[r["component_id"]].append(name)
    return kinds, [g for g in by_comp.values() if len(g) > 1]


def run_peer(
    label: str,
    script: str,
    py: Path | None,
    photos: Path,
    truth: Path | None,
    timeout: float,
    extra: list[str] | None = None,
) -> dict:
    if py is None:
        return {"tool": label, "status": "not installed (make bench-peers)"}
    out = Path(tempfile.mkdtemp(prefix="peer-")) / "out.json"
    try:
        env = {**os.environ, "MPLBACKEND": "Agg", "TQDM_DISABLE": "1"}
        m = run_measured(
            [str(py), "-c", script, str(photos), str(out), *(extra or [])],
            env=env,
            cwd=out.parent,
            timeout=timeout,
        )
        ok = m.ok and out.exists()
        row = _row(label, m, ok)
        if ok:
            pred = json.loads(out.read_text())
            row["n_seen"] = pred["n_seen"]
            if truth is not None:
                kinds = {k: set(v) for k, v in pred["kinds"].items()}
                row["scores"] = score(truth, kinds, pred["groups"])
        return row
    finally:
        shutil.rmtree(out.parent, ignore_errors=True)


def _row(label: str, m: Measured, ok: bool) -> dict:
    status = (
        "ok"
        if ok
        else (
            "timed out" if m.timed_out else f"failed ({m.returncode}): {last_line(m.stderr_tail)}"
        )
    )
    return {"tool": label, "status": status, **m.as_dict()}


# -- the tables ---------------------------------------------------------------------------------


def speed_table(rows: list[dict], n_files: int) -> str:
    """Wall and CPU seconds per tool, and each as a multiple of curate's first run."""
    first = next((r for r in rows if r["tool"].startswith("curate run (first")), None)
    lines = [
        f"{'tool':<44}{'wall s':>8}{'img/s':>8}{'CPU s':>8}{'peak MB':>9}{'max proc MB':>12}"
        f"{'x curate':>9}{'CPU x':>7}  status"
    ]
    for r in rows:
        if "wall_s" not in r:
            lines.append(f"{r['tool']:<44}{'-':>8}{'-':>8}{'-':>8}{'-':>9}{'-':>12}{'-':>9}{'-':>7}"
                         f"  {r['status']}")  # fmt: skip
            continue
        ratio = f"{r['wall_s'] / first['wall_s']:.2f}" if first else "-"
        cpu = r.get("cpu_s", float("nan"))
        cpu_ratio = f"{cpu / first['cpu_s']:.2f}" if first and first.get("cpu_s") else "-"
        lines.append(
            f"{r['tool']:<44}{r['wall_s']:>8.1f}{r.get('n_files', n_files) / r['wall_s']:>8.1f}"
            f"{cpu:>8.1f}{r['peak_tree_mb']:>9.0f}{r['max_rss_mb']:>12.0f}{ratio:>9}"
            f"{cpu_ratio:>7}  {r['status']}"
        )
    return "\n".join(lines)


def quality_table(rows: list[dict]) -> str:
    head = "".join(f"{k:>18}" for k in KINDS)
    lines = [f"{'tool (precision / recall %)':<44}{head}"]
    for r in rows:
        if "scores" not in r:
            if "re-run" not in r["tool"]:
                lines.append(f"{r['tool']:<44}  {r['status']}")
            continue
        cells = []
        for k in KINDS:
            s = r["scores"].get(k)
            cells.append(
                f"{'-':>18}" if s is None else f"{100 * s.precision:>10.1f} /{100 * s.recall:>5.1f}"
            )
        lines.append(f"{r['tool']:<44}{''.join(cells)}")
    return "\n".join(lines)


def _jsonable(rows: list[dict]) -> list[dict]:
    out = []
    for row in rows:
        r = dict(row)
        if "scores" in r:
            r["scores"] = {
                k: (
                    None
                    if s is None
                    else {**s.__dict__, "precision": s.precision, "recall": s.recall}
                )
                for k, s in r["scores"].items()
            }
        out.append(r)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--images", type=int, default=700, help="about this many files")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument(
        "--prefect",
        choices=("server", "embedded"),
        default="server",
        help="curate against a running Prefect server, or its temporary one",
    )
    ap.add_argument(
        "--tools", nargs="+", default=["curate", "fastdup", "cleanvision", "imagededup"]
    )
    ap.add_argument("--no-install", action="store_true", help="do not create .venv-peers")
    ap.add_argument("--timeout", type=float, default=4 * 3600, help="seconds per tool")
    ap.add_argument(
        "--collection",
        choices=("planted", "distinct"),
        default="planted",
        help="planted defects with their truth (speed and quality), or distinct JPEGs (speed "
        "only: the way to time 20,000 and more, beyond what the photo pool gives as bases)",
    )
    args = ap.parse_args()

    truth: Path | None = None
    if args.collection == "planted":
        photos, truth = planted_collection(args.images, seed=args.seed)
    else:
        photos = distinct_collection(args.images, seed=args.seed)
    n_files = sum(1 for _ in image_files(photos))
    print(f"collection: {photos} ({n_files} files, truth {truth or 'none'})", flush=True)
    py = None
    if {"cleanvision", "imagededup"} & set(args.tools):
        py = peers_python(install=not args.no_install)
    rows: list[dict] = []
    work = Path(tempfile.mkdtemp(prefix="curate-bench-peers-"))
    try:
        if "curate" in args.tools:
            with prefect_env(args.prefect, work) as env:
                rows += run_curate(photos, truth, env, args.timeout)
            print(f"  {rows[-2]['tool']}: {rows[-2]['status']}", flush=True)
        if "fastdup" in args.tools:
            rows.append(run_fastdup(photos, truth, args.timeout))
            print(f"  {rows[-1]['tool']}: {rows[-1]['status']}", flush=True)
        if "cleanvision" in args.tools:
            rows.append(run_peer("cleanvision", CLEANVISION, py, photos, truth, args.timeout))
            print(f"  cleanvision: {rows[-1]['status']}", flush=True)
            if rows[-1]["status"] != "ok" and py is not None and truth is not None:
                listing = work / "valid-files.txt"
                bad = {p for p, r in read_truth(truth).items() if r["variant"] in NOT_PHOTOS}
                listing.write_text(
                    "".join(
                        f"{p}\n"
                        for p in image_files(photos)
                        if p.relative_to(photos).as_posix() not in bad
                    )
                )
                rows.append(
                    run_peer(
                        "cleanvision (broken files left out)",
                        CLEANVISION,
                        py,
                        photos,
                        truth,
                        args.timeout,
                        [str(listing)],
                    )
                )
                rows[-1]["n_files"] = n_files - len(bad)
                print(f"  {rows[-1]['tool']}: {rows[-1]['status']}", flush=True)
        if "imagededup" in args.tools:
            rows.append(run_peer("imagededup PHash", IMAGEDEDUP, py, photos, truth, args.timeout))
            print(f"  imagededup: {rows[-1]['status']}", flush=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print(f"\nspeed: {n_files} files, {os.cpu_count()} cores, curate with Prefect {args.prefect}")
    print(speed_table(rows, n_files))
    if truth is not None:
        print("\nquality against the planted truth")
        print(quality_table(rows))
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "peers.json").write_text(
        json.dumps(
            {
                "images": n_files,
                "seed": args.seed,
                "cores": os.cpu_count(),
                "prefect": args.prefect,
                "collection": str(photos),
                "kind": args.collection,
                "tools": _jsonable(rows),
            },
            indent=1,
        )
    )


if __name__ == "__main__":
    main()
