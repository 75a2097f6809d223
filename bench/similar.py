"""Judgement on real libraries: similar-but-different shots, and defects without their twins.

    .venv/bin/python -m bench.similar [--pool A|B|both] [--kind similar|defects|both] [--seed 1 2 3]

Two collections per pool, each run with `curate run` as a user would (the CLI, a fresh home),
scored with photo_curate.evaluate (truth in the sample's CSV format):

- similar: burst frames 8-25 apart from the videos opencv-doc ships (vtest.avi, tree.avi,
  Megamind.avi), stereo and before/after pairs, look-changing edits of real photos (black and
  white, sepia, colour grade, retouched region, large re-framing), mate-backgrounds' RGBA
  wallpapers whose picture is in the alpha channel, mixed with true copies of the photos and
  of frames (byte copies, resizes, re-encodes, small crops, mild corrections). No similar
  shot, edit or edit source may be planned; copies must stay grouped with their source.
- defects: real photos, some darkened, overexposed or blurred with their clean original
  absent, some with copies, most untouched. Nothing untouched may be planned.

Pools: A (calibration) is bench/photos.py's pool (scikit-image, scikit-learn, opencv-doc,
mate-backgrounds, plasma-workspace-wallpapers) with Megamind.avi; B (held out: never used to
choose a default) is gnome-backgrounds, ukui-wallpapers, lomiri-wallpapers(-16.04/-20.04) and
sway-backgrounds with vtest.avi and tree.avi. Prints a table per collection and writes
bench/results/similar.json.
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import io
import itertools
import json
import random
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageEnhance, ImageFilter

from bench.photos import CACHE, opencv_data, photo_pool
from photo_curate import sample
from photo_curate.evaluate import evaluate, format_scores
from photo_curate.home import Home
from photo_curate.runs import all_run_ids

RESULTS = Path(__file__).resolve().parent / "results"
HELD_OUT = ("gnome-backgrounds", "ukui-wallpapers", "lomiri-wallpapers",
            "lomiri-wallpapers-16.04", "lomiri-wallpapers-20.04", "sway-backgrounds")  # fmt: skip
VIDEOS = {"A": ("Megamind.avi",), "B": ("vtest.avi", "tree.avi")}
STEREO = {
    "A": [("aloeL.jpg", "aloeR.jpg"), ("basketball1.png", "basketball2.png"),
          ("left01.jpg", "right01.jpg"), ("left02.jpg", "right02.jpg")],
    "B": [("leuvenA.jpg", "leuvenB.jpg"), ("rubberwhale1.png", "rubberwhale2.png"),
          ("graf1.png", "graf3.png"), ("ela_original.jpg", "ela_modified.jpg"),
          ("left03.jpg", "right03.jpg"), ("left04.jpg", "right04.jpg")],
}  # fmt: skip
RGBA_WALLPAPERS = ("Silk.png", "Spring.png", "Waves.png", "MATE-Stripes-Light.png",
                   "MATE-Stripes-Dark.png", "Arc-Colors-Transparent-Wallpaper.png",
                   "Gulp.png", "Flow.png")  # fmt: skip


def held_out_photos() -> list[Path]:
    """Pool B: wallpapers of other desktop packages (photos and some graphics)."""
    root = CACHE / "heldout"
    stamp = CACHE / ".heldout.done"
    if not stamp.exists():
        root.mkdir(parents=True, exist_ok=True)
        for pkg in HELD_OUT:
            subprocess.run(["apt-get", "download", pkg], cwd=root, check=True,
                           capture_output=True, timeout=900)  # fmt: skip
        for deb in sorted(root.glob("*.deb")):
            subprocess.run(["dpkg", "-x", str(deb), str(root)], check=True, timeout=900)
            deb.unlink()
        stamp.touch()
    exts = (".jpg", ".png", ".webp")
    out = [p for p in sorted((root / "usr/share/backgrounds").rglob("*"))
           if p.suffix.lower() in exts and p.stat().st_size > 10_000]  # fmt: skip
    seen, unique = set(), []
    for p in out:  # sway ships one picture in many sizes: keep one
        key = p.stem.split("_")[0] if "Sway_Wallpaper" in p.name else p.stem
        if key not in seen:
            seen.add(key)
            unique.append(p)
    return unique


# opencv-doc's deblurring demos: genuinely blurred photos, no untouched originals
BLURRED_DEMOS = ("licenseplate_motion.jpg", "text_defocus.jpg", "text_motion.jpg")


def _same_picture(a: Image.Image, b: Image.Image) -> bool:
    """Two sources that show one picture (packages ship some wallpapers twice, a video holds
    still frames): at 64 px their grey levels differ by under 2 on average."""
    sa = np.asarray(a.convert("L").resize((64, 64), Image.Resampling.BOX), dtype=np.float32)
    sb = np.asarray(b.convert("L").resize((64, 64), Image.Resampling.BOX), dtype=np.float32)
    return float(np.abs(sa - sb).mean()) < 2.0


def pool(name: str) -> list[Path]:
    """The pool's photos, each picture once (else the truth calls a copy a different photo)."""
    photos = photo_pool() if name == "A" else held_out_photos()
    out: list[Path] = []
    kept: list[tuple[float, Image.Image]] = []
    digests: set[str] = set()
    for p in photos:
        if p.name in BLURRED_DEMOS:
            continue
        digest = hashlib.sha256(p.read_bytes()).hexdigest()
        small = _load(p, 128)
        ratio = small.width / small.height
        if digest in digests or any(
            abs(ratio - r) < 0.02 and _same_picture(small, im) for r, im in kept
        ):
            continue
        digests.add(digest)
        kept.append((ratio, small))
        out.append(p)
    return out


