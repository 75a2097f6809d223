"""Camera RAW files are read with LibRaw: a DNG of a real photo is analysed like its JPEG,
a damaged one is invalid, one LibRaw cannot read is unsupported (reviewed, never removed)."""

from __future__ import annotations

import io
from datetime import datetime
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from photo_curate.inspect_image import inspect_file
from photo_curate.sample import bundled_photos, minimal_dng
from tests.raw_files import write_dng, write_dng_with_preview

WHEN = datetime(2021, 5, 6, 7, 8, 9)
# measured on the 11 bundled photos: a DNG's luminance mean is within 1.2 of its JPEG's, its
# sharpness within 0.16 (LibRaw's demosaicing softens the finest detail a little)
MEAN_TOLERANCE = 3.0
SHARPNESS_TOLERANCE = 0.25


@pytest.fixture(scope="module", params=sorted(bundled_photos())[:3], ids=lambda p: p.name)
def photo(request: pytest.FixtureRequest) -> np.ndarray:
    return np.asarray(Image.open(request.param).convert("RGB"))


def _jpeg_row(rgb: np.ndarray, tmp_path: Path) -> dict:
    Image.fromarray(rgb).save(tmp_path / "photo.jpg", quality=95)
    return inspect_file(str(tmp_path / "photo.jpg"), None)


def test_a_dng_of_a_photo_is_analysed_like_its_jpeg(photo: np.ndarray, tmp_path: Path) -> None:
    path = tmp_path / "IMG_0001.DNG"
    write_dng(photo, path, WHEN, make="Testcam", model="T-1")
    analysis = tmp_path / "analysis.jpg"
    row = inspect_file(str(path), str(analysis))
    assert row["is_valid"] and not row["unsupported"] and row["error"] is None
    assert row["format"] == "DNG" and row["mode"] == "RGB" and row["jpeg_quality"] is None
    h, w = photo.shape[0] // 2 * 2, photo.shape[1] // 2 * 2  # the mosaic is of even size
    assert (row["width"], row["height"]) == (w, h)
    assert row["captured_at"] == WHEN
    assert (row["camera_make"], row["camera_model"]) == ("Testcam", "T-1")
    ref = _jpeg_row(photo, tmp_path)
    assert abs(row["mean"] - ref["mean"]) < MEAN_TOLERANCE, (row["mean"], ref["mean"])
    assert abs(row["sharpness"] - ref["sharpness"]) < SHARPNESS_TOLERANCE
    assert row["analysis_file"] == str(analysis)
    with Image.open(analysis) as im:
        assert im.format == "JPEG" and max(im.size) == min(512, max(w, h))


