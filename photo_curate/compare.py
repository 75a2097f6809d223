"""Is it the same picture? Compare two images' pixels, aligned, after normalising exposure.

An embedding says two images look alike; it cannot tell a re-encoded copy from the next frame
of a burst, a black-and-white edit or the other view of a stereo pair. Pixels can: copies
differ by a level or two everywhere, other shots differ a lot somewhere (a moved person, an
opened mouth, a retouched region) or in colour.

`compare(a, b)` takes two RGB uint8 images of any size (the report thumbnails, 200 px; or
`prepare`d ones, so an image in many pairs is prepared once) and returns measurements only;
sql/relation.sql classifies them (copy, variant, similar, none) with the config's thresholds.

1. Alignment. A crop or a resize moves the grid, so the smaller field of view is found inside
   the larger one: normalised template matching over a few scales at 32 px, both ways round,
   then at 64 px around the best scale, then a Gauss-Newton fit of an affine warp with a gain
   and an offset (brightness and contrast do not bias it) at 64 and 128 px.
2. Views that overlap by less than DETAIL_MIN_OVERLAP of a side are re-framings, never copies:
   only their alignment is measured. For the others the overlap is cut out, the other image
   warped onto it, and both brought to a 96 px comparison grid.
3. Exposure is normalised by histogram matching of the luminance (a monotone tone map, in the
   direction that compresses tones, so a darkened copy's noise is not amplified); then the
   local differences are measured: the mean absolute difference, the worst 8 x 8 block, and
   how far it stands out from the typical block (a moved person or a retouched patch stands
   out; re-encoding noise is spread over the frame). Colour is compared on its own, since a
   B&W, sepia or colour-graded edit keeps the luminance: correlation of the chroma,
   saturation ratio, global chroma shift and the worst block of chroma difference.
4. A blurred copy differs at every edge: when the two differ in detail, the sharper image is
   blurred with a few Gaussian widths and the best fit is kept.
5. A pair that looks like a copy at thumbnail size is looked at closer, from the original files
   (`Original`) at up to FINE_SCALE x the work grid (512 px): the warp refined there, both
   lightly smoothed and tone-matched, and each pixel's difference taken from the range of the
   other image's 3 x 3 neighbourhood, so resampling and half-pixel misalignment cost nothing
   while a subject that moved by a few pixels (the other view of a stereo pair, the next
   frame) or a retouched patch does. `fine_block` is the worst 16 x 16 window of that.
6. A plain picture (no structure at thumbnail size) is compared by its colours, and, from the
   files at up to PLAIN_SIDE px, by its faint pattern (a wallpaper's texture, a gradient)
   stretched to a standard deviation of PLAIN_STRETCH levels: `fine_block` is then the worst
   16 x 16 window of the difference of the two stretched patterns, laid over each other
   without alignment (a re-framing, a crop or a retouch moves the pattern; a resize or a
   re-encode does not).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass, field

import cv2
import numpy as np

COMPARE_VERSION = "pix-4"  # part of the pair cache key: a change here recomputes pairs
WORK = 128  # long side of the alignment grid
GRID = 96  # long side of the comparison grid
BLOCK = 8  # block side on the comparison grid
SCALES = (1.0, 0.94, 0.88, 0.82, 0.76, 0.70, 0.62, 0.54)  # smaller view / larger view
# views overlapping by less than this share of a side are re-framings, never copies: only
# their alignment is measured (the copy threshold, rules.copy_min_overlap, is above it)
DETAIL_MIN_OVERLAP = 0.70
BLUR_SIGMAS = (0.7, 1.2, 2.0, 3.2)  # on the comparison grid
BLUR_DETAIL_RATIO = 1.25  # less difference in detail than this: no blur fit
FLAT_STD = 3.0  # luminance standard deviation below this: no structure to align or compare
FINE_SCALE = 4  # the closer look: at most this multiple of the work grid (512 px)
FINE_MIN_SCALE = 2  # originals too small for twice the work grid show nothing new
FINE_SIGMA = 1.2  # smoothing before the closer look (resampling, JPEG noise)
FINE_WINDOW = 16
FINE_GATE_MEAN = 6.0  # looked at closer only when the thumbnails differ this little
FINE_GATE_WORST = 24.0
PLAIN_SIDE = 256  # a plain picture's pattern is compared at this long side
PLAIN_STRETCH = 10.0  # ... stretched to this standard deviation (levels)
PLAIN_MIN_STD = 0.5  # less than this (levels) at PLAIN_SIDE: no pattern at all, colour only
_TRIM = 0.06  # template margin a side: an uneven crop changes the aspect ratio this much


@dataclass(frozen=True)
class PairMeasures:
    """What the pixels of two images say (levels are 0-255; chroma in YCrCb units)."""

    ncc: float  # luminance correlation of the aligned views (plain ones: of their patterns)
    overlap: float  # the smallest share of either image's width or height in the overlap
    flat: bool  # one of them has no structure (a plain colour): only raw differences count
    raw_diff: float  # mean absolute RGB difference (of 16 px versions when flat)
    tone_shift: float  # mean absolute luminance difference before tone matching
    contrast_ratio: float  # luminance standard deviations, the smaller over the larger
    mean_diff: float  # mean absolute luminance difference after tone matching
    worst_block: float  # the largest mean of that difference over an 8 x 8 window
    block_ratio: float  # worst block / (median block + 0.5): a local change stands out
    chroma_corr: float  # correlation of the Cr/Cb chroma; 1 when neither has colour
    saturation_ratio: float  # chroma gain from the more to the less colourful (1: no colour)
    chroma_shift: float  # distance between the mean chroma of both
    chroma_residual: float  # mean chroma difference that gain and shift do not explain
    worst_chroma_block: float  # the largest 8 x 8 window mean of that residual
    detail_ratio: float  # fine detail (Laplacian / contrast), the smaller over the larger
    blur_sigma: float  # Gaussian sigma (grid px) that best turns the sharper into the other
    blur_diff: float  # mean luminance difference after that blur (mean_diff when none fits)
    blur_worst_block: float  # worst block after that blur
    fine_block: float  # worst 16 x 16 window of the closer look, steps 5-6 (NaN: not looked at)
    reframe: float  # how far the aligned corners lie from each other's, over the long side

    def as_row(self) -> dict[str, float | bool]:
        return asdict(self)


@dataclass(frozen=True)
class Original:
    """The file behind a thumbnail, for the closer look: its size as displayed and a reader
    that returns it in grey levels at a given (width, height)."""

    size: tuple[int, int]
    read: Callable[[tuple[int, int]], np.ndarray | None]


@dataclass(frozen=True)
class Prepared:
    """One image made ready for its comparisons (computed once per image, not per pair)."""

    rgb: np.ndarray  # WORK px long side
    gray: np.ndarray  # float32, WORK px, lightly smoothed for the warp fit
    half: np.ndarray  # float32, WORK / 2 px
    quarter: np.ndarray  # float32, WORK / 4 px
    flat: bool
    tiny: np.ndarray  # float32 RGB, 16 px long side (flat images compare by this)
    templates: list[tuple[float, np.ndarray, int, int]] = field(repr=False)  # quarter px


def _fit(arr: np.ndarray, side: int) -> np.ndarray:
    h, w = arr.shape[:2]
    s = side / max(h, w)
    size = (max(4, round(w * s)), max(4, round(h * s)))
    return cv2.resize(arr, size, interpolation=cv2.INTER_AREA if s < 1 else cv2.INTER_LINEAR)


def _templates(quarter: np.ndarray) -> list[tuple[float, np.ndarray, int, int]]:
    """(scale, template, margin x, margin y): the image scaled, less a margin a side."""
    out = []
    for s in SCALES:
        th, tw = round(quarter.shape[0] * s), round(quarter.shape[1] * s)
        mh, mw = max(1, round(th * _TRIM)), max(1, round(tw * _TRIM))
        if th - 2 * mh < 8 or tw - 2 * mw < 8:
            continue
        scaled = (
            quarter if s == 1.0 else cv2.resize(quarter, (tw, th), interpolation=cv2.INTER_AREA)
        )
        out.append((s, np.ascontiguousarray(scaled[mh : th - mh, mw : tw - mw]), mw, mh))
    return out


def prepare(rgb: np.ndarray) -> Prepared:
    """The work copies of an RGB (or RGBA: the colour planes) uint8 image."""
    work = _fit(np.ascontiguousarray(rgb[..., :3]), WORK)
    gray = cv2.cvtColor(work, cv2.COLOR_RGB2GRAY).astype(np.float32)
    half = cv2.resize(gray, (gray.shape[1] // 2, gray.shape[0] // 2), interpolation=cv2.INTER_AREA)
    quarter = cv2.resize(
        half, (half.shape[1] // 2, half.shape[0] // 2), interpolation=cv2.INTER_AREA
    )
    std = float(cv2.meanStdDev(gray)[1][0, 0])
    return Prepared(
        rgb=work,
        gray=cv2.GaussianBlur(gray, (0, 0), 0.6),
        half=half,
        quarter=quarter,
        flat=std < FLAT_STD,
        tiny=_fit(work, 16).astype(np.float32),
        templates=_templates(quarter),
    )


def _match(big: np.ndarray, tmpl: np.ndarray) -> tuple[float, tuple[int, int]]:
    if tmpl.shape[0] > big.shape[0] or tmpl.shape[1] > big.shape[1]:
        return -2.0, (0, 0)
    _, score, _, loc = cv2.minMaxLoc(cv2.matchTemplate(big, tmpl, cv2.TM_CCOEFF_NORMED))
    return float(score), loc


def _search(big: Prepared, small: Prepared) -> list[tuple[float, float, float, float]]:
    """Where `small`, scaled, sits in `big` at quarter resolution: (score, scale, x, y) of the
    best match preferring the larger scale (a copy over a crop of it), and of the best match
    outright when that is another scale (a smooth picture matches at several scales; the
    closer fit decides)."""
    biased = best = (-2.0, 1.0, 0.0, 0.0)
    for s, tmpl, mw, mh in small.templates:
        score, (x, y) = _match(big.quarter, tmpl)
        found = (score, s, float(x - mw), float(y - mh))
        if score > biased[0] + 0.01:  # prefer the larger scale unless clearly better
            biased = found
        if score > best[0]:
            best = found
    return [biased] if best[1] == biased[1] else [biased, best]


def _near(big: np.ndarray, small: np.ndarray, s0: float) -> tuple[float, float, float, float]:
    """The quarter-resolution match refined at half resolution over neighbouring scales."""
    best = (-2.0, s0, 0.0, 0.0)
    for s in sorted({min(1.0, s0 * f) for f in (1.0, 1.03, 0.97)}, reverse=True):
        th, tw = round(small.shape[0] * s), round(small.shape[1] * s)
        mh, mw = max(1, round(th * _TRIM)), max(1, round(tw * _TRIM))
        scaled = small if s == 1.0 else cv2.resize(small, (tw, th), interpolation=cv2.INTER_AREA)
        score, (x, y) = _match(big, scaled[mh : th - mh, mw : tw - mw])
        if score > best[0] + 0.005:
            best = (score, s, float(x - mw), float(y - mh))
    return best


def _gauss_newton(big: np.ndarray, small: np.ndarray, warp: np.ndarray, iters: int) -> np.ndarray:
    """Fit small(W x) * gain + offset ~ big(x) with W a scale per axis and a shift (crops and
    resizes neither rotate nor shear); W maps big to small coordinates. Damped (Levenberg-
    Marquardt) Gauss-Newton steps, the residual always over the same pixels of `big` (the
    overlap of the starting warp, a margin in), so a step cannot look better by moving the
    overlap onto a flat region."""
    box = _overlap_box(warp, big.shape, small.shape)
    if box is None:
        return warp
    margin = max(2, round(0.04 * max(big.shape)))
    x0, y0, x1, y1 = box[0] + margin, box[1] + margin, box[2] - margin, box[3] - margin
    if x1 - x0 < 8 or y1 - y0 < 8:
        return warp
    ys, xs = np.mgrid[y0:y1, x0:x1].astype(np.float32)
    xs, ys = xs.ravel(), ys.ravel()
    side = float(max(big.shape))
    target = big[y0:y1, x0:x1].ravel()
    gx = cv2.Sobel(small, cv2.CV_32F, 1, 0, ksize=3, scale=0.125)
    gy = cv2.Sobel(small, cv2.CV_32F, 0, 1, ksize=3, scale=0.125)
    planes = cv2.merge([small, gx, gy])
    size = (x1 - x0, y1 - y0)

    def sample(p: np.ndarray) -> np.ndarray:
        # the box's pixels: small at W(x) for x = (x0, y0) + box coordinates
        m = np.array([[p[0], 0, p[2] + p[0] * x0], [0, p[1], p[3] + p[1] * y0]], np.float32)
        return cv2.warpAffine(
            planes, m, size, flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
            borderMode=cv2.BORDER_REPLICATE,
        ).reshape(-1, 3)  # fmt: skip

    params = np.array([warp[0, 0], warp[1, 1], warp[0, 2], warp[1, 2], 1.0, 0.0], np.float64)
    scale = np.array([side, side, 1.0, 1.0, 128.0, 1.0])  # every column of the same order
    best, best_cost = params, np.inf
    normal = grad = None
    damping = 1e-2
    for _ in range(iters + 1):
        sampled = sample(params)
        gain, offset = params[4], params[5]
        val = sampled[:, 0]
        resid = gain * val + offset - target
        cost = float(resid @ resid)
        if cost < best_cost:
            dx, dy = sampled[:, 1] * gain, sampled[:, 2] * gain
            jac = np.stack([dx * xs / side, dy * ys / side, dx, dy, val / 128.0, np.ones_like(val)])
            best, best_cost = params, cost
            normal = (jac @ jac.T).astype(np.float64)
            grad = (jac @ resid).astype(np.float64)
            damping = max(damping / 3, 1e-6)
        else:  # the step made it worse: back to the best, damp more
            damping *= 10
            if damping > 1e4:
                break
        assert normal is not None and grad is not None
        try:
            step = np.linalg.solve(normal + damping * np.diag(np.diag(normal) + 1e-9), grad)
        except np.linalg.LinAlgError:
            break
        params = best - step / scale
        if np.abs(step[:4]).max() < 0.01:
            break
    return np.array([[best[0], 0, best[2]], [0, best[1], best[3]]], np.float32)


def _refine(big: Prepared, small: Prepared, warp: np.ndarray) -> np.ndarray:
    """The warp refined at half and at work resolution; the search's warp if the fit strays."""
    half = warp.copy()
    half[:, 2] /= 2
    half = _gauss_newton(big.half, small.half, half, 10)
    half[:, 2] *= 2
    out = _gauss_newton(big.gray, small.gray, half, 4)
    # a fit that rescales or shifts far from the search is no alignment
    if np.abs(out[:, :2] - warp[:, :2]).max() > 0.15 or np.abs(out[:, 2] - warp[:, 2]).max() > 12:
        return warp
    return out


