"""The floor: only read and decode every image at analysis size, on all cores; curate's ratio.

    .venv/bin/python -m bench.floor [--images 2000] [--prefect server|embedded]

No tool that looks at every pixel can be faster than reading each file and decoding it at
the size it analyses. This measures that on the growth benchmark's collection of distinct
real-photo JPEGs (bench/corpus.py): one process per core, each reading its files and decoding
them as photo_curate/inspect_image.py does (libjpeg-turbo's DCT scaling to just above 512 px,
then the exact reduction to 512 px; other formats through Pillow's draft mode), nothing else:
no hash, no metrics, nothing written. Then `curate run` on the same files in a fresh HOME
(bench/measure.py), and the ratio of the two. Prints a table; writes bench/results/floor.json.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import shutil
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import cv2
import numpy as np
from PIL import Image

from bench.corpus import distinct_collection, image_files
from bench.measure import run_measured
from bench.speed import prefect_env
from photo_curate.inspect_image import ANALYSIS_SIZE, _decode_jpeg_reduced, _fit

RESULTS = Path(__file__).resolve().parent / "results"
CURATE = Path(sys.executable).parent / "curate"
CHUNK = 64


def decode_at_analysis_size(path: str) -> tuple[int, int]:
    """Read one file and decode it to at most 512 px on the long side; returns that shape."""
    with open(path, "rb") as fh:
        data = fh.read()
    im = Image.open(io.BytesIO(data))
    width, height = im.size
    if im.format in ("JPEG", "MPO") and im.mode in ("RGB", "L"):
        arr = _decode_jpeg_reduced(data, width, height)
    else:
        im.draft("RGB", (ANALYSIS_SIZE, ANALYSIS_SIZE))
        arr = np.asarray(im.convert("RGB"))
    if max(arr.shape[:2]) > ANALYSIS_SIZE:
        arr = _fit(arr, ANALYSIS_SIZE)
    return arr.shape[0], arr.shape[1]


def _decode_chunk(paths: list[str]) -> int:
    cv2.setNumThreads(1)
    for p in paths:
        decode_at_analysis_size(p)
    return len(paths)


def floor_seconds(root: Path, workers: int) -> tuple[float, int]:
    """Wall time to decode every file under `root` at analysis size on `workers` processes."""
    t0 = time.perf_counter()
    n = 0
    with ProcessPoolExecutor(workers) as pool:
        chunk: list[str] = []
        futures = []
        for p in image_files(root):  # streamed: chunks are submitted while the walk goes on
            chunk.append(str(p))
            if len(chunk) == CHUNK:
                futures.append(pool.submit(_decode_chunk, chunk))
                chunk = []
        if chunk:
            futures.append(pool.submit(_decode_chunk, chunk))
        n = sum(f.result() for f in futures)
    return time.perf_counter() - t0, n


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--images", type=int, default=2000)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--prefect", choices=("server", "embedded"), default="server")
    args = ap.parse_args()
    root = distinct_collection(args.images, seed=args.seed)
    workers = os.cpu_count() or 1
    floor_seconds(root, workers)  # warm-up: the OS file cache, as for curate below
    floor, n = floor_seconds(root, workers)
    work = Path(tempfile.mkdtemp(prefix="curate-bench-floor-"))
    try:
        with prefect_env(args.prefect, work) as env:
            m = run_measured([str(CURATE), "run", str(root), "--home", str(work / "home")], env=env)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    if m.returncode not in (0, 1):
        raise SystemExit(f"curate run failed ({m.returncode}): {m.stderr_tail.strip()[-300:]}")
    print(f"\n{n} JPEGs, {workers} cores, curate with Prefect {args.prefect}")
    print(f"{'':<46}{'wall s':>8}{'img/s':>8}{'x floor':>9}")
    print(
        f"{'floor: read + decode at 512 px, all cores':<46}{floor:>8.1f}{n / floor:>8.1f}"
        f"{1.0:>9.2f}"
    )
    print(
        f"{'curate run (fresh HOME)':<46}{m.wall_s:>8.1f}{n / m.wall_s:>8.1f}"
        f"{m.wall_s / floor:>9.2f}"
    )
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "floor.json").write_text(
        json.dumps(
            {
                "images": n,
                "cores": workers,
                "prefect": args.prefect,
                "floor_s": floor,
                "curate": m.as_dict(),
                "ratio": m.wall_s / floor,
            },
            indent=1,
        )
    )


if __name__ == "__main__":
    main()
