"""Read one image file once: hash it, decode it fully, measure it, write its analysis copy.

This runs in worker processes (see `tasks/inspect.py`), so it imports only Pillow and numpy.
A full decode is the only reliable validity check: fastdup passes truncated JPEGs as valid.
The analysis copy (long side <= 512, EXIF orientation applied, transparency composited over a
neutral grey) is what fastdup sees: one decode of the original serves the validity check, the
metrics, the report thumbnail and fastdup, and formats or names fastdup cannot read never reach
it. Camera RAW files are read with LibRaw (rawpy): unpacking the sensor data is their validity
check, and their pixels are the camera's embedded preview when it covers the analysis size,
else LibRaw's half-size rendering. A file no decoder here reads (a RAW LibRaw does not know,
JPEG XL, a TIFF compression Pillow lacks) is `unsupported`, not invalid, unless its structure
shows it was damaged.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import os
import stat
import warnings
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import cv2
import numpy as np
from PIL import Image, UnidentifiedImageError

from photo_curate.containers import check_tiff
from photo_curate.sniff import TIFF_RAW, format_from_bytes, raw_format

cv2.setNumThreads(1)  # one worker process per core already

ANALYSIS_SIZE = 512
THUMB_SIZE = 200
THUMB_VERSION = 2  # 2: transparency over grey (the thumbnail cache folder is per version)
MIN_SIDE = 10  # fastdup rejects images under 10 px on a side
FLAT_STDV = 2.0  # below this, an image has no structure to measure sharpness on
HIGHLIGHT_LEVEL = 200  # luminance from here on counts as the top tones (`highlights`)
# Transparent areas are shown on a neutral grey, not white: a picture drawn in the alpha
# channel of a white image (desktop wallpapers) must look like itself, not like a white page.
BACKGROUND = (128, 128, 128)

_EXIF_IFD = 0x8769
_TAG_DATETIME_ORIGINAL = 0x9003
_TAG_SUBSEC_ORIGINAL = 0x9291
_TAG_DATETIME = 0x0132
_TAG_MAKE = 0x010F
_TAG_MODEL = 0x0110
_TAG_ORIENTATION = 0x0112

_ORIENTATIONS = range(2, 9)  # EXIF orientations that need a transpose

# IJG standard luminance quantization table (quality 50), any order: only its sum is used
_STD_LUMA_SUM = sum(
    [16, 11, 10, 16, 24, 40, 51, 61, 12, 12, 14, 19, 26, 58, 60, 55,
     14, 13, 16, 24, 40, 57, 69, 56, 14, 17, 22, 29, 51, 87, 80, 62,
     18, 22, 37, 56, 68, 109, 103, 77, 24, 35, 55, 64, 81, 104, 113, 92,
     49, 64, 78, 87, 103, 121, 120, 101, 72, 92, 95, 98, 112, 100, 103, 99]
)  # fmt: skip

_heif_registered = False
_made_dirs: set[str] = set()


@dataclass(frozen=True)
class InspectOptions:
    """What a worker needs to know besides the file."""

    max_pixels: int = 200_000_000
    max_file_bytes: int = 2 * 1024**3
    analysis_quality: int = 90
    thumbnail_dir: str | None = None  # content-addressed report thumbnails (HOME/cache/...)


def _register_heif() -> None:
    """HEIC/HEIF, and AVIF (Pillow 10.3, which fastdup pins, has no AVIF decoder of its own)."""
    global _heif_registered
    if not _heif_registered:
        try:
            import pillow_heif

            pillow_heif.register_heif_opener()
            if hasattr(pillow_heif, "register_avif_opener"):
                with warnings.catch_warnings():  # deprecated there, still the only AVIF decoder
                    warnings.simplefilter("ignore", DeprecationWarning)
                    pillow_heif.register_avif_opener()
        except ImportError:  # pragma: no cover - pillow-heif ships with fastdup
            pass
        _heif_registered = True


def _exif_fields(im: Image.Image | Image.Exif) -> dict[str, Any]:
    """Capture time, camera and orientation of an image (or of an EXIF directory read without
    decoding anything); broken EXIF costs the fields, not the image."""
    out: dict[str, Any] = {
        "captured_at": None,
        "camera_make": None,
        "camera_model": None,
        "orientation": None,
    }
    with contextlib.suppress(Exception):  # malformed EXIF is common; the pixels decide validity
        _read_exif(im if isinstance(im, Image.Exif) else im.getexif(), out)
    return out


def _read_exif(exif: Image.Exif, out: dict[str, Any]) -> None:
    if not exif:
        return
    sub = exif.get_ifd(_EXIF_IFD) or {}
    # DateTimeOriginal belongs in the EXIF directory; some RAW writers put it in IFD0
    raw = (
        sub.get(_TAG_DATETIME_ORIGINAL)
        or exif.get(_TAG_DATETIME_ORIGINAL)
        or exif.get(_TAG_DATETIME)
    )
    if isinstance(raw, str):
        with contextlib.suppress(ValueError):
            out["captured_at"] = datetime.strptime(raw.strip()[:19], "%Y:%m:%d %H:%M:%S")
        frac = sub.get(_TAG_SUBSEC_ORIGINAL) if sub.get(_TAG_DATETIME_ORIGINAL) else None
        if out["captured_at"] and isinstance(frac, str) and frac.strip().isdigit():
            # the frames of a burst share their second
            out["captured_at"] += timedelta(seconds=float("0." + frac.strip()[:6]))
    for key, tag in (("camera_make", _TAG_MAKE), ("camera_model", _TAG_MODEL)):
        val = exif.get(tag)
        if isinstance(val, str) and val.strip("\x00 "):
            out[key] = val.strip("\x00 ")[:200]
    orient = exif.get(_TAG_ORIENTATION)
    if isinstance(orient, int) and 1 <= orient <= 8:
        out["orientation"] = orient


def jpeg_quality(quantization: dict[int, Any] | None) -> int | None:
    """Estimate the IJG quality (1-100) a JPEG was saved with, from its luminance table.

    Encoders scale the standard table by S = 5000/q (q < 50) or 200 - 2q; inverting the mean
    scale gives q. Good enough to tell a re-encoded copy at quality 40 from its original at 92.
    """
    if not quantization or 0 not in quantization:
        return None
    table = list(quantization[0])
    if len(table) != 64:
        return None
    scale = 100.0 * sum(table) / _STD_LUMA_SUM
    q = (200.0 - scale) / 2.0 if scale <= 100.0 else 5000.0 / scale
    return round(min(max(q, 1.0), 100.0))


def jpeg_is_truncated(data: bytes) -> bool:
    """True when the last scan of a JPEG has no end-of-image marker after it.

    An EXIF thumbnail can hold an EOI marker before the main image, so look after the last
    start-of-scan marker only; trailers after EOI (maker notes, MPO) are fine.
    """
    sos = data.rfind(b"\xff\xda")
    if sos < 0:
        return True
    return data.find(b"\xff\xd9", sos) < 0


def flatten(im: Image.Image) -> Image.Image:
    """RGB view of any mode; transparent areas composited over BACKGROUND."""
    if im.mode in ("RGBA", "LA", "PA", "RGBa", "La") or (
        im.mode in ("P", "L", "RGB") and "transparency" in im.info
    ):
        rgba = im.convert("RGBA")
        bg = Image.new("RGBA", rgba.size, (*BACKGROUND, 255))
        return Image.alpha_composite(bg, rgba).convert("RGB")
    if im.mode in ("I;16", "I;16B", "I;16L", "I"):
        arr = np.asarray(im, dtype=np.float64)
        top = arr.max() if arr.size else 1.0
        scale = 255.0 / (65535.0 if top > 255 else 255.0)
        return Image.fromarray(np.clip(arr * scale, 0, 255).astype(np.uint8)).convert("RGB")
    if im.mode == "F":
        arr = np.asarray(im, dtype=np.float64)
        lo, hi = float(arr.min()), float(arr.max())
        arr = (arr - lo) / (hi - lo) * 255 if hi > lo else arr * 0
        return Image.fromarray(arr.astype(np.uint8)).convert("RGB")
    return im.convert("RGB")


def _sharpness(gray: np.ndarray) -> tuple[float | None, float | None]:
    """(Laplacian variance, log10 of it divided by the contrast variance) of a gray image."""
    if gray.shape[0] < 3 or gray.shape[1] < 3:
        return None, None
    lap = cv2.Laplacian(gray, cv2.CV_32F, ksize=1, borderType=cv2.BORDER_REPLICATE)
    lapvar = float(cv2.meanStdDev(lap)[1][0, 0] ** 2)
    std = float(cv2.meanStdDev(gray)[1][0, 0])
    if std < FLAT_STDV:
        return lapvar, None
    return lapvar, float(np.log10(lapvar / std**2 + 1e-9))


def _half(arr: np.ndarray) -> np.ndarray:
    """Exact 2x2 box reduction (OpenCV's fast path needs an exact integer factor)."""
    h, w = arr.shape[:2]
    even = arr[: h - h % 2, : w - w % 2]
    return cv2.resize(even, (max(1, w // 2), max(1, h // 2)), interpolation=cv2.INTER_AREA)


def _fit(arr: np.ndarray, side: int) -> np.ndarray | None:
    """`arr` scaled down to `side` px on its long side; None if it is smaller.

    Halve with exact box averaging while it stays at or above twice the target, then finish
    bilinear (a mild reduction): the quality of area averaging at a tenth of the cost of
    OpenCV's area path for fractional ratios.
    """
    h, w = arr.shape[:2]
    if max(h, w) < side:
        return None
    while max(arr.shape[:2]) >= 2 * side and min(arr.shape[:2]) >= 4:
        arr = _half(arr)
    h, w = arr.shape[:2]
    if max(h, w) == side:
        return arr
    s = side / max(h, w)
    return cv2.resize(
        arr, (max(1, round(w * s)), max(1, round(h * s))), interpolation=cv2.INTER_LINEAR
    )


def flat_share(rgb: np.ndarray, gray: np.ndarray) -> float:
    """Share of the mid-tone pixels whose 3 x 3 neighbourhood has exactly one colour.

    Graphics, screenshots and renders are made of such areas; photographs have sensor noise and
    texture everywhere except where they are clipped (which is why clipped pixels do not
    count): on the real photos of the bench pools at most 0.16, on graphics 0.5 to 1.
    """
    kernel = np.ones((3, 3), np.uint8)
    spread = (cv2.dilate(rgb, kernel).astype(np.int16) - cv2.erode(rgb, kernel)).max(axis=2)
    mid = (gray > 8) & (gray < 247)
    n_mid = int(mid.sum())
    return float(((spread == 0) & mid).sum() / n_mid) if n_mid else 1.0


def pixel_metrics(rgb: np.ndarray) -> dict[str, float | None]:
    """Brightness and sharpness of an RGB analysis image (uint8 HxWx3, long side <= 512).

    mean/min/max/stdv are fastdup's stats (on luminance); p05/p95 and the clipped fractions
    describe exposure better than the mean (a darkened photo has no bright tones left; an
    overexposed one has whole areas where a channel is blown, and most of the frame in the top
    tones: `highlights`); `flat_share` tells graphics from photos; they are measured at 256 px,
    where they are as good and four times cheaper. Sharpness is the Laplacian variance
    normalised by the contrast, so darkening alone does not look like blur, measured at fixed
    long sides (512, 256, 128 px) so two copies of different sizes compare at a common scale.
    """
    gray = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)
    small = _fit(rgb, 256)
    small = rgb if small is None else small
    sgray = cv2.cvtColor(small, cv2.COLOR_RGB2GRAY)
    hist = np.bincount(sgray.ravel(), minlength=256).astype(np.float64)
    n = hist.sum()
    levels = np.arange(256, dtype=np.float64)
    mean = float((hist * levels).sum() / n)
    var = float((hist * (levels - mean) ** 2).sum() / n)
    cdf = np.cumsum(hist) / n
    nz = np.nonzero(hist)[0]
    lapvar, sharp = _sharpness(gray)
    out: dict[str, float | None] = {
        "mean": mean,
        "min": float(nz[0]),
        "max": float(nz[-1]),
        "stdv": var**0.5,
        "p05": float(np.searchsorted(cdf, 0.05)),
        "p50": float(np.searchsorted(cdf, 0.50)),
        "p95": float(np.searchsorted(cdf, 0.95)),
        "p99": float(np.searchsorted(cdf, 0.99)),
        "highlights": float(hist[HIGHLIGHT_LEVEL:].sum() / n),
        "clipped_dark": float(hist[:6].sum() / n),
        "clipped_bright": float((small.max(axis=2) >= 250).mean()),
        "flat_share": flat_share(small, sgray),
        "lapvar": lapvar,
        "blur": lapvar,
        "sharpness": sharp,
    }
    for side in (512, 256, 128):
        scaled = _fit(gray, side)
        out[f"sharp_{side}"] = _sharpness(scaled)[1] if scaled is not None else None
    return out


def _empty_row() -> dict[str, Any]:
    return {
        "sha256": None,
        "format": None,
        "width": None,
        "height": None,
        "mode": None,
        "frames": None,
        "is_valid": False,
        "error": None,
        "unsupported": False,
        "captured_at": None,
        "camera_make": None,
        "camera_model": None,
        "orientation": None,
        "jpeg_quality": None,
        "mean": None,
        "min": None,
        "max": None,
        "stdv": None,
        "p05": None,
        "p50": None,
        "p95": None,
        "p99": None,
        "highlights": None,
        "flat_share": None,
        "clipped_dark": None,
        "clipped_bright": None,
        "lapvar": None,
        "blur": None,
        "sharpness": None,
        "sharp_512": None,
        "sharp_256": None,
        "sharp_128": None,
        "analysis_file": None,
    }


def _read(path: str, limit: int) -> bytes:
    # never open a FIFO or device that replaced the file since the scan: open() would block
    if not stat.S_ISREG(os.lstat(path).st_mode):
        raise _Invalid("not a regular file any more (changed since the scan)")
    with open(path, "rb") as fh:
        data = fh.read(limit + 1)
    if len(data) > limit:
        raise _Invalid(f"too large: file exceeds the {limit // 1024**2} MiB limit")
    return data


class _Invalid(Exception):
    """A file that is not a usable image, with the reason a person can read."""


class _Unsupported(Exception):
    """A file no decoder here reads and that shows no damage (reviewed, never removed)."""


def inspect_file(
    abs_path: str, analysis_path: str | None, opts: InspectOptions = InspectOptions()
) -> dict[str, Any]:
    """Inspect one file; never raises for a bad file: the reason goes into `error`."""
    row = _empty_row()
    try:
        data = _read(abs_path, opts.max_file_bytes)
    except _Invalid as exc:
        row["error"] = str(exc)
        return row
    except PermissionError:
        row["error"] = "unreadable: permission denied"
        return row
    except FileNotFoundError:
        row["error"] = "vanished: the file was removed during the run"
        return row
    except IsADirectoryError:
        row["error"] = "not a file"
        return row
    except OSError as exc:
        row["error"] = f"unreadable: {exc.strerror or exc}"
        return row
    row["sha256"] = hashlib.sha256(data).hexdigest()
    if not data:
        row["error"] = "empty file (0 bytes)"
        return row
    # a RAW is never handed to Pillow: it would read the RAW's small preview as the photo
    raw = raw_format(abs_path, data[:64])
    try:
        _decode_and_measure(data, raw, analysis_path, opts, row)
        row["is_valid"] = True
    except _Unsupported as exc:
        row["unsupported"] = True
        row["error"] = str(exc)
    except _Invalid as exc:
        row["error"] = str(exc)
    except Image.DecompressionBombError as exc:
        row["error"] = f"too large: {exc}"
    except UnidentifiedImageError:
        fmt = format_from_bytes(data[:32])
        if fmt:
            _undecodable(data, fmt, row)
        else:
            row["error"] = "not a readable image: unknown or corrupt format"
    except (OSError, SyntaxError, ValueError, EOFError) as exc:
        msg = str(exc) or type(exc).__name__
        if row["format"] == "TIFF" and _NO_DECODER in msg:
            _undecodable(data, "TIFF", row)  # Pillow parsed it but lacks the codec
        elif "truncated" in msg:
            row["error"] = f"truncated: {msg}"
        else:
            row["error"] = f"corrupt: {msg}"
    except Exception as exc:  # a decoder bug must not end the run
        row["error"] = f"undecodable: {type(exc).__name__}: {exc}"
    if not row["is_valid"]:
        row["analysis_file"] = None
    return row


_NO_DECODER = "not available"  # Pillow: "decoder <name> not available"


def _undecodable(data: bytes, fmt: str, row: dict[str, Any]) -> None:
    """Fill `row` for a file (not a camera RAW: see `_decode_raw`) that no decoder here reads:
    `unsupported` when its container is sound (or cannot be checked), invalid when its
    structure shows damage."""
    row["format"] = fmt
    if fmt == "TIFF":
        tiff = check_tiff(data)
        if tiff.damage is None:
            row["unsupported"] = True
            row["error"] = (
                f"unsupported format: TIFF with {tiff.detail} (no decoder for it here; "
                "not analysed)"
            )
        elif tiff.damage.startswith("truncated"):
            row["error"] = tiff.damage
        else:
            row["error"] = f"not a readable image: corrupt TIFF data ({tiff.damage})"
        return
    if fmt not in Image.OPEN:  # the bytes say what it is; nothing here decodes it
        row["unsupported"] = True
        row["error"] = f"unsupported format: {fmt} (no decoder for it here; not analysed)"
    else:
        row["error"] = f"not a readable image: corrupt {fmt} data"


def _decode_jpeg_reduced(data: bytes, width: int, height: int) -> np.ndarray:
    """Decode a whole JPEG with libjpeg-turbo's DCT scaling to just above the analysis size.

    Every byte of the entropy-coded data is still decoded (truncation is caught before by
    the end-of-image check); scaling in the DCT makes it 2-3x cheaper than a full-size decode.
    """
    flag = cv2.IMREAD_COLOR
    for factor, reduced in ((8, cv2.IMREAD_REDUCED_COLOR_8), (4, cv2.IMREAD_REDUCED_COLOR_4),
                            (2, cv2.IMREAD_REDUCED_COLOR_2)):  # fmt: skip
        if min(width, height) // factor >= ANALYSIS_SIZE:
            flag = reduced
            break
    bgr = cv2.imdecode(np.frombuffer(data, np.uint8), flag | cv2.IMREAD_IGNORE_ORIENTATION)
    if bgr is None:
        raise _Invalid("corrupt: the JPEG data could not be decoded")
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)


def _transpose(arr: np.ndarray, orient: int) -> np.ndarray:
    """The numpy view that shows an EXIF-oriented image upright (as ImageOps.exif_transpose)."""
    ops = {
        2: lambda a: a[:, ::-1],
        3: lambda a: a[::-1, ::-1],
        4: lambda a: a[::-1],
        5: lambda a: a.transpose(1, 0, 2),
        6: lambda a: np.rot90(a, -1),
        7: lambda a: a[::-1, ::-1].transpose(1, 0, 2),
        8: lambda a: np.rot90(a, 1),
    }
    return ops[orient](arr)


def display_size(path: str) -> tuple[int, int] | None:
    """(width, height) of the image at `path` as displayed, from its header; None if unreadable."""
    _register_heif()
    try:
        with Image.open(path) as im:
            w, h = im.size
            orient = im.getexif().get(0x0112) or 1
    except Exception:  # any decoder error: no size
        return None
    return (h, w) if orient in (5, 6, 7, 8) else (w, h)


def read_gray(path: str, size: tuple[int, int]) -> np.ndarray | None:
    """The image at `path` as displayed (orientation applied, transparency over grey) in grey
    levels at exactly `size` (width, height); None when it cannot be read. JPEGs are decoded
    at a reduced DCT scale where that still covers `size`."""
    _register_heif()
    try:
        with Image.open(path) as im:
            orient = im.getexif().get(0x0112) or 1
            stored = (size[1], size[0]) if orient in (5, 6, 7, 8) else size
            if im.format in ("JPEG", "MPO"):
                im.draft("RGB", stored)
            arr = np.asarray(flatten(im))
    except Exception:  # any decoder error: nothing to compare
        return None
    if orient in _ORIENTATIONS:
        arr = np.ascontiguousarray(_transpose(arr, orient))
    gray = cv2.cvtColor(arr, cv2.COLOR_RGB2GRAY)
    shrink = size[0] < gray.shape[1]
    return cv2.resize(gray, size, interpolation=cv2.INTER_AREA if shrink else cv2.INTER_LINEAR)


def thumbnail_path(root: str, sha256: str) -> str:
    return os.path.join(root, sha256[:2], f"{sha256}.jpg")


def read_thumbnail(path: str) -> np.ndarray | None:
    """A cached thumbnail as RGB uint8 (None when it is missing or unreadable)."""
    bgr = cv2.imread(path, cv2.IMREAD_COLOR)
    return None if bgr is None else cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)


def write_thumbnail(arr: np.ndarray, path: str) -> None:
    """A small JPEG for the report, made once per content (the cache is keyed by sha256)."""
    if os.path.exists(path):
        return
    small = _fit(arr, THUMB_SIZE) if max(arr.shape[:2]) > THUMB_SIZE else arr
    ok, jpg = cv2.imencode(
        ".jpg", cv2.cvtColor(small, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, 80]
    )
    if ok:
        folder = os.path.dirname(path)
        if folder not in _made_dirs:
            os.makedirs(folder, exist_ok=True)
            _made_dirs.add(folder)
        tmp = f"{path}.{os.getpid()}.part"
        with open(tmp, "wb") as fh:
            fh.write(jpg.tobytes())
        os.replace(tmp, path)


def _decode_and_measure(
    data: bytes,
    raw: str | None,
    analysis_path: str | None,
    opts: InspectOptions,
    row: dict[str, Any],
) -> None:
    """Decode `data` (a camera RAW when `raw` names its format), then measure it."""
    if raw:
        arr, width, height = _decode_raw(data, raw, opts, row)
    else:
        arr, width, height = _decode_pillow(data, opts, row)
    _measure(arr, width, height, analysis_path, opts, row)


def _decode_pillow(
    data: bytes, opts: InspectOptions, row: dict[str, Any]
) -> tuple[np.ndarray, int, int]:
    """(RGB pixels as stored, at least ANALYSIS_SIZE where the image has it, stored width and
    height) of any format Pillow reads; every byte is decoded."""
    _register_heif()
    Image.MAX_IMAGE_PIXELS = opts.max_pixels
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        im = Image.open(io.BytesIO(data))
        row["format"] = (im.format or "").upper() or None
        row["mode"] = im.mode
        row["frames"] = int(getattr(im, "n_frames", 1) or 1)
        width, height = im.size
        row.update(_exif_fields(im))
        if row["format"] in ("JPEG", "MPO") and jpeg_is_truncated(data):
            raise _Invalid("truncated: no end-of-image marker after the last scan")
        arr: np.ndarray | None = None
        if row["format"] in ("JPEG", "MPO"):
            row["jpeg_quality"] = jpeg_quality(getattr(im, "quantization", None))
            if im.mode in ("RGB", "L") and width * height <= opts.max_pixels:
                arr = _decode_jpeg_reduced(data, width, height)
            else:
                im.draft("RGB", (ANALYSIS_SIZE, ANALYSIS_SIZE))
        if arr is None:
            im.load()  # full decode: raises on truncated or corrupt data
    for w in caught:  # some decoders only warn when the data ends early (TIFF)
        if "runcat" in str(w.message):
            raise _Invalid(f"truncated: {w.message}")
    if arr is None:
        arr = np.asarray(flatten(im))
    return arr, width, height


# dcraw/LibRaw `flip` codes as EXIF orientations (dcraw maps EXIF o to "50132467"[o])
_FLIP_TO_EXIF = {0: 1, 1: 2, 3: 3, 2: 4, 4: 5, 6: 6, 7: 7, 5: 8}
_PREVIEW_ASPECT = 0.03  # a preview of another aspect (letterboxed, cropped) is not used


def _libraw_message(exc: Exception) -> str:
    msg = exc.args[0] if exc.args else ""
    msg = msg.decode(errors="replace") if isinstance(msg, bytes) else str(msg)
    return msg or type(exc).__name__


def _decode_raw(
    data: bytes, fmt: str, opts: InspectOptions, row: dict[str, Any]
) -> tuple[np.ndarray, int, int]:
    """(RGB pixels as stored, the stored size of the full image) of a camera RAW, with LibRaw.

    Validity is that LibRaw unpacks all of the sensor data. The pixels are the camera's own
    rendering where it covers the analysis size (the embedded preview), else LibRaw's: on a
    6000 x 4000 DNG (48 MB) unpacking takes 0.14 s and a half-size rendering 0.24 s more (a
    full-size one 1.9 s). Metadata comes from the TIFF container (read without decoding), else
    from the preview's EXIF. Raises _Unsupported when LibRaw cannot read a file that shows
    no damage, _Invalid when it is damaged.
    """
    import rawpy

    row["format"], row["mode"], row["frames"] = fmt, "RGB", 1
    tiff = check_tiff(data) if fmt in TIFF_RAW else None
    # a cut-off file is damaged; a structure tifffile does not know (maker formats) is not
    if tiff is not None and tiff.damage and tiff.damage.startswith("truncated"):
        raise _Invalid(f"{tiff.damage} ({fmt} camera RAW)")
    if tiff is not None:
        exif = Image.Exif()
        with contextlib.suppress(Exception):
            exif.load(data)
        row.update(_exif_fields(exif))
    try:
        with rawpy.imread(io.BytesIO(data)) as rp:
            width, height = rp.sizes.width, rp.sizes.height  # the output size, before `flip`
            if width * height > opts.max_pixels:
                raise _Invalid(f"too large: {width}x{height} px exceeds the pixel limit")
            rp.unpack()  # reads all of the sensor data: the validity check
            flip = rp.sizes.flip
            arr = _raw_preview(rp, width, height, row)
            if arr is None:
                arr = rp.postprocess(
                    half_size=max(width, height) >= 2 * ANALYSIS_SIZE,
                    use_camera_wb=True,
                    # exposure as shot: LibRaw's auto-brightening would lift a dark shot
                    no_auto_bright=True,
                    output_bps=8,
                    user_flip=0,  # stored orientation, as the preview: `_measure` turns both
                )
    except (rawpy.LibRawTooBigError, rawpy.LibRawUnsufficientMemoryError) as exc:
        raise _Invalid(f"too large: LibRaw: {_libraw_message(exc)}") from exc
    except (rawpy.LibRawIOError, rawpy.LibRawDataError) as exc:
        # the data ends early or does not decode: damage only where the container shows it
        if tiff is not None and tiff.damage:
            raise _Invalid(
                f"not a readable image: corrupt {fmt} camera RAW ({tiff.damage}; "
                f"LibRaw: {_libraw_message(exc)})"
            ) from exc
        raise _Unsupported(_raw_unsupported(fmt, exc)) from exc
    except rawpy.LibRawError as exc:  # unsupported format, not implemented, ...
        raise _Unsupported(_raw_unsupported(fmt, exc)) from exc
    if flip or row["orientation"]:
        row["orientation"] = _FLIP_TO_EXIF.get(flip, 1)
    return np.ascontiguousarray(arr), width, height


def _raw_unsupported(fmt: str, exc: Exception) -> str:
    return (
        f"unsupported format: {fmt} camera RAW (LibRaw cannot read it: "
        f"{_libraw_message(exc)}; not analysed)"
    )


def _raw_preview(rp: Any, width: int, height: int, row: dict[str, Any]) -> np.ndarray | None:
    """The embedded preview (RGB, stored orientation) when it covers ANALYSIS_SIZE and has the
    aspect of the image, else None; its EXIF fills the fields the container did not give."""
    import rawpy

    try:
        thumb = rp.extract_thumb()
    except rawpy.LibRawError:  # no preview, or one LibRaw cannot extract
        return None
    arr: np.ndarray | None = None
    if thumb.format == rawpy.ThumbFormat.JPEG:
        try:
            if jpeg_is_truncated(thumb.data):
                return None
            with Image.open(io.BytesIO(thumb.data)) as im:
                for key, val in _exif_fields(im).items():
                    if key != "orientation" and row[key] is None:
                        row[key] = val
                w, h = im.size
                if max(w, h) < ANALYSIS_SIZE:
                    return None
                if im.mode in ("RGB", "L"):
                    arr = _decode_jpeg_reduced(thumb.data, w, h)
                else:
                    im.load()
                    arr = np.asarray(flatten(im))
        except Exception:  # a broken preview: LibRaw renders the sensor data instead
            return None
    elif thumb.format == rawpy.ThumbFormat.BITMAP:
        arr = thumb.data
        if arr.dtype != np.uint8 or arr.ndim != 3 or arr.shape[2] != 3:
            return None
    if arr is None or max(arr.shape[:2]) < ANALYSIS_SIZE:
        return None
    if abs(arr.shape[1] / arr.shape[0] - width / height) > _PREVIEW_ASPECT * width / height:
        return None
    return arr


def _measure(
    arr: np.ndarray,
    width: int,
    height: int,
    analysis_path: str | None,
    opts: InspectOptions,
    row: dict[str, Any],
) -> None:
    """Size checks, orientation, metrics, thumbnail and analysis copy of decoded RGB pixels
    (`arr` and `width` x `height` as stored; `row["orientation"]` says how to show them)."""
    if min(width, height) < MIN_SIDE:
        raise _Invalid(f"too small: {width}x{height} px (at least {MIN_SIDE} px a side)")
    orient = row["orientation"] or 1
    if orient in (5, 6, 7, 8):  # stored rotated: report the size as displayed
        width, height = height, width
    row["width"], row["height"] = width, height
    if orient in _ORIENTATIONS:
        arr = np.ascontiguousarray(_transpose(arr, orient))
    arr = _fit(arr, ANALYSIS_SIZE) if max(arr.shape[:2]) > ANALYSIS_SIZE else arr
    row.update(pixel_metrics(arr))
    if opts.thumbnail_dir and row["sha256"]:
        write_thumbnail(arr, thumbnail_path(opts.thumbnail_dir, row["sha256"]))
    if analysis_path is not None:
        ok, jpg = cv2.imencode(
            ".jpg",
            cv2.cvtColor(arr, cv2.COLOR_RGB2BGR),
            [cv2.IMWRITE_JPEG_QUALITY, opts.analysis_quality],
        )
        if not ok:
            raise _Invalid("undecodable: could not write its analysis copy")
        tmp = analysis_path + ".part"
        with open(tmp, "wb") as fh:
            fh.write(jpg.tobytes())
        os.replace(tmp, analysis_path)
        row["analysis_file"] = analysis_path


def inspect_many(
    items: list[tuple[int, str, str | None]], opts: InspectOptions
) -> list[tuple[int, dict[str, Any]]]:
    """Worker entry point: inspect a chunk of (id, absolute path, analysis path) items."""
    return [(ident, inspect_file(path, analysis, opts)) for ident, path, analysis in items]