def _align(pa: Prepared, pb: Prepared) -> list[tuple[Prepared, Prepared, np.ndarray, float]]:
    """Candidate alignments from the template search: (larger view, smaller view, warp from
    the larger's to the smaller's work coordinates, search score). Both ways round when the
    search cannot tell which view is the larger (a crop matches its original at scale 1 as
    well as the other way)."""
    first = _search(pa, pb)  # b inside a
    second = _search(pb, pa)
    ways: list[tuple[Prepared, Prepared, list[tuple[float, float, float, float]]]] = []
    if first[0][0] >= second[0][0] - 0.01:
        ways.append((pa, pb, first))
    if second[0][0] >= first[0][0] - 0.01:
        ways.append((pb, pa, second))
    out = []
    for big, small, found in ways:
        for coarse, s0, _, _ in found:
            if coarse < -1.0:
                continue
            score, s, x, y = _near(big.half, small.half, s0)
            x, y = 2 * x, 2 * y  # half-resolution offsets at work resolution
            warp = np.array([[1 / s, 0, -x / s], [0, 1 / s, -y / s]], np.float32)
            out.append((big, small, warp, score))
    return out


def _fit_alignment(
    big: Prepared, small: Prepared, warp: np.ndarray, score: float
) -> tuple[np.ndarray, float, np.ndarray, np.ndarray] | None:
    """One candidate alignment refined: (warp, overlap, both views on the comparison grid);
    None when the views do not overlap enough to compare."""
    box = _overlap_box(warp, big.gray.shape, small.gray.shape)
    if box is None:
        return None
    warp = _refine(big, small, warp)  # also at scale 1: a crop of a smooth picture matches there
    box = _overlap_box(warp, big.gray.shape, small.gray.shape) or box
    ra, rb = _grid_views(big, small, warp, box)
    if min(ra.shape[:2]) < 2 * BLOCK:
        return None
    return warp, _overlap(warp, box, big, small), ra, rb


