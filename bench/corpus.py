"""Benchmark collections built from the real photos, generated in parallel and cached on disk.

Two kinds, both cached under bench/.cache/collections/<name keyed by every parameter>, built in
a staging folder and renamed into place when complete (an interrupted build is never reused):

- `distinct_collection(n)`: n distinct JPEG files cut from the real photos (bench/photos.py)
  by random crops (50-95 % of each side), rescales (long side 480-1600 px) and re-encodes
  (quality 80-95), as bench/speed.py's builder, but one worker task per source photo (each
  loads its photo once and writes every n-th file), each file drawn from its own seeded RNG:
  the same parameters give the same bytes on any number of cores, and memory does not grow
  with n.
- `planted_collection(n)`: photo_curate.sample's collection with planted defects and its
  ground truth (the same truth.csv format bench/quality.py scores), sized to about n files.
  Its base photos are the real photos or, when more bases are needed, disjoint tiles of them
  (a g x g grid: tiles of one photo share no pixels, so no two bases are copies). The bases
  are split into parts built in parallel, each part a sample collection of its own under
  photos/partNN/ with its own broken files; truth paths and base ids are prefixed by part.
"""

from __future__ import annotations

import csv
import hashlib
import json
import math
import os
import random
import shutil
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

from PIL import Image, ImageStat

from bench.photos import CACHE, photo_pool
from photo_curate.sample import Recipe, build_collection

COLLECTIONS = CACHE / "collections"
PER_FOLDER = 250
SOURCE_LIMIT = 2000  # sources are shrunk to this long side before cropping (as bench/speed.py)
# photo_curate.sample's roles: 6 copies and 2-3 edits, or 6 copies and a darker copy, or a
# single defect: about 6 files a base on average
FILES_PER_BASE = 6
# truncated, empty, corrupt, a text file, a small unicode-named copy, two alpha pictures, a
# DNG and a JPEG XL file
BROKEN_PER_PART = 9
BASES_PER_PART = 40
MIN_TILE_SIDE = 128
# a tile with less contrast than this (grey-level standard deviation) is a plain sky or wall:
# every such tile looks like every other, so its copies cannot be planted truth of their own
MIN_TILE_STD = 16.0


def _workers() -> int:
    return os.cpu_count() or 1


def _finish(stage: Path, final: Path, params: dict[str, object]) -> Path:
    (stage / "params.json").write_text(json.dumps(params, indent=1))
    shutil.rmtree(final, ignore_errors=True)
    os.replace(stage, final)
    return final


def _cached(final: Path, params: dict[str, object]) -> bool:
    f = final / "params.json"
    return f.exists() and json.loads(f.read_text()) == params


# -- distinct files ---------------------------------------------------------------------------


def _distinct_source(src: str, sides: tuple[int, int]) -> Image.Image | None:
    im = Image.open(src)
    camera_sized = sides[0] > 1600
    if camera_sized and max(im.size) < sides[1] / 0.95:
        return None  # only photos large enough are cropped to camera size, never upscaled
    limit = int(sides[1] / 0.5) if camera_sized else SOURCE_LIMIT
    im.draft("RGB", (sides[1], sides[1]))
    im = im.convert("RGB")
    im.thumbnail((limit, limit))
    return im


def _write_distinct(out: str, src: str, indices: range, seed: int, sides: tuple[int, int]) -> int:
    """Worker: the files `indices` (every k-th index) cut from one source photo."""
    im = _distinct_source(src, sides)
    if im is None:
        return 0
    w, h = im.size
    for i in indices:
        rng = random.Random(f"{seed}:{i}")
        cw, ch = int(w * rng.uniform(0.5, 0.95)), int(h * rng.uniform(0.5, 0.95))
        x, y = rng.randint(0, w - cw), rng.randint(0, h - ch)
        crop = im.crop((x, y, x + cw, y + ch))
        side = rng.randint(*sides)
        crop.thumbnail((side, side))
        folder = Path(out) / f"{i // PER_FOLDER:03d}"
        folder.mkdir(exist_ok=True)
        crop.save(folder / f"img_{i:06d}.jpg", quality=rng.randint(80, 95))
    return len(indices)


def _sources_key(photos: list[Path]) -> str:
    return hashlib.sha256("\n".join(map(str, photos)).encode()).hexdigest()[:8]


def distinct_collection(
    n_images: int,
    seed: int = 0,
    sides: tuple[int, int] = (480, 1600),
    workers: int = 0,
    photos: list[Path] | None = None,
) -> Path:
    """The folder of `n_images` distinct JPEGs (cached, params.json beside it, not in it)."""
    photos = photos or photo_pool()
    key = _sources_key(photos)
    params = {
        "kind": "distinct",
        "images": n_images,
        "seed": seed,
        "sides": list(sides),
        "sources": key,
        "v": 2,  # 2: the files under images/, params.json beside them
    }
    final = COLLECTIONS / f"distinct-{n_images}-seed{seed}-{sides[0]}-{sides[1]}-{key}"
    if _cached(final, params):
        return final / "images"
    sources = [str(p) for p in photos]
    if sides[0] > 1600:  # camera-sized: keep only photos that are large enough
        sources = [s for s in sources if max(Image.open(s).size) >= sides[1] / 0.95]
    if not sources:
        raise SystemExit(f"no photo is large enough for {sides}")
    stage = final.with_name(final.name + ".building")
    shutil.rmtree(stage, ignore_errors=True)
    (stage / "images").mkdir(parents=True)
    k = len(sources)
    with ProcessPoolExecutor(workers or _workers()) as pool:
        futures = [
            pool.submit(
                _write_distinct, str(stage / "images"), s, range(j, n_images, k), seed, sides
            )
            for j, s in enumerate(sources)
        ]
        written = sum(f.result() for f in futures)
    if written != n_images:
        raise RuntimeError(f"wrote {written} files, expected {n_images}")
    return _finish(stage, final, params) / "images"


