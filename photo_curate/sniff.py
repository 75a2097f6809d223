"""Tell image files by extension, or by their first bytes when the extension says nothing.

Camera RAW files are images too (a photographer's originals): they are taken in at ingest by
extension and by signature, and inspect reads them with LibRaw (rawpy), never with Pillow;
they must never be mistaken for broken TIFF files, and one LibRaw cannot read is
`unsupported`.
"""

from __future__ import annotations

import os

# Camera RAW formats (LibRaw's list, by extension). Most are TIFF containers; CR3 is ISO BMFF,
# RAF, CRW, X3F and MRW have signatures of their own.
RAW_EXTENSIONS: dict[str, str] = {
    ".dng": "DNG", ".cr2": "CR2", ".cr3": "CR3", ".crw": "CRW", ".nef": "NEF", ".nrw": "NRW",
    ".arw": "ARW", ".srf": "SRF", ".sr2": "SR2", ".raf": "RAF", ".orf": "ORF", ".rw2": "RW2",
    ".rwl": "RWL", ".pef": "PEF", ".srw": "SRW", ".3fr": "3FR", ".fff": "FFF", ".iiq": "IIQ",
    ".erf": "ERF", ".kdc": "KDC", ".dcr": "DCR", ".k25": "K25", ".mrw": "MRW", ".mos": "MOS",
    ".mef": "MEF", ".x3f": "X3F", ".gpr": "GPR", ".raw": "RAW", ".rwz": "RWZ", ".cap": "CAP",
    ".bay": "BAY", ".mdc": "MDC", ".ari": "ARI", ".cs1": "CS1", ".pxn": "PXN", ".qtk": "QTK",
}  # fmt: skip

IMAGE_EXTENSIONS: dict[str, str] = {
    ".jpg": "JPEG",
    ".jpeg": "JPEG",
    ".jpe": "JPEG",
    ".jfif": "JPEG",
    ".png": "PNG",
    ".gif": "GIF",
    ".bmp": "BMP",
    ".dib": "BMP",
    ".tif": "TIFF",
    ".tiff": "TIFF",
    ".webp": "WEBP",
    ".heic": "HEIF",
    ".heif": "HEIF",
    ".hif": "HEIF",
    ".avif": "AVIF",
    ".mpo": "MPO",
    ".jp2": "JPEG2000",
    ".j2k": "JPEG2000",
    ".ppm": "PPM",
    ".pgm": "PPM",
    ".pbm": "PPM",
    ".tga": "TGA",
    ".ico": "ICO",
    ".jxl": "JXL",
    **RAW_EXTENSIONS,
}

RAW_FORMATS = frozenset(RAW_EXTENSIONS.values())
# Files that belong to a photo without being an image: edit and metadata sidecars (XMP, Apple's
# AAE, RawTherapee's pp3, DxO's dop, Capture One's cos, darktable writes IMG.CR2.xmp) and the
# movie of a Live Photo or motion photo. They travel with their photo and are never analysed.
SIDECAR_EXTENSIONS = frozenset({".xmp", ".aae", ".pp3", ".dop", ".cos", ".on1", ".arp"})
MOVIE_EXTENSIONS = frozenset({".mov", ".mp4", ".m4v"})
# formats of their own container, told by their signature (see _raw_from_bytes)
_SIGNED_RAW = frozenset({"CR3", "CRW", "RAF", "X3F", "MRW"})
# rare formats whose container is not known here: taken by their extension alone
_UNCHECKED_RAW = frozenset({"ARI", "BAY", "CAP", "MDC", "PXN", "QTK", "RWZ", "CS1"})
# the rest are TIFF containers: their structure can be checked without decoding them
TIFF_RAW = RAW_FORMATS - _SIGNED_RAW - _UNCHECKED_RAW

_HEIF_BRANDS = {b"heic", b"heix", b"hevc", b"hevx", b"heim", b"heis", b"mif1", b"msf1"}
_TIFF_MAGIC = (b"II*\x00", b"MM\x00*")


def _raw_from_bytes(head: bytes) -> str | None:
    """RAW formats that their first bytes announce (TIFF-based ones only where they differ)."""
    if head[:4] in _TIFF_MAGIC and head[8:11] == b"CR\x02":
        return "CR2"
    if head[:4] in (b"IIRO", b"IIRS", b"MMOR"):
        return "ORF"
    if head[:4] == b"IIU\x00":
        return "RW2"
    if head.startswith(b"FUJIFILMCCD-RAW"):
        return "RAF"
    if head[:2] == b"II" and head[6:14] == b"HEAPCCDR":
        return "CRW"
    if head[4:12] == b"ftypcrx ":
        return "CR3"
    if head.startswith(b"FOVb"):
        return "X3F"
    if head.startswith(b"\x00MRM"):
        return "MRW"
    return None


def format_from_bytes(head: bytes) -> str | None:
    """The image format that the first bytes of a file announce, if any."""
    raw = _raw_from_bytes(head)
    if raw:
        return raw
    if head.startswith(b"\xff\xd8\xff"):
        return "JPEG"
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return "PNG"
    if head[:6] in (b"GIF87a", b"GIF89a"):
        return "GIF"
    if head.startswith(b"BM") and len(head) >= 14:
        return "BMP"
    if head[:4] in _TIFF_MAGIC:
        return "TIFF"
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "WEBP"
    if head[4:8] == b"ftyp":
        brand = head[8:12]
        if brand in (b"avif", b"avis"):
            return "AVIF"
        if brand in _HEIF_BRANDS:
            return "HEIF"
    if head.startswith(b"\x00\x00\x00\x0cjP  \r\n\x87\n") or head.startswith(b"\xff\x4f\xff\x51"):
        return "JPEG2000"
    if head.startswith(b"\xff\x0a") or head.startswith(b"\x00\x00\x00\x0cJXL \r\n\x87\n"):
        return "JXL"
    return None


def raw_format(path: str, head: bytes) -> str | None:
    """The RAW format of a file: by its signature, or by its extension when its bytes are a
    TIFF container (DNG, NEF, ARW, PEF, ... are TIFF files to every other reader). A file
    named like a RAW whose bytes are not that format's container is no RAW (it may be an
    image of another format, or not an image at all)."""
    by_bytes = _raw_from_bytes(head)
    if by_bytes:
        return by_bytes
    ext = RAW_EXTENSIONS.get(os.path.splitext(path)[1].lower())
    if ext in TIFF_RAW and head[:4] in _TIFF_MAGIC:
        return ext
    if ext in _UNCHECKED_RAW and head:
        return ext
    return None


def sniff_format(path: str) -> str | None:
    with open(path, "rb") as fh:
        return format_from_bytes(fh.read(32))
