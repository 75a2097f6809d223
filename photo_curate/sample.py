"""Build a photo collection from real photographs, with its ground truth.

The demo, the tests and the benchmarks use this builder. The photographs come from pip
packages this project installs anyway (scikit-image and scikit-learn ship a few in their
wheels); `bench/` adds more from Debian packages. A real library holds few twins of a bad shot
and many similar shots that are not copies, so the collection does too. The base photos take
turns in these roles:

- copies: the original, a byte copy in another folder, a resized, a recompressed, a slightly
  cropped (a few % a side) and a mildly corrected (exposure or white balance) copy: all one
  picture, duplicates of each other;
- a defect without its twin: only a darkened, overexposed or blurred shot of the photo is in
  the collection, its clean original is not;
- edits of the original (which is there, with its copies): black and white, sepia, a colour
  grade, a retouched region, a large re-framing. Similar shots, never copies: neither the edit
  nor its source may be planned for removal;
- a darker copy next to its original (the relative dark rule's case).

Besides: a stereo pair (scikit-image's motorcycle), two pictures drawn in the alpha channel of
white PNGs (as desktop wallpapers are), a camera RAW file (a DNG of a photo found nowhere
else in the collection: read with LibRaw, a lone valid picture), a JPEG XL file (a sound file
no decoder here reads: unsupported), and broken files (truncated, empty, not an image).
The ground truth goes next to the collection (never inside it) as CSV: path, base, variant,
param. Files of one `base` whose variants are in DUPLICATE_VARIANTS are one picture.
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

import numpy as np
from PIL import Image, ImageEnhance, ImageFilter

DUPLICATE_VARIANTS = ("original", "copy", "resized", "recompressed", "cropped", "corrected")
DEFECT_VARIANTS = ("dark", "bright", "blurry")
# similar shots that are not copies: neither they nor their source may be planned for removal
SIMILAR_VARIANTS = ("bw", "sepia", "graded", "retouched", "reframed", "stereo", "alpha", "burst")
UNSUPPORTED_VARIANTS = ("jxl",)
RAW_PHOTO = "moon.png"  # scikit-image's; in none of the photo pools, so the DNG is no copy
INVALID_VARIANTS = ("truncated", "empty", "corrupt")

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
STEREO_PAIR = ("motorcycle_left.png", "motorcycle_right.png")


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
    """Parameters of the planted files (ranges drawn per file from the seed)."""

    resize: tuple[float, float] = (0.4, 0.7)
    recompress_quality: tuple[int, int] = (30, 60)
    crop: tuple[float, float] = (0.01, 0.05)  # per side: a small crop
    correct: tuple[float, float] = (0.92, 1.10)  # brightness factor of a mild correction
    white_balance: tuple[float, float] = (0.95, 1.05)  # red and blue gains
    dark: tuple[float, float] = (0.12, 0.30)
    overexpose: tuple[float, float] = (2.2, 3.2)
    blur_fraction: tuple[float, float] = (0.006, 0.012)  # Gaussian radius / long side
    reframe: tuple[float, float] = (0.22, 0.35)  # share cut from one side and its neighbour
    truncate: tuple[float, float] = (0.3, 0.8)
    original_quality: int = 92


# -- edits that make a similar shot (also used by bench/similar.py) ---------------------------


def black_and_white(im: Image.Image) -> Image.Image:
    return im.convert("L").convert("RGB")


def sepia(im: Image.Image) -> Image.Image:
    g = np.asarray(im.convert("L"), np.float32)
    out = np.stack([g * 1.07 + 20, g * 0.95 + 8, g * 0.75], -1)
    return Image.fromarray(np.clip(out, 0, 255).astype(np.uint8))


def colour_grade(im: Image.Image, strength: float = 0.3) -> Image.Image:
    """Teal shadows, orange highlights (a common film look)."""
    a = np.asarray(im.convert("RGB"), np.float32) / 255
    lum = a.mean(-1, keepdims=True)
    tint = (1 - lum) * np.array([0.0, 0.5, 0.55]) + lum * np.array([1.0, 0.6, 0.3])
    return Image.fromarray(
        np.clip((a * (1 - strength) + tint * strength) * 255, 0, 255).astype(np.uint8)
    )


def retouch(im: Image.Image, rng: random.Random, fraction: float = 0.15) -> Image.Image:
    """A region replaced by another part of the picture (a clone-stamp retouch)."""
    out = im.copy()
    w, h = im.size
    s = max(8, int(min(w, h) * fraction))
    x, y = rng.randint(0, w - s), rng.randint(0, h - s)
    x2, y2 = (x + w // 2) % (w - s), (y + h // 2) % (h - s)
    out.paste(im.crop((x2, y2, x2 + s, y2 + s)), (x, y))
    return out


def reframe(im: Image.Image, rng: random.Random, cut: tuple[float, float]) -> Image.Image:
    """A large crop: a share of the frame cut from one side and from an adjacent one."""
    w, h = im.size
    a, b = rng.uniform(*cut), rng.uniform(0.05, cut[1])
    left, top = rng.random() < 0.5, rng.random() < 0.5
    box = (
        round(w * a) if left else 0,
        round(h * b) if top else 0,
        w if left else round(w * (1 - a)),
        h if top else round(h * (1 - b)),
    )
    return im.crop(box)


def alpha_picture(im: Image.Image) -> Image.Image:
    """A white RGBA image whose picture is in the alpha channel (as some wallpapers are)."""
    alpha = im.convert("L")
    out = Image.new("RGBA", im.size, (255, 255, 255, 0))
    out.putalpha(alpha)
    return out


# XYZ (D65) to linear sRGB: the ColorMatrix1 of a camera whose sensor records sRGB primaries
XYZ_TO_SRGB = (3.2406, -1.5372, -0.4986, -0.9689, 1.8758, 0.0415, 0.0557, -0.2040, 1.0570)


def _rationals(values: Sequence[float], den: int = 10000) -> tuple[int, ...]:
    return tuple(x for v in values for x in (round(v * den), den))


def _raw_photo(fallback: Image.Image) -> Image.Image:
    import skimage.data

    path = Path(skimage.data.__file__).parent / RAW_PHOTO
    return Image.open(path).convert("RGB") if path.exists() else fallback


def bayer_mosaic(rgb: np.ndarray, white: int = 4095) -> np.ndarray:
    """The RGGB Bayer mosaic (uint16, 0..white) a camera sensor would record of an sRGB photo:
    linear light, so LibRaw's output curve (BT.709, its default) gives the photo back."""
    h, w = rgb.shape[0] // 2 * 2, rgb.shape[1] // 2 * 2
    v = rgb[:h, :w].astype(np.float32) / 255.0
    lin = np.where(v < 0.081, v / 4.5, ((v + 0.099) / 1.099) ** (1 / 0.45))
    px = np.round(lin * white).astype(np.uint16)
    cfa = np.empty((h, w), np.uint16)
    cfa[0::2, 0::2] = px[0::2, 0::2, 0]
    cfa[0::2, 1::2] = px[0::2, 1::2, 1]
    cfa[1::2, 0::2] = px[1::2, 0::2, 1]
    cfa[1::2, 1::2] = px[1::2, 1::2, 2]
    return cfa


