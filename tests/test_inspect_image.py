"""Decode check and metrics on real image bytes (no mocks: Pillow decodes every file)."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageEnhance, ImageFilter

from photo_curate.inspect_image import (
    InspectOptions,
    inspect_file,
    jpeg_is_truncated,
    jpeg_quality,
    pixel_metrics,
)
from photo_curate.sample import bundled_photos


@pytest.fixture(scope="module")
def photo() -> Image.Image:
    return Image.open(bundled_photos()[0]).convert("RGB")


def _jpeg(im: Image.Image, quality: int = 90, **kw: object) -> bytes:
    buf = io.BytesIO()
    im.save(buf, "JPEG", quality=quality, **kw)
    return buf.getvalue()


def test_valid_photo_has_metrics_and_analysis_copy(photo: Image.Image, tmp_path: Path) -> None:
    src = tmp_path / "a.jpg"
    src.write_bytes(_jpeg(photo))
    analysis = tmp_path / "analysis.jpg"
    row = inspect_file(str(src), str(analysis))
    assert row["is_valid"] and row["error"] is None
    assert (row["width"], row["height"]) == photo.size
    assert row["format"] == "JPEG" and row["jpeg_quality"] == 90
    assert len(row["sha256"]) == 64
    assert 0 < row["mean"] < 255 and row["p05"] <= row["p50"] <= row["p95"]
    assert max(Image.open(analysis).size) <= 512


@pytest.mark.parametrize("fraction", [0.2, 0.6, 0.95])
def test_truncated_jpeg_is_invalid(photo: Image.Image, tmp_path: Path, fraction: float) -> None:
    data = _jpeg(photo)
    src = tmp_path / "cut.jpg"
    src.write_bytes(data[: int(len(data) * fraction)])
    row = inspect_file(str(src), None)
    assert not row["is_valid"]
    assert row["error"].startswith("truncated")


def test_jpeg_missing_only_its_end_marker_is_truncated(photo: Image.Image) -> None:
    data = _jpeg(photo)
    assert not jpeg_is_truncated(data)
    assert jpeg_is_truncated(data[:-2])


@pytest.mark.parametrize(
    ("content", "reason"),
    [
        (b"", "empty file"),
        (b"\x00" * 2048, "not a readable image"),
        (b"%PDF-1.4\n" + b"x" * 500, "not a readable image"),
    ],
)
def test_broken_files_get_a_reason(tmp_path: Path, content: bytes, reason: str) -> None:
    src = tmp_path / "broken.jpg"
    src.write_bytes(content)
    row = inspect_file(str(src), None)
    assert not row["is_valid"]
    assert row["error"].startswith(reason)


def test_tiny_image_is_invalid(tmp_path: Path) -> None:
    src = tmp_path / "tiny.png"
    Image.new("RGB", (8, 8), "red").save(src)
    row = inspect_file(str(src), None)
    assert not row["is_valid"] and row["error"].startswith("too small")


def test_decompression_bomb_is_capped(tmp_path: Path) -> None:
    src = tmp_path / "huge.png"
    Image.new("L", (4000, 4000)).save(src)
    row = inspect_file(str(src), None, InspectOptions(max_pixels=1_000_000))
    assert not row["is_valid"] and row["error"].startswith("too large")


def test_exif_orientation_is_applied(photo: Image.Image, tmp_path: Path) -> None:
    wide = photo.resize((300, 200))
    exif = Image.Exif()
    exif[0x0112] = 6  # stored rotated: displays 200 wide, 300 high
    src = tmp_path / "rotated.jpg"
    src.write_bytes(_jpeg(wide, exif=exif.tobytes()))
    analysis = tmp_path / "an.jpg"
    row = inspect_file(str(src), str(analysis))
    assert row["orientation"] == 6
    assert (row["width"], row["height"]) == (200, 300)
    assert Image.open(analysis).size == (200, 300)


def test_capture_time_to_the_sub_second(photo: Image.Image, tmp_path: Path) -> None:
    from datetime import datetime

    exif = Image.Exif()
    exif[0x8769] = {0x9003: "2024:06:01 09:30:00", 0x9291: "25"}  # the Exif IFD
    src = tmp_path / "burst.jpg"
    src.write_bytes(_jpeg(photo.resize((300, 200)), exif=exif.tobytes()))
    assert inspect_file(str(src), None)["captured_at"] == datetime(2024, 6, 1, 9, 30, 0, 250000)


def test_missing_file_is_reported_not_raised(tmp_path: Path) -> None:
    row = inspect_file(str(tmp_path / "gone.jpg"), None)
    assert not row["is_valid"] and row["error"].startswith("vanished")


def test_jpeg_quality_estimate(photo: Image.Image) -> None:
    for q in (30, 60, 92):
        assert abs(jpeg_quality(Image.open(io.BytesIO(_jpeg(photo, q))).quantization) - q) <= 2


def test_metrics_see_darkening_blur_and_overexposure(photo: Image.Image) -> None:
    def m(im: Image.Image) -> dict:
        return pixel_metrics(np.asarray(im))

    base = m(photo)
    dark = m(ImageEnhance.Brightness(photo).enhance(0.2))
    over = m(ImageEnhance.Brightness(photo).enhance(3.0))
    blurred = m(photo.filter(ImageFilter.GaussianBlur(4)))
    assert dark["p95"] < base["p95"] / 3
    assert over["clipped_bright"] > base["clipped_bright"] + 0.3
    assert blurred["sharpness"] < base["sharpness"] - 0.8
    # contrast-normalised: darkening alone barely changes sharpness
    assert abs(dark["sharpness"] - base["sharpness"]) < 0.3


def test_flat_image_has_no_sharpness() -> None:
    m = pixel_metrics(np.full((64, 64, 3), 128, np.uint8))
    assert m["sharpness"] is None and m["stdv"] == 0


@pytest.mark.parametrize("orient", range(2, 9))
def test_orientation_transposes_match_pillow(orient: int) -> None:
    from PIL import ImageOps

    from photo_curate.inspect_image import _transpose

    im = Image.fromarray(np.arange(4 * 6 * 3, dtype=np.uint8).reshape(4, 6, 3))
    exif = Image.Exif()
    exif[0x0112] = orient
    im.info["exif"] = exif.tobytes()
    expected = np.asarray(ImageOps.exif_transpose(im))
    assert np.array_equal(_transpose(np.asarray(im), orient), expected)


def test_a_fifo_in_place_of_a_photo_does_not_block(tmp_path: Path) -> None:
    fifo = tmp_path / "was a photo.jpg"
    import os

    os.mkfifo(fifo)
    row = inspect_file(str(fifo), None)
    assert not row["is_valid"] and "not a regular file" in row["error"]
