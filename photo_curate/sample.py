"""Build a photo collection with planted defects from real photographs, plus its ground truth.

The demo, the tests and the benchmarks all use this builder. The photographs come from pip
packages this project installs anyway (scikit-image and scikit-learn ship a few in their
wheels); `bench/` adds more from Debian packages. Each base photo becomes an "original" and
derived files: byte copies in other folders, resized, recompressed, slightly cropped and
brightened copies (all duplicates of the original), darkened, overexposed and blurred shots,
and broken files (truncated, empty, not an image). The ground truth goes next to the
collection (never inside it) as CSV: path, base, variant, param, expected kinds.
"""

from __future__ import annotations

import csv
import io
import os
import random
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

from PIL import Image, ImageEnhance, ImageFilter

DUPLICATE_VARIANTS = ("original", "copy", "resized", "recompressed", "cropped", "brightened")

SKIMAGE_PHOTOS = (
    "astronaut.png",
    "chelsea.png",
    "coffee.png",
    "rocket.jpg",
    "motorcycle_left.png",
    "camera.png",
    "coins.png",
    "immunohistochemistry.png",
    "retina.jpg",
)
SKLEARN_PHOTOS = ("china.jpg", "flower.jpg")


def bundled_photos() -> list[Path]:
    """Real photographs shipped inside installed wheels (no network needed)."""
    import skimage.data
    import sklearn.datasets

    out = []
    sk = Path(skimage.data.__file__).parent
    out += [sk / n for n in SKIMAGE_PHOTOS if (sk / n).exists()]
    sl = Path(sklearn.datasets.__file__).parent / "images"
    out += [sl / n for n in SKLEARN_PHOTOS if (sl / n).exists()]
    if len(out) < 4:
        raise RuntimeError("scikit-image / scikit-learn sample photos not found")
    return out


@dataclass(frozen=True)
class Recipe:
    """Parameters of the planted defects (ranges drawn per file from the seed)."""

    resize: tuple[float, float] = (0.4, 0.7)
    recompress_quality: tuple[int, int] = (30, 60)
    crop: tuple[float, float] = (0.02, 0.06)
    brighten: tuple[float, float] = (1.10, 1.25)
    dark: tuple[float, float] = (0.12, 0.30)
    overexpose: tuple[float, float] = (2.2, 3.2)
    blur_fraction: tuple[float, float] = (0.006, 0.012)  # Gaussian radius / long side
    truncate: tuple[float, float] = (0.3, 0.8)
    original_quality: int = 92


def _exif_with_time(when: datetime) -> bytes:
    exif = Image.Exif()
    exif[0x0132] = when.strftime("%Y:%m:%d %H:%M:%S")
    exif[0x010F] = "photo-curate"
    exif[0x0110] = "sample builder"
    ifd = exif.get_ifd(0x8769)
    ifd[0x9003] = when.strftime("%Y:%m:%d %H:%M:%S")
    return exif.tobytes()


def _load(path: Path, max_side: int) -> Image.Image:
    im = Image.open(path)
    im.load()
    if im.mode not in ("RGB", "L"):
        im = im.convert("RGB")
    if max(im.size) > max_side:
        im.thumbnail((max_side, max_side), Image.Resampling.LANCZOS)
    return im.convert("RGB")


def _jpeg(im: Image.Image, quality: int, exif: bytes | None = None) -> bytes:
    buf = io.BytesIO()
    kw = {"exif": exif} if exif else {}
    im.save(buf, format="JPEG", quality=quality, **kw)
    return buf.getvalue()


class _Writer:
    def __init__(self, root: Path):
        self.root = root
        self.rows: list[dict[str, str]] = []

    def put(self, rel: str, data: bytes, base: str, variant: str, param: str = "") -> None:
        p = self.root / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(data)
        self.rows.append({"path": rel, "base": base, "variant": variant, "param": param})


