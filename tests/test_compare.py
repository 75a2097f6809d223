"""The pixel comparison (photo_curate/compare.py) on real photos, frames and wallpapers.

Each pair goes through what a run does to it: the analysis copy (long side 512), the report
thumbnail (200 px JPEG), then compare() with the images themselves as the originals for the
closer look; the relation is sql/relation.sql with the default
thresholds, over a one-row `checks` table, so these are the rules a run applies.
"""

from __future__ import annotations

import io
import random
from pathlib import Path

import cv2
import duckdb
import numpy as np
import pytest
from PIL import Image, ImageEnhance

from photo_curate import sample
from photo_curate.compare import Original, PairMeasures, compare
from photo_curate.config import RulesConfig
from photo_curate.inspect_image import THUMB_SIZE, _fit, flatten, pixel_metrics
from photo_curate.rules import params_for, rule_sql


def _analysis(im: Image.Image) -> np.ndarray:
    arr = np.asarray(flatten(im))
    return _fit(arr, 512) if max(arr.shape[:2]) > 512 else arr


def _thumb(im: Image.Image) -> np.ndarray:
    """The report thumbnail a run makes of this image (as inspect does)."""
    arr = _analysis(im)
    small = _fit(arr, THUMB_SIZE) if max(arr.shape[:2]) > THUMB_SIZE else arr
    ok, jpg = cv2.imencode(
        ".jpg", cv2.cvtColor(small, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, 80]
    )
    assert ok
    return cv2.cvtColor(cv2.imdecode(jpg, cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)


def _jpeg(im: Image.Image, quality: int = 90) -> Image.Image:
    buf = io.BytesIO()
    im.convert("RGB").save(buf, "JPEG", quality=quality)
    return Image.open(io.BytesIO(buf.getvalue()))


def _original(im: Image.Image) -> Original:
    """The image as the file a run would read for the closer look."""

    def read(size: tuple[int, int]) -> np.ndarray:
        gray = cv2.cvtColor(np.asarray(flatten(im)), cv2.COLOR_RGB2GRAY)
        return cv2.resize(gray, size, interpolation=cv2.INTER_AREA)

    return Original(im.size, read)


def _relation(a: Image.Image, b: Image.Image, similarity: float = 0.95) -> tuple[str, PairMeasures]:
    m = compare(_thumb(a), _thumb(b), (_original(a), _original(b)))
    assert m is not None
    con = duckdb.connect()
    cols = m.as_row()
    con.execute(
        "CREATE TABLE checks AS SELECT 'a' AS path_a, 'b' AS path_b, "
        "$sim::DOUBLE AS similarity, false AS same_bytes, "
        + ", ".join(f"${k}::{'BOOLEAN' if k == 'flat' else 'DOUBLE'} AS {k}" for k in cols),
        {"sim": similarity, **cols},
    )
    ma, mb = pixel_metrics(_analysis(a)), pixel_metrics(_analysis(b))
    con.execute(
        "CREATE TABLE images AS SELECT *, NULL::TIMESTAMP AS captured_at FROM (VALUES "
        "('a', $a512, $a256, $a128, $am, $aw, $ah), ('b', $b512, $b256, $b128, $bm, $bw, $bh)) "
        "t(path, sharp_512, sharp_256, sharp_128, mean, width, height)",
        {"a512": ma["sharp_512"], "a256": ma["sharp_256"], "a128": ma["sharp_128"],
         "am": ma["mean"], "b512": mb["sharp_512"], "b256": mb["sharp_256"],
         "b128": mb["sharp_128"], "bm": mb["mean"], "aw": a.width, "ah": a.height,
         "bw": b.width, "bh": b.height},
    )  # fmt: skip
    params = {**RulesConfig().model_dump(), "run_id": "r"}
    rel = con.execute(rule_sql("relation"), params_for("relation", params)).fetchall()[0][4]
    return rel, m


@pytest.fixture(scope="module")
def photos() -> list[Image.Image]:
    out = []
    for p in sample.bundled_photos()[:7]:  # astronaut, chelsea, coffee, rocket, ... (colour, grey)
        im = Image.open(p).convert("RGB")
        im.thumbnail((1024, 1024))
        out.append(im)
    return out


def test_copies_are_the_same_picture(photos: list[Image.Image]) -> None:
    rng = random.Random(3)
    for im in photos:
        w, h = im.size
        resized = im.resize((w * 2 // 5, h * 2 // 5))
        cropped = im.crop((round(w * 0.03), round(h * 0.02), round(w * 0.96), round(h * 0.97)))
        corrected = ImageEnhance.Brightness(im).enhance(rng.uniform(0.93, 1.08))
        for copy in (_jpeg(im, 35), _jpeg(resized, 85), _jpeg(cropped), _jpeg(corrected)):
            rel, m = _relation(_jpeg(im, 92), copy)
            assert rel == "copy", m


def test_edits_are_similar_shots_not_copies(photos: list[Image.Image]) -> None:
    rng = random.Random(4)
    colourful = [im for im in photos if np.asarray(im).std(axis=2).mean() > 8]
    assert len(colourful) >= 4
    for im in colourful:
        orig = _jpeg(im, 92)
        edits = [sample.black_and_white(im), sample.sepia(im), sample.colour_grade(im),
                 sample.retouch(im, rng, 0.2), sample.reframe(im, rng, (0.25, 0.35))]  # fmt: skip
        for edit in edits:
            rel, m = _relation(orig, _jpeg(edit))
            assert rel != "copy", m


def test_a_darkened_or_blurred_copy_is_a_variant_of_its_frame(photos: list[Image.Image]) -> None:
    im = photos[0]
    dark = ImageEnhance.Brightness(im).enhance(0.2)
    assert _relation(_jpeg(im), _jpeg(dark), 0.8)[0] == "variant"
    from PIL import ImageFilter

    blurred = im.filter(ImageFilter.GaussianBlur(8))
    assert _relation(_jpeg(im), _jpeg(blurred), 0.8)[0] == "variant"


def test_stereo_views_are_not_copies() -> None:
    import skimage.data

    folder = Path(skimage.data.__file__).parent
    left, right = (Image.open(folder / n).convert("RGB") for n in sample.STEREO_PAIR)
    rel, m = _relation(_jpeg(left), _jpeg(right))
    assert rel in ("similar", "none"), m
    assert m.worst_block > 20  # the near motorcycle moved: a local difference


@pytest.fixture(scope="module")
def opencv_data() -> Path:
    from bench.photos import opencv_data

    return opencv_data()  # fetched once with apt-get download (cached in bench/.cache)


def _frames(video: Path, indices: list[int]) -> list[Image.Image]:
    cap = cv2.VideoCapture(str(video))
    got, k = {}, 0
    while len(got) < len(indices):
        ok, frame = cap.read()
        assert ok, f"{video} ended before frame {max(indices)}"
        if k in indices:
            got[k] = Image.fromarray(cv2.cvtColor(frame, cv2.COLOR_BGR2RGB))
        k += 1
    return [got[i] for i in indices]


def test_burst_frames_are_not_copies_but_a_frame_and_its_copy_are(opencv_data: Path) -> None:
    for video, indices in (("vtest.avi", [100, 112, 300, 320]), ("Megamind.avi", [40, 56])):
        frames = _frames(opencv_data / video, indices)
        for a, b in zip(frames[::2], frames[1::2], strict=True):
            rel, m = _relation(_jpeg(a, 92), _jpeg(b, 92))
            assert rel in ("similar", "none"), (video, m)
            half = a.resize((a.width // 2, a.height // 2))
            assert _relation(_jpeg(a, 92), _jpeg(half, 80))[0] == "copy", video


def test_stereo_and_before_after_pairs_of_opencv_are_not_copies(opencv_data: Path) -> None:
    pairs = [
        ("rubberwhale1.png", "rubberwhale2.png"),  # alike at thumbnail size: a few px of motion
        ("aloeL.jpg", "aloeR.jpg"),
        ("leuvenA.jpg", "leuvenB.jpg"),
        ("basketball1.png", "basketball2.png"),
        ("ela_original.jpg", "ela_modified.jpg"),
    ]
    for a, b in pairs:
        rel, m = _relation(Image.open(opencv_data / a), Image.open(opencv_data / b))
        assert rel != "copy", (a, m)


def test_the_closer_look_tells_a_small_motion_from_a_copy(opencv_data: Path) -> None:
    a, b = (Image.open(opencv_data / f"rubberwhale{i}.png").convert("RGB") for i in (1, 2))
    seen = compare(_thumb(a), _thumb(b))
    assert seen is not None and seen.worst_block < 10  # the thumbnails alone look like copies
    rel, m = _relation(a, b)
    assert rel == "similar" and m.fine_block > 10, m
    rel, m = _relation(a, _jpeg(a.resize((a.width * 3 // 4, a.height * 3 // 4)), 80))
    assert rel == "copy" and m.fine_block < 4, m


def test_pictures_in_the_alpha_channel_of_white_wallpapers_differ(opencv_data: Path) -> None:
    from bench.photos import _fetch

    mate = _fetch("mate-backgrounds") / "usr/share/backgrounds/mate"
    names = ["Silk.png", "Spring.png", "Waves.png", "MATE-Stripes-Light.png"]
    walls = [Image.open(next(mate.glob(f"*/{n}"))) for n in names]
    assert all(np.asarray(w)[..., :3].min() == 255 for w in walls)  # white RGB, picture in alpha
    for i in range(len(walls)):
        for j in range(i + 1, len(walls)):
            rel, m = _relation(walls[i], walls[j], 1.0)
            assert rel != "copy", (names[i], names[j], m)
    # and one of them with its own copy is
    assert _relation(walls[0], walls[0].resize((800, 600)), 1.0)[0] == "copy"


def test_plain_images_of_another_colour_are_not_copies() -> None:
    grey = Image.new("RGB", (300, 200), (120, 120, 120))
    rel, m = _relation(grey, Image.new("RGB", (300, 200), (150, 110, 100)), 1.0)
    assert m.flat and rel == "none"
    assert _relation(grey, Image.new("RGB", (600, 400), (121, 120, 120)), 1.0)[0] == "copy"


def test_a_plain_picture_is_a_copy_only_where_its_faint_pattern_agrees(
    photos: list[Image.Image],
) -> None:
    """A near-uniform wallpaper (a real photo at 2 % contrast, purple): resized and
    re-encoded it is a copy; re-framed or retouched it has the same colours but a moved
    pattern, a similar shot."""
    rng = random.Random(5)
    faint = ImageEnhance.Contrast(photos[0]).enhance(0.02)
    plain = Image.merge("RGB", [faint.getchannel(0).point(lambda v: v + 20), faint.getchannel(1),
                                faint.getchannel(2).point(lambda v: v + 60)])  # fmt: skip
    rel, m = _relation(plain, _jpeg(plain.resize((plain.width * 7 // 10, plain.height * 7 // 10))))
    assert m.flat and rel == "copy", m
    for edit in (sample.reframe(plain, rng, (0.22, 0.35)), sample.retouch(plain, rng, 0.15)):
        rel, m = _relation(plain, _jpeg(edit))
        assert m.flat and m.raw_diff < 3 and rel == "similar", m