def image_files(root: Path) -> Iterator[Path]:
    """Every file of a collection, streamed (truth and parameters live beside it, not in it)."""
    for dirpath, _dirs, files in os.walk(root):
        for f in files:
            yield Path(dirpath) / f


# -- planted defects with ground truth ------------------------------------------------------


def _grid_for(n_bases: int, n_photos: int) -> int:
    return max(1, math.ceil(math.sqrt(n_bases / n_photos)))


def _tile_bases(photos: list[Path], grid: int, out: Path, limit: int, max_side: int) -> list[Path]:
    """Disjoint g x g tiles of the photos (at most `limit`), as PNG files: the tile is the base."""
    out.mkdir(parents=True, exist_ok=True)
    bases: list[Path] = []
    for j, p in enumerate(photos):
        im = Image.open(p)
        im.draft("RGB", (max_side * grid, max_side * grid))
        im = im.convert("RGB")
        w, h = im.size
        tw, th = w // grid, h // grid
        if min(tw, th) < MIN_TILE_SIDE:
            continue
        for r in range(grid):
            for c in range(grid):
                t = out / f"{j:03d}_{p.stem.replace(' ', '_')}_{r}{c}.png"
                tile = im.crop((c * tw, r * th, (c + 1) * tw, (r + 1) * th))
                if ImageStat.Stat(tile.convert("L")).stddev[0] < MIN_TILE_STD:
                    continue
                tile.save(t)
                bases.append(t)
                if len(bases) >= limit:
                    return bases
    return bases


def _build_part(stage: str, part: int, bases: list[str], seed: int, max_side: int) -> str:
    """Worker: one sample collection (photo_curate.sample) from a slice of the bases."""
    tmp = Path(stage) / f".part{part:03d}"
    truth = build_collection(
        tmp, [Path(b) for b in bases], seed=seed * 1000 + part, recipe=Recipe(), max_side=max_side
    )
    os.replace(tmp / "photos", Path(stage) / "photos" / f"part{part:03d}")
    return str(truth)


def planted_collection(
    n_images: int,
    seed: int = 0,
    max_side: int = 1024,
    workers: int = 0,
    photos: list[Path] | None = None,
) -> tuple[Path, Path]:
    """(photos folder, truth.csv) of a planted collection of about `n_images` files (cached)."""
    photos = photos or photo_pool()
    key = _sources_key(photos)
    params = {
        "kind": "planted",
        "images": n_images,
        "seed": seed,
        "max_side": max_side,
        "sources": key,
        "v": 2,  # 2: featureless tiles are no bases
    }
    final = COLLECTIONS / f"planted-{n_images}-seed{seed}-{max_side}-{key}"
    if _cached(final, params):
        return final / "photos", final / "truth.csv"
    n_parts = max(1, round(n_images / (BASES_PER_PART * FILES_PER_BASE + BROKEN_PER_PART)))
    n_bases = max(4, (n_images - n_parts * BROKEN_PER_PART) // FILES_PER_BASE)
    stage = final.with_name(final.name + ".building")
    shutil.rmtree(stage, ignore_errors=True)
    (stage / "photos").mkdir(parents=True)
    grid = _grid_for(n_bases, len(photos))
    if grid == 1:
        bases = photos[:n_bases]
    else:
        tries: dict[int, list[Path]] = {}
        while grid <= 12:  # small photos give no tiles: grow the grid until there are enough
            tries[grid] = _tile_bases(
                photos, grid, stage / ".bases" / f"g{grid}", n_bases, max_side
            )
            if len(tries[grid]) >= n_bases:
                break
            grid += 1
        bases = max(tries.values(), key=len)  # finer grids lose the photos too small to cut
    if len(bases) < n_bases:
        raise SystemExit(
            f"the photo pool gives {len(bases)} distinct bases, {n_bases} are needed for "
            f"{n_images} planted files; time larger collections with --collection distinct"
        )
    per_part = math.ceil(len(bases) / n_parts)
    slices = [bases[i : i + per_part] for i in range(0, len(bases), per_part)]
    slices = [s for s in slices if len(s) >= 2]
    with (
        ProcessPoolExecutor(workers or _workers()) as pool,
        open(stage / "truth.csv", "w", newline="", encoding="utf-8") as out,
    ):
        wr = csv.DictWriter(out, fieldnames=["path", "base", "variant", "param"])
        wr.writeheader()
        futures = [
            pool.submit(_build_part, str(stage), k, [str(b) for b in s], seed, max_side)
            for k, s in enumerate(slices)
        ]
        for k, fut in enumerate(futures):  # each part's truth, prefixed, streamed into one
            with open(fut.result(), newline="", encoding="utf-8") as fh:
                for r in csv.DictReader(fh):
                    r["path"] = f"part{k:03d}/{r['path']}"
                    if r["base"].startswith("p"):
                        r["base"] = f"part{k:03d}-{r['base']}"
                    wr.writerow(r)
    for junk in stage.glob(".part*"):
        shutil.rmtree(junk)
    shutil.rmtree(stage / ".bases", ignore_errors=True)
    final = _finish(stage, final, params)
    return final / "photos", final / "truth.csv"
