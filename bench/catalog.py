"""The steps after the graph on a synthetic catalog of a million images: findings, validation
and report, each with its wall time and peak memory.

    .venv/bin/python -m bench.catalog [--images 1000000]

The catalog is made by DuckDB straight into Parquet (no image files are decoded): a `files`
manifest and an `images` table of `--images` rows with metrics drawn per row from a seeded hash
(about 1 % dark, 1 % overexposed, 1 % soft, 0.5 % invalid, 2 % byte copies), a `pairs` table
shaped like the neighbour step's output (scenes of five similar shots, 0.80 to 0.89 within, a
copy at 0.95+ in one scene of three, plus two weaker pairs of 0.70 to 0.80 per image: about
four pairs per image), and `outliers` (0.5 % of the images). SOURCE holds one empty file per
manifest row, since validation counts the files on disk itself. Each step then runs in a fresh
child process (bench/measure.py: wall time, CPU time, peak memory of the process tree) as the
flow runs it: tasks.findings.build_findings, tasks.validate.validate_run, then the report
(photo_curate.report). Prints the table; writes bench/results/catalog.json.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
from datetime import datetime
from pathlib import Path

from bench.measure import run_measured

RESULTS = Path(__file__).resolve().parent / "results"
RUN = "20260101T000000-bench"
PER_FOLDER = 250


def _u(i: str, salt: str) -> str:
    """A uniform [0, 1) draw per row and purpose (DuckDB's hash of the row and a salt)."""
    return f"((hash({i}, '{salt}') % 1000000) / 1000000.0)"


def build_catalog(root: Path, n: int) -> tuple[Path, Path]:
    """(HOME, SOURCE) of a synthetic catalog of n images."""
    from photo_curate import db
    from photo_curate.config import CurateConfig
    from photo_curate.home import Home
    from photo_curate.schema import TABLES
    from photo_curate.tableio import RowWriter, copy_to_table

    home, source = Home(root / "home").ensure(), root / "source"
    for d in range(-(-n // PER_FOLDER)):  # one empty file per manifest row
        folder = source / f"{d:04d}"
        folder.mkdir(parents=True)
        for i in range(d * PER_FOLDER, min(n, (d + 1) * PER_FOLDER)):
            (folder / f"img_{i:07d}.jpg").touch()
    con = db.connect(home)
    con.execute(
        f"""CREATE TABLE ids AS SELECT i, printf('%04d/img_%07d.jpg', i // {PER_FOLDER}, i) AS path
            FROM range($n) t(i)""",
        {"n": n},
    )
    files = {"run_id": "$run", "path": "path", "entry_type": "'file'", "size_bytes": "0",
             "mtime": "TIMESTAMP '2024-01-01'", "mtime_ns": "1704067200000000000",
             "inode": "i", "format_hint": "'jpeg'", "status": "'image'",
             "reason": "NULL"}  # fmt: skip
    u = {k: _u("i", k) for k in ("dark", "bright", "soft", "bad", "copy", "m", "q")}
    images = {
        "run_id": "$run", "path": "path",
        "sha256": f"sha256(CAST(CASE WHEN {u['copy']} < 0.02 AND i > 0 THEN i - 1 ELSE i END "
                  "AS VARCHAR))",
        "size_bytes": f"(1500000 + 3000000 * {u['m']})::BIGINT",
        "mtime": "TIMESTAMP '2024-01-01' + to_seconds(i)", "mtime_ns": "1704067200000000000 + i",
        "width": "4000", "height": "3000", "format": "'JPEG'", "mode": "'RGB'", "frames": "1",
        "is_valid": f"{u['bad']} >= 0.005",
        "error": f"CASE WHEN {u['bad']} < 0.005 THEN 'truncated: image file is truncated' END",
        "blur": "NULL", "min": "0", "max": "255", "stdv": "50",
        "mean": f"CASE WHEN {u['dark']} < 0.01 THEN 20 WHEN {u['bright']} < 0.01 THEN 245 "
                f"ELSE 60 + 120 * {u['m']} END",
        "p05": "10", "p50": "100",
        "p95": f"CASE WHEN {u['dark']} < 0.01 THEN 35 ELSE 200 END",
        "clipped_dark": "0.0",
        "clipped_bright": f"CASE WHEN {u['bright']} < 0.01 THEN 0.9 ELSE 0.01 END",
        "lapvar": "100", "sharpness": f"CASE WHEN {u['soft']} < 0.01 THEN -3.2 ELSE -1.5 END",
        "sharp_512": f"CASE WHEN {u['soft']} < 0.01 THEN -3.2 ELSE -1.5 END",
        "sharp_256": f"CASE WHEN {u['soft']} < 0.01 THEN -3.0 ELSE -1.4 END",
        "sharp_128": f"CASE WHEN {u['soft']} < 0.01 THEN -2.9 ELSE -1.3 END",
        "captured_at": "TIMESTAMP '2023-06-01' + to_seconds(i * 7)",
        "camera_make": "'Camera'", "camera_model": "'X1'", "orientation": "1",
        "jpeg_quality": f"(80 + 15 * {u['q']})::INTEGER", "analysis_id": "i",
    }  # fmt: skip
    for table, cols in (("files", files), ("images", images)):
        sel = ", ".join(f'CAST({cols[c]} AS {t}) AS "{c}"' for c, t in TABLES[table])
        copy_to_table(con, home, table, RUN, f"SELECT {sel} FROM ids", {"run": RUN})
    con.execute(
        f"CREATE VIEW valid AS SELECT i, path FROM ids WHERE {u['bad']} >= 0.005"
    )  # pairs name valid images only, as the neighbour step's do
    pairs = f"""
        WITH scene AS (  -- five consecutive shots
            SELECT a.path AS path_a, b.path AS path_b,
                   CASE WHEN a.i // 5 % 3 = 0 AND b.i = a.i + 1 THEN 0.95 + 0.05 * {_u("a.i", "s1")}
                        ELSE 0.80 + 0.09 * {_u("a.i * 7 + b.i", "s2")} END AS similarity
            FROM valid a JOIN valid b ON b.i // 5 = a.i // 5 AND b.i > a.i),
        weak AS (
            SELECT v.path AS path_a, w.path AS path_b, 0.70 + 0.10 * {_u("v.i * 3 + k", "s3")}
                   AS similarity
            FROM valid v CROSS JOIN range(2) r(k)
            JOIN valid w ON w.i = (v.i * 7919 + k * 104729 + 13) % $n)
        SELECT $run AS run_id, least(path_a, path_b) AS path_a, greatest(path_a, path_b) AS path_b,
               max(similarity) AS similarity
        FROM (SELECT * FROM scene UNION ALL SELECT * FROM weak)
        WHERE path_a <> path_b GROUP BY ALL"""
    copy_to_table(con, home, "pairs", RUN, pairs, {"run": RUN, "n": n})
    outliers = f"""SELECT $run AS run_id, path, 0.5 AS similarity, path AS nearest
                   FROM valid WHERE {_u("i", "out")} < 0.005"""
    copy_to_table(con, home, "outliers", RUN, outliers, {"run": RUN})
    con.close()
    with RowWriter(home, "runs", RUN) as out:
        out.add({"run_id": RUN, "started_at": datetime.now(),
                 "source": str(source), "source_kind": "folder", "source_dir": str(source),
                 "status": "running", "n_files": n, "n_images": n,
                 "config": CurateConfig().to_json(), "mode": "full"})  # fmt: skip
    return home.root, source


def child(step: str, home: str, source: str) -> None:
    from photo_curate.config import CurateConfig
    from photo_curate.home import Home

    h = Home(Path(home))
    if step == "findings":
        from tasks.findings import build_findings

        res = build_findings(h, RUN, CurateConfig())
        print(json.dumps({"counts": res.counts, "groups": res.groups, "planned": res.n_planned}))
    elif step == "validate":
        from tasks.validate import validate_run

        val = validate_run(h, RUN, Path(source))
        print(json.dumps({"success": val.success, "checks": val.n_checks, "failed": val.failed}))
    else:
        from photo_curate.report import build_report, report_facts

        facts = report_facts(h, RUN, source)
        print(json.dumps({"report": str(build_report(h, RUN, Path(source), facts))}))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--images", type=int, default=1_000_000)
    ap.add_argument("--work", default=None)
    args = ap.parse_args()
    work = Path(args.work or tempfile.mkdtemp(prefix="curate-bench-catalog-"))
    rows = []
    try:
        print(f"building a synthetic catalog of {args.images} images in {work}", flush=True)
        home, source = build_catalog(work, args.images)
        for step in ("findings", "validate", "report"):
            cmd = [sys.executable, "-m", "bench.catalog", "--child", step, str(home), str(source)]
            m = run_measured(cmd, env=dict(os.environ), timeout=6 * 3600)
            if not m.ok:
                raise SystemExit(f"{step} failed ({m.returncode}): {m.stderr_tail[-600:]}")
            out = json.loads(m.stdout.strip().splitlines()[-1])
            rows.append({"step": step, **m.as_dict(), "out": out})
            print(f"  {step}: {m.wall_s:.1f} s, peak {m.peak_tree_mb:.0f} MB "
                  f"(largest process {m.max_rss_mb:.0f} MB)", flush=True)  # fmt: skip
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print(f"\n{args.images} images, {os.cpu_count()} cores")
    print(f"{'step':>10}{'wall s':>9}{'CPU s':>9}{'peak MB, all processes':>24}"
          f"{'largest process MB':>20}")  # fmt: skip
    for r in rows:
        print(f"{r['step']:>10}{r['wall_s']:>9.1f}{r['cpu_s']:>9.1f}{r['peak_tree_mb']:>24.0f}"
              f"{r['max_rss_mb']:>20.0f}")  # fmt: skip
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "catalog.json").write_text(
        json.dumps({"images": args.images, "cores": os.cpu_count(), "steps": rows}, indent=1)
    )


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        child(sys.argv[2], sys.argv[3], sys.argv[4])
    else:
        main()