def _overlap_box(
    warp: np.ndarray, big_shape: tuple[int, ...], small_shape: tuple[int, ...]
) -> tuple[int, int, int, int] | None:
    """The rectangle of the big frame whose pixels map inside the small image (x0, y0, x1, y1)."""
    bh, bw = big_shape[:2]
    sh, sw = small_shape[:2]
    inv = cv2.invertAffineTransform(warp)  # small -> big
    corners = np.array([[0, 0], [sw - 1, 0], [0, sh - 1], [sw - 1, sh - 1]], np.float64)
    mapped = corners @ inv[:, :2].T + inv[:, 2]
    xs, ys = np.sort(mapped[:, 0]), np.sort(mapped[:, 1])
    # inner rectangle of the (nearly axis-aligned) mapped quadrilateral, one pixel in
    x0, x1 = max(0, int(np.ceil(xs[1])) + 1), min(bw, int(np.floor(xs[2])))
    y0, y1 = max(0, int(np.ceil(ys[1])) + 1), min(bh, int(np.floor(ys[2])))
    if x1 - x0 < 16 or y1 - y0 < 16:
        return None
    return x0, y0, x1, y1


def _overlap(
    warp: np.ndarray, box: tuple[int, int, int, int], big: Prepared, small: Prepared
) -> float:
    """The smallest share of either image's width or height inside the overlap."""
    x0, y0, x1, y1 = box
    (h, w), (sh, sw) = big.gray.shape, small.gray.shape
    ow, oh = x1 - x0 + 1, y1 - y0 + 1
    sx = float(np.hypot(warp[0, 0], warp[1, 0]))
    sy = float(np.hypot(warp[0, 1], warp[1, 1]))
    return min(ow / w, oh / h, 1.0, ow * sx / sw, oh * sy / sh)


