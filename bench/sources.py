"""Sources benchmark: unpacking archives and downloading a URL manifest of real-photo files.

    .venv/bin/python -m bench.sources [--images 500] [--latency-ms 20]

The files: distinct JPEGs cut from the real photos in the installed wheels (random crops,
long side 640-1600 px, quality 85-95). Times, each in a fresh HOME: unpacking a zip and a
tar.gz of them (and the reuse check of an unchanged unpacked folder); downloading them from a
local ThreadingHTTPServer on 127.0.0.1 that waits `--latency-ms` before each answer (a
stand-in for a network round trip), with 1, 4 and 8 workers; and the second run of the same
manifest, where every file is already there (hashing only). Writes bench/results/sources.json.
"""

from __future__ import annotations

import argparse
import functools
import json
import random
import tarfile
import tempfile
import threading
import time
import zipfile
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from PIL import Image

from photo_curate.config import SourcesConfig
from photo_curate.home import Home
from photo_curate.sample import bundled_photos
from photo_curate.sources import check_source, download_source, unpack_source

RESULTS = Path(__file__).resolve().parent / "results"


def build(out: Path, n: int, seed: int = 0) -> int:
    """n distinct JPEGs; returns their total size in bytes."""
    rng = random.Random(seed)
    photos = [Image.open(p).convert("RGB") for p in sorted(bundled_photos())]
    out.mkdir(parents=True, exist_ok=True)
    total = 0
    for i in range(n):
        im = rng.choice(photos)
        w, h = im.size
        cw, ch = int(w * rng.uniform(0.6, 0.95)), int(h * rng.uniform(0.6, 0.95))
        x, y = rng.randint(0, w - cw), rng.randint(0, h - ch)
        crop = im.crop((x, y, x + cw, y + ch))
        side = rng.randint(640, 1600)
        scale = side / max(crop.size)
        crop = crop.resize((max(1, round(cw * scale)), max(1, round(ch * scale))))
        path = out / f"{i // 100:02d}" / f"photo{i:05d}.jpg"
        path.parent.mkdir(exist_ok=True)
        crop.save(path, quality=rng.randint(85, 95))
        total += path.stat().st_size
    return total


class _SlowHandler(SimpleHTTPRequestHandler):
    latency_s = 0.0

    def log_message(self, *args: object) -> None:
        pass

    def do_GET(self) -> None:
        time.sleep(self.latency_s)
        super().do_GET()


def _timed(fn, *args):  # type: ignore[no-untyped-def]
    t0 = time.perf_counter()
    res = fn(*args)
    return time.perf_counter() - t0, res


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--images", type=int, default=500)
    ap.add_argument("--latency-ms", type=float, default=20.0)
    args = ap.parse_args()
    out: dict[str, object] = {"images": args.images, "latency_ms": args.latency_ms}
    with tempfile.TemporaryDirectory(prefix="bench-sources-") as tmp:
        root = Path(tmp)
        photos = root / "photos"
        size = build(photos, args.images)
        out["mib"] = round(size / 1024**2, 1)
        files = sorted(p for p in photos.rglob("*.jpg"))
        with zipfile.ZipFile(root / "photos.zip", "w") as zf:
            for p in files:
                zf.write(p, p.relative_to(photos).as_posix())
        with tarfile.open(root / "photos.tar.gz", "w:gz") as tf:
            tf.add(photos, arcname="photos")
        cfg = SourcesConfig()
        for name in ("photos.zip", "photos.tar.gz"):
            home = Home(root / f"home-{name}").ensure()
            src = check_source(root / name)
            t_fresh, acq = _timed(unpack_source, src, home, "r1", cfg)
            t_reuse, again = _timed(unpack_source, src, home, "r2", cfg)
            assert acq.counts["files"] == args.images and again.counts["reused"] == 1
            out[name] = {"unpack_s": round(t_fresh, 2), "reuse_s": round(t_reuse, 2)}
        _SlowHandler.latency_s = args.latency_ms / 1000
        handler = functools.partial(_SlowHandler, directory=str(photos))
        srv = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        threading.Thread(target=srv.serve_forever, daemon=True).start()
        base = f"http://127.0.0.1:{srv.server_address[1]}"
        manifest = root / "photos.csv"
        manifest.write_text("".join(f"{base}/{p.relative_to(photos).as_posix()}\n" for p in files))
        downloads: dict[str, float] = {}
        for workers in (1, 4, 8):
            home = Home(root / f"home-dl-{workers}").ensure()
            c = SourcesConfig(download_workers=workers)
            t, acq = _timed(download_source, check_source(manifest), home, "r1", c)
            assert acq.counts["downloaded"] == args.images, acq.counts
            downloads[f"workers_{workers}_s"] = round(t, 2)
        t, acq = _timed(download_source, check_source(manifest), home, "r2", c)
        assert acq.counts["cached"] == args.images
        downloads["cached_rerun_s"] = round(t, 2)
        srv.shutdown()
        out["download"] = downloads
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "sources.json").write_text(json.dumps(out, indent=1) + "\n")
    print(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