def build_collection(
    out_dir: str | os.PathLike[str],
    photos: Sequence[Path] | None = None,
    seed: int = 0,
    recipe: Recipe = Recipe(),
    max_side: int = 1024,
    defects_per_photo: bool = True,
) -> Path:
    """Write the collection under `out_dir/photos` and return the ground-truth CSV path.

    Every base photo gets an original and duplicate-kind copies; the defect variants (dark,
    bright, blurry) rotate over the bases so each base has at most one, as in a real
    collection where a bad shot sits next to good ones. Broken files are added once each.
    """
    rng = random.Random(seed)
    photos = list(photos or bundled_photos())
    root = Path(out_dir) / "photos"
    root.mkdir(parents=True, exist_ok=True)
    w = _Writer(root)
    start = datetime(2023, 6, 1, 9, 0, 0)
    defects = ("dark", "bright", "blurry")
    used: set[str] = set()
    for i, src in enumerate(photos):
        base = f"p{i:04d}"
        stem = src.stem.replace(" ", "_")
        if stem in used:  # e.g. wallpapers all called 5120x2880.jpg
            stem = f"{stem}_{i}"
        used.add(stem)
        im = _load(src, max_side)
        when = start + timedelta(hours=7 * i)
        orig = _jpeg(im, recipe.original_quality, _exif_with_time(when))
        year = f"DCIM/{when.year}"
        w.put(f"{year}/{stem}.jpg", orig, base, "original")
        w.put(f"Backup/old phone/{stem}.jpg", orig, base, "copy")
        s = rng.uniform(*recipe.resize)
        small = im.resize((max(16, round(im.width * s)), max(16, round(im.height * s))))
        w.put(f"Shared/{stem}_small.jpg", _jpeg(small, 85), base, "resized", f"{s:.2f}")
        q = rng.randint(*recipe.recompress_quality)
        w.put(f"Messages/IMG-{i:04d}-WA.jpg", _jpeg(im, q), base, "recompressed", str(q))
        c = rng.uniform(*recipe.crop)
        box = (round(im.width * c), round(im.height * c), round(im.width * (1 - c)),
               round(im.height * (1 - c)))  # fmt: skip
        w.put(f"Edits/{stem} crop.jpg", _jpeg(im.crop(box), 90), base, "cropped", f"{c:.3f}")
        b = rng.uniform(*recipe.brighten)
        bright = ImageEnhance.Brightness(im).enhance(b)
        w.put(f"Edits/{stem} (brighter).jpg", _jpeg(bright, 90), base, "brightened", f"{b:.2f}")
        if defects_per_photo:
            kind = defects[i % len(defects)]
            if kind == "dark":
                f = rng.uniform(*recipe.dark)
                dark = ImageEnhance.Brightness(im).enhance(f)
                w.put(f"Camera roll/{stem}_dark.jpg", _jpeg(dark, 90), base, "dark", f"{f:.2f}")
            elif kind == "bright":
                f = rng.uniform(*recipe.overexpose)
                over = ImageEnhance.Brightness(im).enhance(f)
                w.put(f"Camera roll/{stem}_overexposed.jpg", _jpeg(over, 90), base, "bright",
                      f"{f:.2f}")  # fmt: skip
            else:
                r = max(2.0, rng.uniform(*recipe.blur_fraction) * max(im.size))
                blurred = im.filter(ImageFilter.GaussianBlur(r))
                w.put(f"Camera roll/{stem}_blurred.jpg", _jpeg(blurred, 90), base, "blurry",
                      f"{r:.1f}")  # fmt: skip
    # broken files, from the first photos
    first = _jpeg(_load(photos[0], max_side), recipe.original_quality)
    cut = rng.uniform(*recipe.truncate)
    w.put("Downloads/truncated.jpg", first[: int(len(first) * cut)], "broken", "truncated",
          f"{cut:.2f}")  # fmt: skip
    w.put("Downloads/empty.jpg", b"", "broken", "empty")
    w.put("Downloads/not really.jpg", rng.randbytes(4096), "broken", "corrupt")
    w.put("Downloads/notes.txt", b"not a photo\n", "other", "not_image")
    last = _load(photos[-1], 320)  # a resized copy under a unicode name with spaces
    w.put("Downloads/ünïcödé name.jpg", _jpeg(last, 80), f"p{len(photos) - 1:04d}", "resized")
    truth = Path(out_dir) / "truth.csv"
    with open(truth, "w", newline="", encoding="utf-8") as fh:
        wr = csv.DictWriter(fh, fieldnames=["path", "base", "variant", "param"])
        wr.writeheader()
        wr.writerows(w.rows)
    return truth