def _reframe(warp: np.ndarray, big: Prepared, small: Prepared) -> float:
    """How far the larger view's corners, aligned, land from the smaller view's corners, as a
    share of the long side: about 0 for a copy framed alike (any pixel size), the cut for a
    crop, and the zoom or pan of a camera between two frames of the same size."""
    (bh, bw), (sh, sw) = big.gray.shape, small.gray.shape
    corners = np.array([[0, 0], [bw - 1, 0], [0, bh - 1], [bw - 1, bh - 1]], np.float64)
    mapped = corners @ warp[:, :2].T.astype(np.float64) + warp[:, 2]
    own = np.array([[0, 0], [sw - 1, 0], [0, sh - 1], [sw - 1, sh - 1]], np.float64)
    return float(np.abs(mapped - own).max() / max(sw, sh))


def _match_lut(src: np.ndarray, ref: np.ndarray) -> np.ndarray:
    """The monotone map of uint8 levels that gives `src` the histogram of `ref`."""
    levels = np.arange(256, dtype=np.float64)
    hs = np.bincount(src.ravel(), minlength=256).astype(np.float64)
    hr = np.bincount(ref.ravel(), minlength=256).astype(np.float64)
    cs = (np.cumsum(hs) - hs / 2) / hs.sum()
    cr = (np.cumsum(hr) - hr / 2) / hr.sum()
    nz = hr > 0
    return np.interp(cs, cr[nz], levels[nz]).astype(np.float32)