def dng_bytes(
    rgb: np.ndarray,
    captured_at: datetime | None = None,
    make: str = "photo-curate",
    model: str = "sample builder",
    preview: int | None = None,
    preview_rgb: np.ndarray | None = None,
) -> bytes:
    """A DNG of an sRGB photo (uint8 HxWx3) as LibRaw reads it: the Bayer mosaic (12 bits in
    16, uncompressed) with the tags LibRaw needs (DNG version, CFA pattern, white level, colour
    matrix, as-shot neutral), camera and time in IFD0; written with tifffile (no RAW writer
    needed at runtime). With `preview`, IFD0 is an 8-bit RGB preview of that long side and
    the mosaic is in its SubIFD, as cameras write DNGs (`preview_rgb`: the picture shown
    there, the photo unless given); else the mosaic is IFD0."""
    import tifffile

    main = [
        (50706, "B", 4, (1, 4, 0, 0), True),  # DNGVersion
        (50707, "B", 4, (1, 2, 0, 0), True),  # DNGBackwardVersion
        (271, "s", 0, make, True),
        (272, "s", 0, model, True),
        (50708, "s", 0, f"{make} {model}", True),  # UniqueCameraModel
        (50721, "2i", 9, _rationals(XYZ_TO_SRGB), True),  # ColorMatrix1: the data is sRGB
        (50778, "H", 1, 21, True),  # CalibrationIlluminant1: D65
        (50728, "2I", 3, (1, 1, 1, 1, 1, 1), True),  # AsShotNeutral
    ]
    if captured_at is not None:
        stamp = captured_at.strftime("%Y:%m:%d %H:%M:%S")
        main += [(306, "s", 0, stamp, True), (36867, "s", 0, stamp, True)]
    mosaic = [
        (33421, "H", 2, (2, 2), True),  # CFARepeatPatternDim
        (33422, "B", 4, (0, 1, 1, 2), True),  # CFAPattern: RGGB
        (50714, "H", 1, 0, True),  # BlackLevel
        (50717, "H", 1, 4095, True),  # WhiteLevel
    ]
    cfa = bayer_mosaic(rgb)
    buf = io.BytesIO()
    with tifffile.TiffWriter(buf) as tw:
        if preview:
            shown = rgb if preview_rgb is None else preview_rgb
            im = Image.fromarray(shown[: cfa.shape[0], : cfa.shape[1]])
            im.thumbnail((preview, preview), Image.Resampling.LANCZOS)
            tw.write(np.asarray(im), photometric="rgb", subfiletype=1, subifds=1, extratags=main)
            tw.write(cfa, photometric=32803, subfiletype=0, extratags=mosaic)
        else:
            tw.write(cfa, photometric=32803, extratags=main + mosaic)
    return buf.getvalue()


