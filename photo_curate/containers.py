"""Is an undecodable file broken, or just a format no decoder here reads?

A DNG, NEF or CR2 is a TIFF container whose image data (a Bayer mosaic, lossless JPEG) Pillow
cannot decode; so is a TIFF with an unusual compression. Neither is damaged. What shows damage
is the structure: a TIFF whose directory or image data lies past the end of the file was cut
short. tifffile (a scikit-image dependency) parses the structure without decoding anything.
"""

from __future__ import annotations

import io
import struct
from dataclasses import dataclass

MAX_PAGES = 64  # directories checked (a RAW has a few; a multi-page scan may have hundreds)


@dataclass(frozen=True)
class TiffStructure:
    """What the container says: `damage` is None when every directory and strip is inside."""

    parsed: bool  # tifffile read the directories
    damage: str | None  # why it is broken, if it is
    detail: str  # compression and photometric of the first image, for the reason


def _first_ifd_offset(data: bytes) -> int | None:
    if data[:2] == b"II":
        order = "<"
    elif data[:2] == b"MM":
        order = ">"
    else:
        return None
    if len(data) < 8:
        return None
    magic = struct.unpack(order + "H", data[2:4])[0]
    if magic == 43:  # BigTIFF
        return struct.unpack(order + "Q", data[8:16])[0] if len(data) >= 16 else None
    return struct.unpack(order + "I", data[4:8])[0]


def _pages(tf: object) -> list[object]:
    """The main directories and their sub-directories (a DNG keeps its RAW data in a SubIFD)."""
    out = []
    for page in list(tf.pages)[:MAX_PAGES]:  # type: ignore[attr-defined]
        out.append(page)
        sub = getattr(page, "pages", None)
        if sub is not None:
            out.extend(list(sub)[:MAX_PAGES])
    return out


def check_tiff(data: bytes) -> TiffStructure:
    """Parse a TIFF-based file's structure and check that its data is inside the file."""
    first = _first_ifd_offset(data)
    if first is None:
        return TiffStructure(False, "not a TIFF container (bad header)", "")
    if first >= len(data) or first < 8:
        return TiffStructure(
            False, f"truncated: its first directory (at byte {first}) is past the end", ""
        )
    import tifffile

    try:
        with tifffile.TiffFile(io.BytesIO(data)) as tf:
            pages = _pages(tf)
            if not pages:
                return TiffStructure(False, "corrupt: no image directory", "")
            size = len(data)
            for page in pages:
                offsets = getattr(page, "dataoffsets", ()) or ()
                counts = getattr(page, "databytecounts", ()) or ()
                for off, n in zip(offsets, counts, strict=False):
                    if off + n > size:
                        return TiffStructure(
                            True,
                            f"truncated: image data ends at byte {off + n}, the file at {size}",
                            "",
                        )
            main = pages[0]
            detail = (
                f"compression {_name(getattr(main, 'compression', None))}, "
                f"photometric {_name(getattr(main, 'photometric', None))}"
            )
            return TiffStructure(True, None, detail)
    except Exception as exc:  # tifffile raises many kinds on a bad structure
        return TiffStructure(False, f"corrupt: {str(exc).splitlines()[0][:120]}", "")


def _name(value: object) -> str:
    name = getattr(value, "name", None)
    return f"{name} ({int(value)})" if name is not None else str(value)  # type: ignore[call-overload]
