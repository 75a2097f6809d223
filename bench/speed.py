"""Speed benchmark: `curate run` against a bare fastdup run on the same 2,000+ real-photo files.

    .venv/bin/python -m bench.speed [--images 2100] [--rounds 3]

The collection: every real photo available offline (bench/photos.py), each cut into distinct
files by random crops (50-95 % of each side) and rescales (long side 480-1600 px), saved as
JPEG at quality 80-95 (bench/corpus.py builds it in parallel and caches it under
bench/.cache/collections). The baseline is what the seed workflow ran:
`fastdup.create(work_dir, input_dir).run()` on the folder, in a fresh work dir, in its own
process (with fastdup's telemetry switched off, as curate does). Each round times, back to
back on the same files: bare fastdup; `curate run` with a Prefect server already running
(nightly use); `curate run` with no server (Prefect's embedded temporary server, the default
for a first-time user). Ratios are per round, against the baseline of the same round; the
table shows medians. Writes bench/results/speed.json.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from bench.corpus import distinct_collection
from bench.measure import Measured, run_measured

RESULTS = Path(__file__).resolve().parent / "results"
BIN = Path(sys.executable).parent
QUIET = {"SENTRY_OPT_OUT": "1", "FASTDUP_PRODUCTION": "1", "DO_NOT_TRACK": "1"}

BARE_FASTDUP = """
import sys, fastdup
fd = fastdup.create(work_dir=sys.argv[1], input_dir=sys.argv[2])
fd.run()
"""


def build_speed_collection(n_images: int, sides: tuple[int, int] = (480, 1600)) -> Path:
    """The collection of distinct real-photo JPEGs (bench/corpus.py: parallel, cached).

    `sides`: the range of the long side. For camera-sized files (e.g. 3000-4000 px) only the
    photos at least that large are used (the 5120 px wallpapers), cropped, never upscaled.
    """
    return distinct_collection(n_images, sides=sides)


def measure_bare_fastdup(collection: Path, work: Path, timeout: float) -> Measured:
    """Bare fastdup on `collection` into `work` (kept for the caller to read, then remove),
    measured in a child of its own (bench/measure.py)."""
    return run_measured(
        [sys.executable, "-c", BARE_FASTDUP, str(work), str(collection)],
        env={**os.environ, **QUIET},
        cwd=work,
        timeout=timeout,
    )


def time_bare_fastdup(collection: Path) -> float:
    work = Path(tempfile.mkdtemp(prefix="bare-fastdup-"))
    try:
        t0 = time.perf_counter()
        subprocess.run(
            [sys.executable, "-c", BARE_FASTDUP, str(work), str(collection)],
            env={**os.environ, **QUIET}, check=True,
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        return time.perf_counter() - t0
    finally:
        shutil.rmtree(work, ignore_errors=True)


def time_curate(collection: Path, env: dict[str, str]) -> float:
    home = Path(tempfile.mkdtemp(prefix="curate-home-"))
    try:
        t0 = time.perf_counter()
        p = subprocess.run(
            [str(BIN / "curate"), "run", str(collection), "--home", str(home)],
            env=env, capture_output=True, text=True, check=False,
        )  # fmt: skip
        seconds = time.perf_counter() - t0
        if p.returncode != 0:
            raise SystemExit(f"curate run failed: {p.stderr.strip()}")
        return seconds
    finally:
        shutil.rmtree(home, ignore_errors=True)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(prefect_home: Path) -> tuple[subprocess.Popen[bytes], str]:
    port = _free_port()
    env = {**os.environ, "PREFECT_HOME": str(prefect_home),
           "PREFECT_SERVER_ANALYTICS_ENABLED": "false", "DO_NOT_TRACK": "1"}  # fmt: skip
    proc = subprocess.Popen(
        [str(BIN / "prefect"), "server", "start", "--host", "127.0.0.1", "--port", str(port)],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}/api"
    import httpx

    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{url}/health", timeout=2).status_code == 200:
                return proc, url
        except httpx.HTTPError:
            pass
        time.sleep(1)
    proc.kill()
    raise SystemExit("the Prefect server did not start")


@contextmanager
def prefect_env(mode: str, work: Path) -> Iterator[dict[str, str]]:
    """The environment of the `curate` children: with a Prefect server started here and
    stopped on exit ("server"), or with Prefect's temporary server per run ("embedded")."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_API")}
    if mode == "embedded":
        yield {**clean, "PREFECT_HOME": str(work / "prefect-embedded")}
        return
    server, url = start_server(work / "prefect-home")
    try:
        yield {**clean, "PREFECT_API_URL": url}
    finally:
        server.terminate()
        server.wait(timeout=30)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--images", type=int, default=2100)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--work", default="/tmp/curate-bench-speed")
    ap.add_argument("--sides", type=int, nargs=2, default=[480, 1600],
                    help="range of the long side in px (camera-sized: 3000 4000)")  # fmt: skip
    args = ap.parse_args()
    work = Path(args.work)
    suffix = "" if args.sides == [480, 1600] else f"-{args.sides[0]}-{args.sides[1]}"
    collection = build_speed_collection(args.images, sides=(args.sides[0], args.sides[1]))
    n = args.images
    rows = []
    with prefect_env("server", work) as with_server, prefect_env("embedded", work) as embedded:
        time_curate(collection, with_server)  # warm-up: OS file cache, first migrations
        time_curate(collection, embedded)
        for r in range(args.rounds):
            bare = time_bare_fastdup(collection)
            served = time_curate(collection, with_server)
            emb = time_curate(collection, embedded)
            rows.append({"round": r + 1, "bare_fastdup_s": bare, "curate_server_s": served,
                         "curate_embedded_s": emb, "ratio_server": served / bare,
                         "ratio_embedded": emb / bare})  # fmt: skip
            print(
                f"round {r + 1}: bare fastdup {bare:6.1f} s  curate (server) {served:6.1f} s "
                f"({served / bare:.2f}x)  curate (no server) {emb:6.1f} s ({emb / bare:.2f}x)",
                flush=True,
            )
    med = {k: statistics.median(r[k] for r in rows) for k in rows[0] if k != "round"}
    print(
        f"\n{n} images, {os.cpu_count()} cores, median of {len(rows)} rounds:\n"
        f"  bare fastdup (create().run() on the folder)   {med['bare_fastdup_s']:6.1f} s   1.00x\n"
        f"  curate run, Prefect server running           {med['curate_server_s']:6.1f} s   "
        f"{med['ratio_server']:.2f}x\n"
        f"  curate run, no server (embedded)             {med['curate_embedded_s']:6.1f} s   "
        f"{med['ratio_embedded']:.2f}x"
    )
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / f"speed{suffix}.json").write_text(
        json.dumps(
            {
                "images": n,
                "sides": args.sides,
                "cores": os.cpu_count(),
                "rounds": rows,
                "median": med,
            },
            indent=1,
        )
    )


if __name__ == "__main__":
    main()
