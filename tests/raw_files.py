"""Camera RAW test files made from real photos: the photo's Bayer mosaic written as a DNG.

pidng writes the DNG (RGGB colour filter, 16-bit samples, white level 4095), which LibRaw
(rawpy) reads back as a camera's RAW; the capture time and camera go into its TIFF tags.
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import numpy as np
from pidng.core import RAW2DNG, DNGTags, Tag
from pidng.defs import CFAPattern, DNGVersion, PhotometricInterpretation

WHITE = 4095


def bayer(rgb: np.ndarray) -> np.ndarray:
    """The RGGB mosaic of an RGB photo (even width and height), as 12-bit linear samples."""
    h, w = rgb.shape[0] // 2 * 2, rgb.shape[1] // 2 * 2
    linear = (np.asarray(rgb[:h, :w], np.float64) / 255.0) ** 2.2 * WHITE  # undo the gamma
    cfa = np.empty((h, w), np.uint16)
    cfa[0::2, 0::2] = linear[0::2, 0::2, 0]
    cfa[0::2, 1::2] = linear[0::2, 1::2, 1]
    cfa[1::2, 0::2] = linear[1::2, 0::2, 1]
    cfa[1::2, 1::2] = linear[1::2, 1::2, 2]
    return cfa


def write_dng(
    rgb: np.ndarray,
    path: Path,
    captured_at: datetime | None = None,
    make: str = "photo-curate",
    model: str = "Test RAW",
) -> None:
    """Write `rgb` (H x W x 3 uint8) as the DNG a camera would have recorded."""
    cfa = bayer(rgb)
    t = DNGTags()
    t.set(Tag.ImageWidth, cfa.shape[1])
    t.set(Tag.ImageLength, cfa.shape[0])
    t.set(Tag.TileWidth, cfa.shape[1])
    t.set(Tag.TileLength, cfa.shape[0])
    t.set(Tag.Orientation, 1)
    t.set(Tag.PhotometricInterpretation, PhotometricInterpretation.Color_Filter_Array)
    t.set(Tag.SamplesPerPixel, 1)
    t.set(Tag.BitsPerSample, 16)
    t.set(Tag.CFARepeatPatternDim, [2, 2])
    t.set(Tag.CFAPattern, CFAPattern.RGGB)
    t.set(Tag.BlackLevel, 0)
    t.set(Tag.WhiteLevel, WHITE)
    t.set(
        Tag.ColorMatrix1, [[1, 1], [0, 1], [0, 1], [0, 1], [1, 1], [0, 1], [0, 1], [0, 1], [1, 1]]
    )
    t.set(Tag.CalibrationIlluminant1, 21)  # D65
    t.set(Tag.AsShotNeutral, [[1, 1], [1, 1], [1, 1]])
    t.set(Tag.BaselineExposure, [[0, 1]])
    t.set(Tag.Make, make)
    t.set(Tag.Model, model)
    t.set(Tag.UniqueCameraModel, f"{make} {model}")
    t.set(Tag.DNGVersion, DNGVersion.V1_4)
    t.set(Tag.DNGBackwardVersion, DNGVersion.V1_2)
    if captured_at is not None:
        stamp = captured_at.strftime("%Y:%m:%d %H:%M:%S")
        t.set(Tag.DateTime, stamp)
        t.set(Tag.DateTimeOriginal, stamp)
    writer = RAW2DNG()
    writer.options(t, path="", compress=False)
    path.write_bytes(bytes(writer.convert(cfa)))