def video_frames(video: str, n_bursts: int, rng: random.Random) -> list[list[Image.Image]]:
    """Bursts of three frames 8-25 frames apart (people moved, mouths opened)."""
    import cv2

    cap = cv2.VideoCapture(str(opencv_data() / video))
    total = int(cap.get(cv2.CAP_PROP_FRAME_COUNT))
    wanted: list[list[int]] = []
    span = max(1, total // n_bursts)  # bursts in disjoint stretches: no frame twice
    for b in range(n_bursts):
        start = b * span + rng.randint(0, max(0, span - 52))
        g1, g2 = rng.randint(8, 25), rng.randint(8, 25)
        wanted.append([start, start + g1, start + g1 + g2])
    need = {i for w in wanted for i in w}
    got: dict[int, Image.Image] = {}
    k = 0
    while need - got.keys():
        ok, frame = cap.read()
        if not ok:
            break
        if k in need:
            got[k] = Image.fromarray(cv2.cvtColor(frame, cv2.COLOR_BGR2RGB))
        k += 1
    bursts = [[got[i] for i in w] for w in wanted if all(i in got for i in w)]
    # a still stretch (a title, a paused scene) gives one picture three times: no burst
    return [b for b in bursts if not any(_same_picture(x, y) for x, y in itertools.pairwise(b))]


def _jpeg(im: Image.Image, quality: int) -> bytes:
    buf = io.BytesIO()
    im.convert("RGB").save(buf, "JPEG", quality=quality)
    return buf.getvalue()


def _png(im: Image.Image) -> bytes:
    buf = io.BytesIO()
    im.save(buf, "PNG")
    return buf.getvalue()


class Truth:
    """Files of a collection and their truth rows (the sample's CSV format)."""

    def __init__(self, root: Path):
        self.root = root
        self.rows: list[dict[str, str]] = []

    def put(
        self, rel: str, data: bytes, base: str, variant: str, param: str = "", scene: str = ""
    ) -> None:
        p = self.root / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(data)
        self.rows.append(
            {"path": rel, "base": base, "variant": variant, "param": param, "scene": scene}
        )

    def write(self, path: Path) -> Path:
        with open(path, "w", newline="", encoding="utf-8") as fh:
            wr = csv.DictWriter(fh, fieldnames=["path", "base", "variant", "param", "scene"])
            wr.writeheader()
            wr.writerows(self.rows)
        return path


def copies(t: Truth, im: Image.Image, base: str, folder: str, rng: random.Random) -> None:
    """The original and true copies: byte copy, resize, re-encode, small crop, correction."""
    orig = _jpeg(im, 92)
    t.put(f"{folder}/{base}.jpg", orig, base, "original")
    t.put(f"Backup/{folder}/{base}.jpg", orig, base, "copy")
    s = rng.uniform(0.35, 0.75)
    small = im.resize((max(32, round(im.width * s)), max(32, round(im.height * s))))
    t.put(f"Shared/{base}_small.jpg", _jpeg(small, 85), base, "resized", f"{s:.2f}")
    q = rng.randint(30, 70)
    t.put(f"Messages/{base}-WA.jpg", _jpeg(im, q), base, "recompressed", str(q))
    c = [rng.uniform(0.0, 0.05) for _ in range(4)]
    w, h = im.size
    crop = im.crop((round(w * c[0]), round(h * c[1]), round(w * (1 - c[2])), round(h * (1 - c[3]))))
    t.put(f"Edits/{base} crop.jpg", _jpeg(crop, 90), base, "cropped", f"{max(c):.3f}")
    f = rng.uniform(0.92, 1.10)
    t.put(f"Edits/{base} fixed.jpg", _jpeg(ImageEnhance.Brightness(im).enhance(f), 90), base,
          "corrected", f"{f:.2f}")  # fmt: skip


def _grey(im: Image.Image) -> bool:
    a = np.asarray(im.convert("RGB").resize((64, 64)), np.int16)
    return int(np.abs(a - a.mean(axis=2, keepdims=True)).max()) < 6


def edits(t: Truth, im: Image.Image, base: str, rng: random.Random) -> None:
    """Look-changing edits: similar shots of the photo, never copies (a grey photo gets no
    colour edits: its black-and-white version is a copy)."""
    choices = ["retouched", "reframed"] if _grey(im) else ["bw", "sepia", "graded", "retouched",
                                                            "reframed"]  # fmt: skip
    kinds = rng.sample(choices, min(3, len(choices)))
    for kind in kinds:
        if kind == "bw":
            out = sample.black_and_white(im)
        elif kind == "sepia":
            out = sample.sepia(im)
        elif kind == "graded":
            out = sample.colour_grade(im, rng.uniform(0.2, 0.4))
        elif kind == "retouched":
            out = sample.retouch(im, rng, rng.uniform(0.12, 0.25))
        else:
            out = sample.reframe(im, rng, (0.22, 0.35))
        t.put(f"Edits/{base} {kind}.jpg", _jpeg(out, 90), base, kind)


def _load(p: Path, side: int = 1280) -> Image.Image:
    im = Image.open(p)
    im.draft("RGB", (side, side))
    im = im.convert("RGB")
    im.thumbnail((side, side), Image.Resampling.LANCZOS)
    return im


def similar_collection(out: Path, pool_name: str, seed: int) -> Path:
    """Similar-but-different shots mixed with true copies (see the module docstring)."""
    rng = random.Random(f"similar:{pool_name}:{seed}")
    t = Truth(out / "photos")
    stereo = {n for pair in STEREO["A"] + STEREO["B"] for n in pair}
    photos, designs = [], set()
    for p in pool(pool_name):
        design = p.stem.removesuffix("-l").removesuffix("-d")  # gnome: light and dark versions
        if p.name not in stereo and design not in designs:
            designs.add(design)
            photos.append(p)
    chosen = [p for p in rng.sample(photos, min(len(photos), 34)) if not _is_graphic(_load(p))]
    chosen = chosen[:30]  # graphics (plain colours, renders) cannot take these edits
    for i, p in enumerate(chosen):
        base = f"ph{i:03d}"
        im = _load(p)
        copies(t, im, base, "Photos", rng)
        edits(t, im, base, rng)
    for video in VIDEOS[pool_name]:
        for j, burst in enumerate(video_frames(video, 6, rng)):
            scene = f"{Path(video).stem}{j}"
            for k, frame in enumerate(burst):
                # the first frame and a true copy of it (one picture); the others: bursts
                # frames of one fixed camera are one scene, whichever part of the video
                t.put(f"Bursts/{scene}-{k}.jpg", _jpeg(frame, 92), scene,
                      "original" if k == 0 else "burst", scene=video)  # fmt: skip
                if k == 0:
                    small = frame.resize((frame.width // 2, frame.height // 2))
                    t.put(f"Shared/{scene}-{k}_small.jpg", _jpeg(small, 80), scene, "resized",
                          scene=video)  # fmt: skip
    for a, b in STEREO[pool_name]:
        base = Path(a).stem
        for name in (a, b):
            t.put(f"Stereo/{name.rsplit('.', 1)[0]}.jpg", _jpeg(_load(opencv_data() / name), 92),
                  base, "stereo")  # fmt: skip
    mate = CACHE / "x/usr/share/backgrounds/mate"
    for name in RGBA_WALLPAPERS:
        found = sorted(mate.glob(f"*/{name}"))
        if found:  # the light and dark stripes are one design
            scene = "MATE-Stripes" if name.startswith("MATE-Stripes") else ""
            t.put(f"Wallpapers/{name}", found[0].read_bytes(), f"rgba-{name}", "alpha", scene=scene)
    return t.write(out / "truth.csv")


def _defect(im: Image.Image, kind: str, rng: random.Random) -> tuple[Image.Image, str]:
    if kind == "dark":
        f = rng.uniform(0.10, 0.35)
        return ImageEnhance.Brightness(im).enhance(f), f"{f:.2f}"
    if kind == "bright":
        f = rng.uniform(2.2, 3.5)
        return ImageEnhance.Brightness(im).enhance(f), f"{f:.2f}"
    r = max(2.0, rng.uniform(0.005, 0.012) * max(im.size))
    return im.filter(ImageFilter.GaussianBlur(r)), f"{r:.1f}"


def _is_graphic(im: Image.Image) -> bool:
    from photo_curate.inspect_image import pixel_metrics

    arr = np.asarray(im.convert("RGB"))
    return (pixel_metrics(arr)["flat_share"] or 0) >= 0.4


def defect_collection(out: Path, pool_name: str, seed: int) -> Path:
    """Real photos: a third with a planted defect and no clean twin, a fifth with copies, the
    rest untouched (graphics are never planted with a defect: not photos)."""
    rng = random.Random(f"defects:{pool_name}:{seed}")
    t = Truth(out / "photos")
    kinds = ("dark", "bright", "blurry")
    n = 0
    for i, p in enumerate(pool(pool_name)):
        base = f"ph{i:03d}"
        im = _load(p, 1024)
        roll = rng.random()
        if roll < 0.36 and not _is_graphic(im):
            kind = kinds[n % 3]
            n += 1
            shot, param = _defect(im, kind, rng)
            t.put(f"Camera/{base}.jpg", _jpeg(shot, 90), base, kind, param)
        elif roll < 0.56:
            copies(t, im, base, "Photos", rng)
        else:
            t.put(f"Photos/{base}.jpg", _jpeg(im, 92), base, "original")
    return t.write(out / "truth.csv")


def run_curate(photos: Path, home: Path) -> float:
    t0 = time.monotonic()
    proc = subprocess.run(
        [str(Path(sys.executable).parent / "curate"), "run", str(photos), "--home", str(home)],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    if proc.returncode not in (0, 1):
        raise SystemExit(f"curate run failed ({proc.returncode}): {proc.stderr.strip()}")
    return time.monotonic() - t0


def run_one(work: Path, kind: str, pool_name: str, seed: int) -> dict[str, object]:
    coll = work / f"{kind}-{pool_name}-{seed}"
    home = work / f"home-{kind}-{pool_name}-{seed}"
    shutil.rmtree(coll, ignore_errors=True)
    shutil.rmtree(home, ignore_errors=True)
    build = similar_collection if kind == "similar" else defect_collection
    truth = build(coll, pool_name, seed)
    seconds = run_curate(coll / "photos", home)
    h = Home(home)
    result = evaluate(h, all_run_ids(h)[0], truth)
    result["seconds"] = seconds
    result["files"] = len(truth.read_text(encoding="utf-8").splitlines()) - 1
    return result


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--pool", choices=["A", "B", "both"], default="both")
    ap.add_argument("--kind", choices=["similar", "defects", "both"], default="both")
    ap.add_argument("--seed", type=int, nargs="+", default=[1], help="one collection per seed")
    ap.add_argument("--work", default="/tmp/curate-bench-similar")
    args = ap.parse_args()
    work = Path(args.work)
    report = []
    for seed in args.seed:
        for pool_name in ("A", "B") if args.pool == "both" else (args.pool,):
            for kind in ("similar", "defects") if args.kind == "both" else (args.kind,):
                res = run_one(work, kind, pool_name, seed)
                print(f"\n{kind} collection, pool {pool_name}, seed {seed}: {res['files']} "
                      f"files, {res['seconds']:.0f} s\n{format_scores(res)}")  # fmt: skip
                for path in res["similar_planned"] + res["wrongly_planned"]:  # type: ignore[operator]
                    print(f"  planned but must stay: {path}")
                report.append({
                    "kind": kind, "pool": pool_name, "seed": seed, "files": res["files"],
                    "scores": [s.__dict__ for s in res["scores"]],  # type: ignore[attr-defined]
                    "similar_planned": res["similar_planned"],
                    "wrongly_planned": res["wrongly_planned"],
                })  # fmt: skip
    if len(args.seed) > 1:
        print(totals(report))
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "similar.json").write_text(json.dumps(report, indent=1))


def totals(report: list[dict[str, Any]]) -> str:
    """Each collection kind and pool summed over its seeds: a few planted defects per seed
    make one seed's percentages coarse."""
    out = []
    for kind, pool_name in sorted({(r["kind"], r["pool"]) for r in report}):
        runs = [r for r in report if (r["kind"], r["pool"]) == (kind, pool_name)]
        seeds = ", ".join(str(r["seed"]) for r in runs)
        out.append(f"\n{kind} collections, pool {pool_name}, seeds {seeds}: "
                   f"{sum(r['files'] for r in runs)} files")  # fmt: skip
        out.append(
            f"{'kind':<22}{'expected':>9}{'found':>7}{'correct':>8}{'precision':>11}{'recall':>8}"
        )
        for name in [s["kind"] for s in runs[0]["scores"]]:
            got = [s for r in runs for s in r["scores"] if s["kind"] == name]
            exp, pred, tp = (
                sum(s[k] for s in got) for k in ("expected", "predicted", "true_positive")
            )
            prec, rec = (100 * tp / pred if pred else 100.0), (100 * tp / exp if exp else 100.0)
            out.append(f"{name:<22}{exp:>9}{pred:>7}{tp:>8}{prec:>10.1f}%{rec:>7.1f}%")
        planned = sorted({p for r in runs for p in r["similar_planned"] + r["wrongly_planned"]})
        out.append(f"planned but must stay: {len(planned)} {planned if planned else ''}".rstrip())
    return "\n".join(out)


if __name__ == "__main__":
    main()