def test_a_large_dng_gives_a_512_px_analysis_copy(tmp_path: Path) -> None:
    photo = Image.open(sorted(bundled_photos())[0]).convert("RGB")
    big = np.asarray(photo.resize((2400, round(2400 * photo.height / photo.width))))
    write_dng(big, tmp_path / "big.dng")
    row = inspect_file(str(tmp_path / "big.dng"), str(tmp_path / "a.jpg"))
    assert row["is_valid"] and (row["width"], row["height"]) == (2400, big.shape[0] // 2 * 2)
    with Image.open(tmp_path / "a.jpg") as im:
        assert max(im.size) == 512
    ref = _jpeg_row(big, tmp_path)
    assert abs(row["mean"] - ref["mean"]) < MEAN_TOLERANCE


def test_the_embedded_preview_is_used_when_it_covers_the_analysis_size(
    photo: np.ndarray, tmp_path: Path
) -> None:
    # a preview darker than the sensor data: the metrics tell which of the two was analysed
    big = np.asarray(Image.fromarray(photo).resize((photo.shape[1] * 2, photo.shape[0] * 2)))
    dark = (big * 0.5).astype(np.uint8)
    ref, ref_dark = _jpeg_row(big, tmp_path), _jpeg_row(dark, tmp_path)
    write_dng_with_preview(big, tmp_path / "p.dng", preview=1024, preview_rgb=dark)
    row = inspect_file(str(tmp_path / "p.dng"), str(tmp_path / "a.jpg"))
    assert row["is_valid"] and row["camera_make"] == "photo-curate"
    assert (row["width"], row["height"]) == (big.shape[1], big.shape[0])  # the sensor's size
    assert abs(row["mean"] - ref_dark["mean"]) < 1.0, (row["mean"], ref_dark["mean"])
    with Image.open(tmp_path / "a.jpg") as im:
        assert max(im.size) == 512
    # a preview under 512 px: LibRaw renders the sensor data
    write_dng_with_preview(big, tmp_path / "s.dng", preview=256, preview_rgb=dark)
    row = inspect_file(str(tmp_path / "s.dng"), None)
    assert abs(row["mean"] - ref["mean"]) < MEAN_TOLERANCE, (row["mean"], ref["mean"])


def test_a_truncated_dng_is_invalid(photo: np.ndarray, tmp_path: Path) -> None:
    write_dng(photo, tmp_path / "whole.dng", WHEN)
    data = (tmp_path / "whole.dng").read_bytes()
    (tmp_path / "cut.dng").write_bytes(data[: len(data) // 2])
    row = inspect_file(str(tmp_path / "cut.dng"), str(tmp_path / "a.jpg"))
    assert not row["is_valid"] and not row["unsupported"]
    assert row["format"] == "DNG" and row["error"].startswith("truncated: image data ends")
    assert row["analysis_file"] is None and not (tmp_path / "a.jpg").exists()


def test_a_dng_with_junk_sensor_data_is_read(photo: np.ndarray, tmp_path: Path) -> None:
    # uncompressed sensor data has no structure to check: junk there is a (noisy) picture
    write_dng(photo, tmp_path / "whole.dng")
    data = bytearray((tmp_path / "whole.dng").read_bytes())
    n = len(data)
    data[n // 4 : n - 16] = np.random.default_rng(0).bytes(n - 16 - n // 4)
    (tmp_path / "junk.dng").write_bytes(bytes(data))
    row = inspect_file(str(tmp_path / "junk.dng"), None)
    assert row["is_valid"] and row["format"] == "DNG"


@pytest.mark.parametrize("name", ["photo.NEF", "photo.cr2", "photo.arw"])
def test_a_sound_tiff_named_like_a_raw_is_unsupported(tmp_path: Path, name: str) -> None:
    # an RGB TIFF: a RAW container to the extension, nothing LibRaw can read
    buf = io.BytesIO()
    Image.open(sorted(bundled_photos())[0]).convert("RGB").save(buf, "TIFF")
    (tmp_path / name).write_bytes(buf.getvalue())
    row = inspect_file(str(tmp_path / name), None)
    fmt = name.rsplit(".", 1)[1].upper()
    assert not row["is_valid"] and row["unsupported"] and row["format"] == fmt
    assert row["error"] == (
        f"unsupported format: {fmt} camera RAW (LibRaw cannot read it: "
        "Unsupported file format or not RAW file; not analysed)"
    )


def test_a_cr3_libraw_cannot_read_is_unsupported(tmp_path: Path) -> None:
    # the CR3 signature (ISO BMFF, brand crx) over a body that is no CR3
    data = b"\x00\x00\x00\x18ftypcrx \x00\x00\x00\x01crx isom" + bytes(range(256)) * 16
    (tmp_path / "IMG_0002.CR3").write_bytes(data)
    row = inspect_file(str(tmp_path / "IMG_0002.CR3"), None)
    assert row["unsupported"] and not row["is_valid"] and row["format"] == "CR3"
    assert row["error"].startswith("unsupported format: CR3 camera RAW (LibRaw cannot read it")


def test_the_sample_dng_is_read(tmp_path: Path) -> None:
    im = Image.open(sorted(bundled_photos())[0])
    (tmp_path / "IMG_0001.DNG").write_bytes(minimal_dng(im, WHEN))
    row = inspect_file(str(tmp_path / "IMG_0001.DNG"), None)
    assert row["is_valid"] and row["format"] == "DNG" and row["width"] == 512
    assert row["captured_at"] == WHEN and row["camera_make"] == "photo-curate"