def minimal_dng(im: Image.Image, captured_at: datetime | None = None) -> bytes:
    """A small DNG (a TIFF container holding a Bayer mosaic) made from a photo, 512 px wide:
    a camera RAW that LibRaw reads (see `dng_bytes`)."""
    rgb = np.asarray(im.convert("RGB").resize((512, round(512 * im.height / im.width))))
    return dng_bytes(rgb, captured_at)


# -- writing ----------------------------------------------------------------------------------


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
    im.convert("RGB").save(buf, format="JPEG", quality=quality, **kw)
    return buf.getvalue()


def _png(im: Image.Image) -> bytes:
    buf = io.BytesIO()
    im.save(buf, format="PNG")
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


def _copies(w: _Writer, im: Image.Image, stem: str, base: str, i: int, rng: random.Random,
            recipe: Recipe, orig: bytes, year: str) -> None:  # fmt: skip
    """The original and its copies: one picture."""
    w.put(f"{year}/{stem}.jpg", orig, base, "original")
    w.put(f"Backup/old phone/{stem}.jpg", orig, base, "copy")
    s = rng.uniform(*recipe.resize)
    small = im.resize((max(16, round(im.width * s)), max(16, round(im.height * s))))
    w.put(f"Shared/{stem}_small.jpg", _jpeg(small, 85), base, "resized", f"{s:.2f}")
    q = rng.randint(*recipe.recompress_quality)
    w.put(f"Messages/IMG-{i:04d}-WA.jpg", _jpeg(im, q), base, "recompressed", str(q))
    c = [rng.uniform(*recipe.crop) for _ in range(4)]
    box = (round(im.width * c[0]), round(im.height * c[1]), round(im.width * (1 - c[2])),
           round(im.height * (1 - c[3])))  # fmt: skip
    w.put(f"Edits/{stem} crop.jpg", _jpeg(im.crop(box), 90), base, "cropped", f"{max(c):.3f}")
    if i % 2:
        f = rng.uniform(*recipe.correct)
        fixed = ImageEnhance.Brightness(im).enhance(f)
        w.put(f"Edits/{stem} (corrected).jpg", _jpeg(fixed, 90), base, "corrected", f"{f:.2f}")
    else:
        r, b = rng.uniform(*recipe.white_balance), rng.uniform(*recipe.white_balance)
        a = np.asarray(im, np.float32) * np.array([r, 1.0, b], np.float32)
        fixed = Image.fromarray(np.clip(a, 0, 255).astype(np.uint8))
        w.put(f"Edits/{stem} (warmer).jpg", _jpeg(fixed, 90), base, "corrected", f"{r:.2f}/{b:.2f}")


def _defect(w: _Writer, im: Image.Image, kind: str, stem: str, base: str, rng: random.Random,
            recipe: Recipe, year: str) -> None:  # fmt: skip
    """A bad shot whose clean original is not in the collection."""
    if kind == "dark":
        f = rng.uniform(*recipe.dark)
        shot, param = ImageEnhance.Brightness(im).enhance(f), f"{f:.2f}"
    elif kind == "bright":
        f = rng.uniform(*recipe.overexpose)
        shot, param = ImageEnhance.Brightness(im).enhance(f), f"{f:.2f}"
    else:
        r = max(2.0, rng.uniform(*recipe.blur_fraction) * max(im.size))
        shot, param = im.filter(ImageFilter.GaussianBlur(r)), f"{r:.1f}"
    w.put(f"{year}/{stem}.jpg", _jpeg(shot, 90), base, kind, param)


