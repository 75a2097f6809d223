"""Camera RAW test files made from real photos: a DNG of a photo's Bayer mosaic, with pidng."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import numpy as np

from photo_curate.sample import XYZ_TO_SRGB, bayer_mosaic, dng_bytes


def write_dng(
    rgb: np.ndarray,
    path: Path,
    captured_at: datetime | None = None,
    make: str = "photo-curate",
    model: str = "test camera",
) -> None:
    """Write an sRGB photo (uint8 HxWx3) as a DNG: its RGGB mosaic in linear light (12 bits in
    16, WhiteLevel 4095), one IFD, uncompressed (pidng's lossless JPEG does not build on this
    Python), with Make, Model and DateTime/DateTimeOriginal (pidng writes them into IFD0)."""
    from pidng.core import RAW2DNG, DNGTags, Tag
    from pidng.defs import (
        CalibrationIlluminant,
        CFAPattern,
        DNGVersion,
        Orientation,
        PhotometricInterpretation,
    )

    cfa = bayer_mosaic(rgb)
    h, w = cfa.shape
    t = DNGTags()
    t.set(Tag.ImageWidth, w)
    t.set(Tag.ImageLength, h)
    t.set(Tag.TileWidth, w)
    t.set(Tag.TileLength, h)
    t.set(Tag.Orientation, Orientation.Horizontal)
    t.set(Tag.PhotometricInterpretation, PhotometricInterpretation.Color_Filter_Array)
    t.set(Tag.SamplesPerPixel, 1)
    t.set(Tag.BitsPerSample, 16)
    t.set(Tag.CFARepeatPatternDim, [2, 2])
    t.set(Tag.CFAPattern, CFAPattern.RGGB)
    t.set(Tag.BlackLevel, 0)
    t.set(Tag.WhiteLevel, 4095)
    # the mosaic is of sRGB primaries: XYZ -> linear sRGB is its colour matrix
    t.set(Tag.ColorMatrix1, [[round(v * 10000), 10000] for v in XYZ_TO_SRGB])
    t.set(Tag.CalibrationIlluminant1, CalibrationIlluminant.D65)
    t.set(Tag.AsShotNeutral, [[1, 1], [1, 1], [1, 1]])
    t.set(Tag.Make, make)
    t.set(Tag.Model, model)
    t.set(Tag.UniqueCameraModel, f"{make} {model}")
    if captured_at is not None:
        stamp = captured_at.strftime("%Y:%m:%d %H:%M:%S")
        t.set(Tag.DateTime, stamp)
        t.set(Tag.DateTimeOriginal, stamp)
    t.set(Tag.DNGVersion, DNGVersion.V1_4)
    t.set(Tag.DNGBackwardVersion, DNGVersion.V1_2)
    writer = RAW2DNG()
    writer.options(t, path="")
    # pidng appends ".dng" to the name it is given
    writer.convert(cfa, filename=str(Path(path).with_suffix("")))
    written = Path(path).with_suffix(".dng")
    if written != Path(path):
        written.replace(path)


def write_dng_with_preview(
    rgb: np.ndarray, path: Path, preview: int, preview_rgb: np.ndarray | None = None
) -> None:
    """A DNG as cameras write them: an 8-bit RGB preview of `preview` px (long side) in IFD0
    (of `preview_rgb` when given, else of the photo), the mosaic in its SubIFD (tifffile;
    pidng writes no preview)."""
    Path(path).write_bytes(dng_bytes(rgb, preview=preview, preview_rgb=preview_rgb))