def _blocks(diff: np.ndarray) -> np.ndarray:
    """Means over BLOCK x BLOCK tiles (the image sides are multiples of BLOCK here)."""
    h, w = diff.shape
    return cv2.resize(diff, (w // BLOCK, h // BLOCK), interpolation=cv2.INTER_AREA)


def _worst(diff: np.ndarray) -> float:
    """The largest mean over any BLOCK x BLOCK window (a small change that straddles two tiles
    counts whole)."""
    means = cv2.blur(diff, (BLOCK, BLOCK), borderType=cv2.BORDER_REFLECT)
    r = BLOCK // 2
    return float(means[r:-r, r:-r].max()) if min(means.shape) > BLOCK else float(means.max())


def _tone_matched(la: np.ndarray, lb: np.ndarray) -> tuple[np.ndarray, float]:
    """|tone-matched difference| map and its mean, in the direction that compresses tones."""
    da = cv2.absdiff(_match_lut(la, lb)[la], lb.astype(np.float32))
    db = cv2.absdiff(_match_lut(lb, la)[lb], la.astype(np.float32))
    ma, mb = float(cv2.mean(da)[0]), float(cv2.mean(db)[0])
    return (da, ma) if ma <= mb else (db, mb)


def _chroma(
    ycc_a: np.ndarray, ycc_b: np.ndarray, valid: np.ndarray
) -> tuple[float, float, float, float, float]:
    """(correlation, saturation ratio, mean shift, mean residual, worst window) of the Cr/Cb
    planes over the `valid` pixels (clipped ones have lost their colour in a brightened copy).
    The more colourful one predicts the other as gain x its chroma + a shift (a brightened,
    contrast- or white-balance-corrected copy scales or shifts its colours); what that does
    not explain is the residual (a colour grade, a recoloured region)."""
    # chroma averaged over 4 x 4 windows: re-encoding noise (subsampled chroma) cancels out,
    # a colour change of a region or of a tone range stays
    ca = cv2.blur(ycc_a[..., 1:].astype(np.float32) - 128.0, (4, 4))
    cb = cv2.blur(ycc_b[..., 1:].astype(np.float32) - 128.0, (4, 4))
    n = float(valid.sum())
    if n < 0.2 * valid.size:  # (nearly) all clipped: compare everything
        valid = np.ones_like(valid)
        n = float(valid.size)
    w = valid[..., None]
    ma, mb = (ca * w).sum(axis=(0, 1)) / n, (cb * w).sum(axis=(0, 1)) / n
    da, db = (ca - ma) * w, (cb - mb) * w
    va, vb = float((da * da).sum()), float((db * db).sum())
    cov = float((da * db).sum())
    if va < 4.0 * n and vb < 4.0 * n:  # neither varies in colour (std < 2)
        corr, gain = 1.0, 1.0
    elif va == 0 or vb == 0:
        corr, gain = 0.0, 0.0
    else:
        corr = cov / float(np.sqrt(va * vb))
        gain = min(1.0, max(0.0, cov / max(va, vb)))  # the less colourful from the more
    ref, other = (da, db) if va >= vb else (db, da)
    resid = np.abs(other - gain * ref).sum(axis=2)
    cover = cv2.blur(valid, (BLOCK, BLOCK))
    windows = cv2.blur(resid, (BLOCK, BLOCK)) / np.maximum(cover, 1e-6)
    worst = float(windows[cover >= 0.5].max()) if (cover >= 0.5).any() else 0.0
    return corr, gain, float(np.hypot(*(ma - mb))), float(resid.sum() / n), worst


def _detail(gray: np.ndarray) -> float:
    lap = cv2.Laplacian(gray, cv2.CV_32F, ksize=1)
    return float(cv2.meanStdDev(lap)[1][0, 0] ** 2) / (
        float(cv2.meanStdDev(gray)[1][0, 0]) ** 2 + 1e-6
    )


def _blur_fit(
    la: np.ndarray, lb: np.ndarray, worst: float, mean_diff: float, da: float, db: float
) -> tuple[float, float, float]:
    """(sigma, mean diff, worst block) of the best Gaussian blur of the sharper image onto the
    other; (0, the plain difference) when both have about the same detail (da, db) or no blur
    fits."""
    best = (0.0, mean_diff, worst)
    if max(da, db) < BLUR_DETAIL_RATIO * min(da, db):
        return best
    sharp, soft = (la, lb) if da >= db else (lb, la)
    ref = soft.astype(np.float32)
    for sigma in BLUR_SIGMAS:
        blurred = cv2.GaussianBlur(sharp, (0, 0), sigma)
        d = cv2.absdiff(_match_lut(blurred, soft)[blurred], ref)
        m = float(cv2.mean(d)[0])
        if m < best[1]:
            best = (sigma, m, _worst(d))
    return best


def _plain_pattern(originals: tuple[Original, Original]) -> tuple[float, float]:
    """(correlation, worst window) of two plain pictures' faint patterns (step 6); NaN when a
    file cannot be read."""
    (wa, ha), (wb, hb) = originals[0].size, originals[1].size
    w, h = (wa, ha) if wa * ha <= wb * hb else (wb, hb)
    k = min(1.0, PLAIN_SIDE / max(w, h))
    size = (max(2 * FINE_WINDOW, round(w * k)), max(2 * FINE_WINDOW, round(h * k)))
    got = [o.read(size) for o in originals]
    if got[0] is None or got[1] is None:
        return float("nan"), float("nan")
    views = [cv2.GaussianBlur(g.astype(np.float32), (0, 0), FINE_SIGMA) for g in got]
    stds = [float(v.std()) for v in views]
    if max(stds) < PLAIN_MIN_STD:
        return 1.0, 0.0  # one colour each: nothing but the colours to compare
    za, zb = ((v - v.mean()) / max(sd, PLAIN_MIN_STD) for v, sd in zip(views, stds, strict=True))
    means = cv2.blur(np.abs(za - zb) * PLAIN_STRETCH, (FINE_WINDOW, FINE_WINDOW))
    r = FINE_WINDOW // 2
    return float((za * zb).mean()), float(means[r:-r, r:-r].max())


def _flat(pa: Prepared, pb: Prepared, originals: tuple[Original, Original] | None) -> PairMeasures:
    ta, tb = pa.tiny, pb.tiny
    if ta.shape != tb.shape:
        tb = cv2.resize(tb, (ta.shape[1], ta.shape[0]), interpolation=cv2.INTER_AREA)
    raw = float(np.abs(ta - tb).mean())
    ncc, fine = 0.0, float("nan")
    if originals is not None and pa.flat and pb.flat and raw <= FINE_GATE_MEAN:
        ncc, fine = _plain_pattern(originals)  # colours apart: not a copy, no file to read
    return PairMeasures(
        ncc=ncc, overlap=0.0, flat=True, raw_diff=raw, tone_shift=raw, contrast_ratio=0.0,
        mean_diff=raw, worst_block=raw, block_ratio=0.0, chroma_corr=0.0, saturation_ratio=0.0,
        chroma_shift=0.0, chroma_residual=0.0, worst_chroma_block=0.0, detail_ratio=0.0,
        blur_sigma=0.0, blur_diff=raw, blur_worst_block=raw, fine_block=fine,
        reframe=float("nan"),
    )  # fmt: skip


def _framing_only(score: float, overlap: float) -> PairMeasures:
    """Two views too differently framed to be copies: only the alignment is measured."""
    nan = float("nan")
    return PairMeasures(
        ncc=score, overlap=overlap, flat=False, raw_diff=nan, tone_shift=nan,
        contrast_ratio=nan, mean_diff=nan, worst_block=nan, block_ratio=nan, chroma_corr=nan,
        saturation_ratio=nan, chroma_shift=nan, chroma_residual=nan, worst_chroma_block=nan,
        detail_ratio=nan, blur_sigma=nan, blur_diff=nan, blur_worst_block=nan, fine_block=nan,
        reframe=nan,
    )  # fmt: skip


def _grid_views(
    big: Prepared, small: Prepared, warp: np.ndarray, box: tuple[int, int, int, int]
) -> tuple[np.ndarray, np.ndarray]:
    """The overlap of both, the smaller view warped onto the larger, on the comparison grid
    (sides cut to whole blocks)."""
    x0, y0, x1, y1 = box
    h, w = big.gray.shape
    warped = cv2.warpAffine(
        small.rgb, warp, (w, h), flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
        borderMode=cv2.BORDER_REPLICATE,
    )  # fmt: skip
    ra = _fit(big.rgb[y0:y1, x0:x1], GRID)
    rb = cv2.resize(warped[y0:y1, x0:x1], (ra.shape[1], ra.shape[0]), interpolation=cv2.INTER_AREA)
    hh, ww = ra.shape[0] // BLOCK * BLOCK, ra.shape[1] // BLOCK * BLOCK
    return ra[:hh, :ww], rb[:hh, :ww]


def _envelope_diff(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """How far each pixel of one lies outside the range of the other's 3 x 3 neighbourhood,
    both ways round: a shift of up to a pixel (resampling, alignment) costs nothing."""
    k = np.ones((3, 3), np.uint8)
    da = np.maximum(a - cv2.dilate(b, k), cv2.erode(b, k) - a)
    db = np.maximum(b - cv2.dilate(a, k), cv2.erode(a, k) - b)
    return np.maximum(np.maximum(da, db), 0)


def _fine_block(
    big: Prepared, small: Prepared, warp: np.ndarray, ob: Original, os_: Original
) -> float:
    """The closer look (step 5): the worst FINE_WINDOW window of the envelope difference of the
    originals at k x the work grid; NaN when they are too small or unreadable."""
    (bh, bw), (sh, sw) = big.gray.shape, small.gray.shape
    k = int(min(FINE_SCALE, min(ob.size) / min(bh, bw), min(os_.size) / min(sh, sw)))
    if k < FINE_MIN_SCALE:
        return float("nan")
    fb, fs = ob.read((bw * k, bh * k)), os_.read((sw * k, sh * k))
    if fb is None or fs is None:
        return float("nan")
    fb, fs = fb.astype(np.float32), fs.astype(np.float32)
    w = warp.copy()
    w[:, 2] *= k
    w = _gauss_newton(cv2.GaussianBlur(fb, (0, 0), 1.0), cv2.GaussianBlur(fs, (0, 0), 1.0), w, 3)
    box = _overlap_box(w, fb.shape, fs.shape)
    if box is None:
        return float("nan")
    x0, y0, x1, y1 = box
    warped = cv2.warpAffine(
        fs, w, (fb.shape[1], fb.shape[0]), flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
        borderMode=cv2.BORDER_REPLICATE,
    )  # fmt: skip
    va = np.clip(cv2.GaussianBlur(fb[y0:y1, x0:x1], (0, 0), FINE_SIGMA), 0, 255).astype(np.uint8)
    vb = np.clip(cv2.GaussianBlur(warped[y0:y1, x0:x1], (0, 0), FINE_SIGMA), 0, 255)
    vb = vb.astype(np.uint8)
    diff = _envelope_diff(_match_lut(va, vb)[va], vb.astype(np.float32))
    means = cv2.blur(diff, (FINE_WINDOW, FINE_WINDOW), borderType=cv2.BORDER_REFLECT)
    r = FINE_WINDOW // 2
    inner = means[r:-r, r:-r] if min(means.shape) > 2 * FINE_WINDOW else means
    return float(inner.max())


def compare(
    a: np.ndarray | Prepared,
    b: np.ndarray | Prepared,
    originals: tuple[Original, Original] | None = None,
) -> PairMeasures | None:
    """Measure how two images differ; None when no alignment exists at all. With the
    `originals` of a and b, a pair that looks alike at thumbnail size is looked at closer."""
    pa = a if isinstance(a, Prepared) else prepare(a)
    pb = b if isinstance(b, Prepared) else prepare(b)
    if pa.flat or pb.flat:
        return _flat(pa, pb, originals)
    best = None
    for big, small, warp, score in _align(pa, pb):
        got = _fit_alignment(big, small, warp, score)
        if got is None:
            continue
        ga, gb = (cv2.cvtColor(v, cv2.COLOR_RGB2GRAY) for v in got[2:])
        fit = _tone_matched(ga, gb)[1]  # the candidate whose views agree best is the alignment
        if best is None or fit < best[0]:
            best = (fit, big, small, score, got)
    if best is None:
        return None
    _, big, small, score, (warp, overlap, ra, rb) = best
    if overlap < DETAIL_MIN_OVERLAP:
        return _framing_only(score, overlap)
    la = cv2.cvtColor(ra, cv2.COLOR_RGB2GRAY)
    lb = cv2.cvtColor(rb, cv2.COLOR_RGB2GRAY)
    fa, fb = la.astype(np.float32), lb.astype(np.float32)
    sa, sb = float(cv2.meanStdDev(fa)[1][0, 0]), float(cv2.meanStdDev(fb)[1][0, 0])
    ncc = float(cv2.matchTemplate(fa, fb, cv2.TM_CCOEFF_NORMED)[0, 0]) if min(sa, sb) > 0 else 0.0
    diff, mean_diff = _tone_matched(la, lb)
    blocks = _blocks(diff)
    worst = _worst(diff)
    unclipped = (ra.max(axis=2) < 248) & (rb.max(axis=2) < 248) & (la > 8) & (lb > 8)
    corr, sat, shift, chroma_resid, chroma_block = _chroma(
        cv2.cvtColor(ra, cv2.COLOR_RGB2YCrCb),
        cv2.cvtColor(rb, cv2.COLOR_RGB2YCrCb),
        unclipped.astype(np.float32),
    )
    # detail at half the grid: the warp's interpolation softens the warped view a little,
    # which a real blur (or sharpening) outweighs there
    ha = cv2.resize(la, (la.shape[1] // 2, la.shape[0] // 2), interpolation=cv2.INTER_AREA)
    hb = cv2.resize(lb, (lb.shape[1] // 2, lb.shape[0] // 2), interpolation=cv2.INTER_AREA)
    da_, db_ = _detail(ha), _detail(hb)
    sigma, bdiff, bworst = _blur_fit(la, lb, worst, mean_diff, da_, db_)
    fine = float("nan")
    if originals is not None and mean_diff <= FINE_GATE_MEAN and worst <= FINE_GATE_WORST:
        ob, os_ = originals if big is pa else originals[::-1]
        fine = _fine_block(big, small, warp, ob, os_)
    return PairMeasures(
        ncc=ncc,
        overlap=float(overlap),
        flat=False,
        raw_diff=float(np.mean(cv2.mean(cv2.absdiff(ra, rb))[:3])),
        tone_shift=float(cv2.mean(cv2.absdiff(fa, fb))[0]),
        contrast_ratio=min(sa, sb) / max(sa, sb, 1e-6),
        mean_diff=mean_diff,
        worst_block=worst,
        block_ratio=worst / (float(np.median(blocks)) + 0.5),
        chroma_corr=corr,
        saturation_ratio=sat,
        chroma_shift=shift,
        chroma_residual=chroma_resid,
        worst_chroma_block=chroma_block,
        detail_ratio=min(da_, db_) / max(da_, db_, 1e-9),
        blur_sigma=sigma,
        blur_diff=bdiff,
        blur_worst_block=bworst,
        fine_block=fine,
        reframe=_reframe(warp, big, small),
    )