def _edits(w: _Writer, im: Image.Image, stem: str, base: str, which: int, rng: random.Random,
           recipe: Recipe) -> None:  # fmt: skip
    """Look-changing edits of the original: similar shots, not copies."""
    if which == 0:
        w.put(f"Edits/{stem} bw.jpg", _jpeg(black_and_white(im), 90), base, "bw")
        w.put(f"Edits/{stem} graded.jpg", _jpeg(colour_grade(im), 90), base, "graded")
    else:
        w.put(f"Edits/{stem} sepia.jpg", _jpeg(sepia(im), 90), base, "sepia")
        w.put(f"Edits/{stem} retouched.jpg", _jpeg(retouch(im, rng), 92), base, "retouched")
        w.put(f"Edits/{stem} reframed.jpg", _jpeg(reframe(im, rng, recipe.reframe), 90), base,
              "reframed")  # fmt: skip


def build_collection(
    out_dir: str | os.PathLike[str],
    photos: Sequence[Path] | None = None,
    seed: int = 0,
    recipe: Recipe = Recipe(),
    max_side: int = 1024,
    defects_per_photo: bool = True,
) -> Path:
    """Write the collection under `out_dir/photos` and return the ground-truth CSV path.

    Base photo i: i % 4 == 1 is a defect without its twin (dark, bright, blurry in turn; none
    when not `defects_per_photo`); every other base is an original with its copies, and gets
    look-changing edits (i % 4 == 0 or 2) or a darker copy next to it (i % 4 == 3).
    """
    rng = random.Random(seed)
    photos = list(photos or bundled_photos())
    root = Path(out_dir) / "photos"
    root.mkdir(parents=True, exist_ok=True)
    w = _Writer(root)
    start = datetime(2023, 6, 1, 9, 0, 0)
    used: set[str] = set()
    n_defects = 0
    for i, src in enumerate(photos):
        base = f"p{i:04d}"
        stem = src.stem.replace(" ", "_")
        if stem in used:  # e.g. wallpapers all called 5120x2880.jpg
            stem = f"{stem}_{i}"
        used.add(stem)
        im = _load(src, max_side)
        when = start + timedelta(hours=7 * i)
        year = f"DCIM/{when.year}"
        if i % 4 == 1 and defects_per_photo:
            _defect(w, im, DEFECT_VARIANTS[n_defects % 3], stem, base, rng, recipe, year)
            n_defects += 1
            continue
        orig = _jpeg(im, recipe.original_quality, _exif_with_time(when))
        _copies(w, im, stem, base, i, rng, recipe, orig, year)
        if i % 4 in (0, 2):
            _edits(w, im, stem, base, (i // 4) % 2 if i % 4 == 0 else 1, rng, recipe)
        elif defects_per_photo:
            f = rng.uniform(*recipe.dark)
            darker = _jpeg(ImageEnhance.Brightness(im).enhance(f), 90)
            w.put(f"Camera roll/{stem}_dark.jpg", darker, base, "dark", f"{f:.2f}")
        if src.name == STEREO_PAIR[0] and (src.parent / STEREO_PAIR[1]).exists():
            right = _load(src.parent / STEREO_PAIR[1], max_side)
            w.put(f"{year}/{src.parent.joinpath(STEREO_PAIR[1]).stem}.jpg", _jpeg(right, 92), base,
                  "stereo")  # fmt: skip
    first = _load(photos[0], max_side)
    # two different pictures, each drawn in the alpha channel of a white image
    for k, src in enumerate(photos[:2]):
        art = alpha_picture(_load(src, 640))
        w.put(f"Wallpapers/white-{k}.png", _png(art), f"p{k:04d}", "alpha")
    w.put(
        "Camera roll/IMG_0001.DNG",
        minimal_dng(_raw_photo(first), start - timedelta(days=1)),
        "raw",
        "raw",
    )
    w.put("Downloads/photo.jxl", b"\xff\x0a" + rng.randbytes(2048), "jxl", "jxl")
    # broken files, from the first photo
    data = _jpeg(first, recipe.original_quality)
    cut = rng.uniform(*recipe.truncate)
    w.put("Downloads/truncated.jpg", data[: int(len(data) * cut)], "broken", "truncated",
          f"{cut:.2f}")  # fmt: skip
    w.put("Downloads/empty.jpg", b"", "broken", "empty")
    w.put("Downloads/not really.jpg", rng.randbytes(4096), "broken", "corrupt")
    w.put("Downloads/notes.txt", b"not a photo\n", "other", "not_image")
    last = len(photos) - 1
    if last % 4 != 1 or not defects_per_photo:  # a small copy under a unicode name
        small = _load(photos[last], 320)
        w.put("Downloads/ünïcödé name.jpg", _jpeg(small, 80), f"p{last:04d}", "resized")
    truth = Path(out_dir) / "truth.csv"
    with open(truth, "w", newline="", encoding="utf-8") as fh:
        wr = csv.DictWriter(fh, fieldnames=["path", "base", "variant", "param"])
        wr.writeheader()
        wr.writerows(w.rows)
    return truth
