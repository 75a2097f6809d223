"""Every image format a collection holds is decoded and measured, or reported as unsupported.

The files are made with Pillow (and pillow-heif's HEVC/AV1 encoders) from a real photo of the
sample; each must come out with the right `format`, valid, with metrics close to the photo's
own, and a JPEG analysis copy (what fastdup reads).
"""

from __future__ import annotations

import io
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from photo_curate.home import Home
from photo_curate.inspect_image import inspect_file
from photo_curate.sample import bundled_photos
from photo_curate.sniff import sniff_format

Maker = Callable[[Image.Image], bytes]


@pytest.fixture(scope="module")
def photo() -> Image.Image:
    im = Image.open(sorted(bundled_photos())[0]).convert("RGB")
    im.thumbnail((640, 640))
    return im


def _save(fmt: str, convert: str | None = None, **kw: object) -> Maker:
    def make(im: Image.Image) -> bytes:
        buf = io.BytesIO()
        (im.convert(convert) if convert else im).save(buf, fmt, **kw)
        return buf.getvalue()

    return make


def _heif(fmt: str) -> Maker:
    def make(im: Image.Image) -> bytes:
        import pillow_heif

        buf = io.BytesIO()
        pillow_heif.from_pillow(im).save(buf, format=fmt, quality=90)
        return buf.getvalue()

    return make


def _png16(im: Image.Image) -> bytes:
    gray = np.asarray(im.convert("L"), dtype=np.uint16) * 257
    buf = io.BytesIO()
    Image.fromarray(gray, "I;16").save(buf, "PNG")
    return buf.getvalue()


def _pages(fmt: str) -> Maker:
    """The photo first, then a black page: only the first page/frame is analysed."""

    def make(im: Image.Image) -> bytes:
        black = Image.new("RGB", im.size)
        first = im.quantize(256) if fmt == "GIF" else im
        rest = black.quantize(256) if fmt == "GIF" else black
        buf = io.BytesIO()
        first.save(buf, fmt, save_all=True, append_images=[rest], duration=100)
        return buf.getvalue()

    return make


def _rgba(im: Image.Image) -> bytes:
    rgba = im.convert("RGBA")
    rgba.putalpha(255)
    buf = io.BytesIO()
    rgba.save(buf, "PNG")
    return buf.getvalue()


CASES: list[tuple[str, str, Maker, str, int]] = [
    # (file name, expected format, maker, expected mode, expected frames)
    ("photo.jpg", "JPEG", _save("JPEG", quality=92), "RGB", 1),
    ("cmyk.jpg", "JPEG", _save("JPEG", "CMYK", quality=92), "CMYK", 1),
    ("photo.png", "PNG", _save("PNG"), "RGB", 1),
    ("alpha.png", "PNG", _rgba, "RGBA", 1),
    ("gray16.png", "PNG", _png16, "I;16", 1),
    ("photo.webp", "WEBP", _save("WEBP", quality=92), "RGB", 1),
    ("photo.tif", "TIFF", _save("TIFF", compression="tiff_lzw"), "RGB", 1),
    ("pages.tiff", "TIFF", _pages("TIFF"), "RGB", 2),
    ("photo.bmp", "BMP", _save("BMP"), "RGB", 1),
    ("frames.gif", "GIF", _pages("GIF"), "P", 2),
    ("photo.heic", "HEIF", _heif("HEIF"), "RGB", 1),
    ("photo.avif", "AVIF", _heif("AVIF"), "RGB", 1),
    ("photo.jp2", "JPEG2000", _save("JPEG2000"), "RGB", 1),
]


def write_all_formats(folder: Path, im: Image.Image) -> dict[str, str]:
    """Write the photo in every format into folder; file name -> expected format."""
    folder.mkdir(parents=True, exist_ok=True)
    for name, _fmt, make, *_ in CASES:
        (folder / name).write_bytes(make(im))
    return {name: fmt for name, fmt, *_ in CASES}


@pytest.fixture(scope="module")
def encoded(photo: Image.Image, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The photo in every format, encoded once for the module."""
    folder = tmp_path_factory.mktemp("formats")
    write_all_formats(folder, photo)
    return folder


@pytest.fixture(scope="module")
def reference(photo: Image.Image, tmp_path_factory: pytest.TempPathFactory) -> dict:
    path = tmp_path_factory.mktemp("ref") / "ref.png"
    return inspect_file(str(_write(path, _save("PNG")(photo))), None)


@pytest.mark.parametrize(
    ("name", "fmt", "mode", "frames"), [(c[0], c[1], c[3], c[4]) for c in CASES]
)
def test_each_format_is_decoded_and_measured(
    photo: Image.Image, encoded: Path, reference: dict, tmp_path: Path, name: str, fmt: str,
    mode: str, frames: int,
) -> None:  # fmt: skip
    src = encoded / name
    analysis = tmp_path / "analysis.jpg"
    row = inspect_file(str(src), str(analysis))
    assert row["is_valid"], row["error"]
    assert row["format"] == fmt and sniff_format(str(src)) == fmt
    assert row["mode"] == mode and row["frames"] == frames
    assert (row["width"], row["height"]) == photo.size
    assert sniff_format(str(analysis)) == "JPEG"
    with Image.open(analysis) as an:
        assert max(an.size) == 512
    # the first frame or page, decoded right: brightness and detail match the photo's
    tolerance = 12 if fmt in ("GIF", "JPEG") and mode != "RGB" else 6
    if mode == "I;16":  # gray: compare with the photo's luminance
        tolerance = 8
    assert abs(row["mean"] - reference["mean"]) < tolerance, (row["mean"], reference["mean"])
    assert row["sharpness"] is not None and abs(row["sharpness"] - reference["sharpness"]) < 0.6


def _write(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


def test_unsupported_and_corrupt_formats_say_so(photo: Image.Image, tmp_path: Path) -> None:
    # a JPEG XL codestream: no decoder for it here (the bytes after the signature are not
    # checked; the signature is what tells the format)
    jxl = _write(tmp_path / "photo.jxl", b"\xff\x0a" + bytes(range(256)) * 4)
    row = inspect_file(str(jxl), None)
    assert not row["is_valid"] and row["format"] == "JXL"
    assert row["error"].startswith("unsupported format: JXL")
    png = _save("PNG")(photo)
    broken = _write(tmp_path / "broken.png", png[:8] + b"\0" * 100)
    row = inspect_file(str(broken), None)
    assert row["format"] == "PNG" and row["error"] == "not a readable image: corrupt PNG data"


def test_ingest_tells_formats_without_extensions(encoded: Path, tmp_path: Path) -> None:
    import shutil

    import duckdb

    from tasks.ingest import scan

    src = tmp_path / "src"
    shutil.copytree(encoded, src)
    expected = {name: fmt for name, fmt, *_ in CASES}
    for name in list(expected):  # the same files with no extension: sniffed from their bytes
        if expected[name] != "JPEG2000":
            (src / f"noext-{name.replace('.', '-')}").write_bytes((src / name).read_bytes())
    home = Home(tmp_path / "home").ensure()
    res = scan(src, home, "r")
    hints = dict(
        duckdb.connect()
        .execute(
            "SELECT path, format_hint FROM read_parquet($p) WHERE status = 'image'",
            {"p": str(home.table_file("files", "r"))},
        )
        .fetchall()
    )
    assert res.n_skipped == 0 and res.n_images == len(hints)
    for name, fmt in expected.items():
        assert hints[name] == fmt
        if fmt != "JPEG2000":
            assert hints[f"noext-{name.replace('.', '-')}"] == fmt
