"""Unpack a zip or tar archive into a folder inside HOME, safely.

Archives are untrusted input. Members with absolute paths or `..` (zip-slip), symlinks,
hardlinks, devices, FIFOs and encrypted members are skipped and recorded with the reason;
only regular files and folders are written, each with O_EXCL|O_NOFOLLOW into a fresh folder
that nothing else writes to. Tar members also pass `tarfile.data_filter` as a second check.
An archive bomb (too many members, too many bytes, or a compression ratio past the limit) is
refused as a whole: the half-unpacked folder is removed and the run stops with one line.

The folder is unpacked under a temporary name and renamed when complete; a sidecar JSONL with
one record per member is the "complete" marker, so an identical archive (same content hash)
is not unpacked again while its folder is unchanged.
"""

from __future__ import annotations

import bz2
import gzip
import json
import lzma
import os
import shutil
import stat
import tarfile
import time
import zipfile
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from photo_curate.errors import UserError
from photo_curate.safe_paths import UnsafePath, safe_relpath

CHUNK = 1024 * 1024
RATIO_MIN_BYTES = 1024 * 1024  # tiny members compress absurdly well (zeros, text): not a bomb
_TAR_MAGIC = {b"\x1f\x8b": "gz", b"BZh": "bz2", b"\xfd7zXZ\x00": "xz"}
_OPENERS = {"gz": gzip.open, "bz2": bz2.open, "xz": lzma.open}
ARCHIVE_SUFFIXES = (".tar.gz", ".tar.bz2", ".tar.xz", ".tgz", ".tbz2", ".txz", ".tar", ".zip")


@dataclass(frozen=True)
class Limits:
    max_bytes: int
    max_members: int
    max_ratio: float


@dataclass(frozen=True)
class Unpacked:
    folder: Path
    members_file: Path  # one JSON record per member: what was written or skipped, and why
    n_files: int
    n_skipped: int
    reused: bool


class ArchiveBomb(UserError):
    """An archive past the size, member or ratio limits: refused as a whole."""


def detect(path: Path) -> str | None:
    """The archive format by content ("zip", "tar", "tar.gz", "tar.bz2", "tar.xz"), or None."""
    try:
        with open(path, "rb") as fh:
            head = fh.read(512)
        if zipfile.is_zipfile(path):
            return "zip"
        for magic, comp in _TAR_MAGIC.items():
            if head.startswith(magic):
                with _OPENERS[comp](path, "rb") as inner:  # type: ignore[operator]
                    return f"tar.{comp}" if _is_tar_header(inner.read(512)) else None
        return "tar" if _is_tar_header(head) else None
    except (OSError, EOFError, lzma.LZMAError, zipfile.BadZipFile):
        return None


def _is_tar_header(block: bytes) -> bool:
    if len(block) < 512:
        return False
    if block[257:262] == b"ustar":
        return True
    try:  # a pre-POSIX tar: no magic, only the header checksum tells
        tarfile.TarInfo.frombuf(block, "utf-8", "surrogateescape")
        return True
    except tarfile.HeaderError:
        return False


def archive_stem(name: str) -> str:
    low = name.lower()
    for suffix in ARCHIVE_SUFFIXES:
        if low.endswith(suffix) and len(name) > len(suffix):
            return name[: -len(suffix)]
    return name


def unpack(archive: Path, fmt: str, folder: Path, limits: Limits) -> Unpacked:
    """Unpack `archive` into `folder` (a path that only this function writes), or reuse it."""
    marker = folder.with_name(f".{folder.name}.members.jsonl")
    if folder.is_dir() and marker.is_file() and _unchanged(folder, marker):
        n_files, n_skipped = _counts(marker)
        return Unpacked(folder, marker, n_files, n_skipped, reused=True)
    folder.parent.mkdir(parents=True, exist_ok=True)
    for stale in folder.parent.glob(f".{folder.name}.*-*"):  # left by a killed run
        if stale.is_dir():
            shutil.rmtree(stale, ignore_errors=True)
        else:
            stale.unlink(missing_ok=True)
    tmp = folder.with_name(f".{folder.name}.tmp-{os.getpid()}")
    tmp_marker = tmp.with_name(tmp.name + ".members.jsonl")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    try:
        with open(tmp_marker, "w", encoding="utf-8") as log:
            writer = _Writer(tmp, log, archive.name, limits, os.path.getsize(archive))
            if fmt == "zip":
                _unpack_zip(archive, writer)
            else:
                _unpack_tar(archive, writer)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        tmp_marker.unlink(missing_ok=True)
        raise
    marker.unlink(missing_ok=True)  # the old folder is incomplete or changed from here on
    if folder.exists():
        old = folder.with_name(f".{folder.name}.old-{os.getpid()}")
        os.replace(folder, old)
        shutil.rmtree(old, ignore_errors=True)
    os.replace(tmp, folder)
    os.replace(tmp_marker, marker)
    return Unpacked(folder, marker, writer.n_files, writer.n_skipped, reused=False)


def _records(marker: Path) -> Iterator[dict[str, Any]]:
    with open(marker, encoding="utf-8") as fh:
        for line in fh:
            yield json.loads(line)


def _unchanged(folder: Path, marker: Path) -> bool:
    """Every file written then is still there with its size (e.g. not quarantined since)."""
    try:
        for rec in _records(marker):
            if rec["status"] == "extracted" and rec["member_type"] == "file":
                st = os.lstat(folder / rec["path"])
                if not stat.S_ISREG(st.st_mode) or st.st_size != rec["size_bytes"]:
                    return False
    except (OSError, ValueError, KeyError):
        return False
    return True


def _counts(marker: Path) -> tuple[int, int]:
    n_files = n_skipped = 0
    for rec in _records(marker):
        if rec["status"] == "skipped":
            n_skipped += 1
        elif rec["member_type"] == "file":
            n_files += 1
    return n_files, n_skipped


def _printable(name: str) -> str:
    """A member name as text that JSON, Parquet and a terminal all take."""
    return name.encode("utf-8", "backslashreplace").decode("utf-8")


class _Writer:
    """Writes members into the fresh folder, enforcing the limits as bytes arrive."""

    def __init__(self, root: Path, log: IO[str], archive: str, limits: Limits, packed: int):
        self.root, self.log, self.archive, self.limits = root, log, archive, limits
        self.packed = max(packed, 1)
        self.members = self.total = self.n_files = self.n_skipped = 0

    def record(self, member: str, path: str | None, kind: str, status: str, size: int | None,
               reason: str | None = None) -> None:  # fmt: skip
        rec = {
            "archive": self.archive,
            "member": _printable(member),
            "path": _printable(path) if path else None,
            "member_type": kind,
            "status": status,
            "size_bytes": size,
            "reason": reason,
        }
        self.log.write(json.dumps(rec, ensure_ascii=False) + "\n")
        if status == "skipped":
            self.n_skipped += 1
        elif kind == "file":
            self.n_files += 1

    def count_member(self) -> None:
        self.members += 1
        if self.members > self.limits.max_members:
            raise ArchiveBomb(
                f"archive {self.archive}: more than {self.limits.max_members} members "
                "(limit sources.max_members): refused as a possible archive bomb"
            )

    def check_total(self, more: int, member: str) -> None:
        total = self.total + more
        if total > self.limits.max_bytes:
            raise ArchiveBomb(
                f"archive {self.archive}: expands to more than "
                f"{self.limits.max_bytes // 1024**2} MiB at member {member!r} "
                "(limit sources.max_unpacked_mib): refused as a possible archive bomb"
            )
        if total > RATIO_MIN_BYTES and total / self.packed > self.limits.max_ratio:
            raise ArchiveBomb(
                f"archive {self.archive}: expands {total / self.packed:.0f}x its size at "
                f"member {member!r} (limit sources.max_ratio = {self.limits.max_ratio:g}): "
                "refused as a possible archive bomb"
            )

    def safe(self, name: str, kind: str, size: int | None) -> str | None:
        """The member's relative path, or None after recording why it is skipped."""
        try:
            return safe_relpath(name)
        except UnsafePath as exc:
            self.record(name, None, kind, "skipped", size, f"unsafe name: {exc}")
            return None

    def mkdir(self, name: str, rel: str) -> None:
        try:
            (self.root / rel).mkdir(parents=True, exist_ok=True)
            self.record(name, rel, "dir", "extracted", None)
        except OSError as exc:
            self.record(name, rel, "dir", "skipped", None, f"cannot create: {exc.strerror}")

    def write(self, name: str, rel: str, stream: IO[bytes], size: int, mtime: float | None) -> None:
        """Stream one regular file in; a name clash or an OS error skips only this member."""
        target = self.root / rel
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o644)
        except FileExistsError:
            self.record(name, rel, "file", "skipped", size, "duplicate name: an earlier member")
            return
        except OSError as exc:
            why = exc.strerror or str(exc)
            self.record(name, rel, "file", "skipped", size, f"cannot create: {why}")
            return
        written = 0
        with os.fdopen(fd, "wb") as out:
            while chunk := stream.read(CHUNK):
                self.check_total(written + len(chunk), name)
                out.write(chunk)
                written += len(chunk)
        self.total += written
        if mtime is not None:
            os.utime(target, (mtime, mtime))
        self.record(name, rel, "file", "extracted", written)


def _unpack_zip(archive: Path, w: _Writer) -> None:
    try:
        zf = zipfile.ZipFile(archive)
    except (zipfile.BadZipFile, OSError) as exc:
        raise UserError(f"archive {archive.name}: not a readable zip file: {exc}") from None
    with zf:
        infos = zf.infolist()
        declared = 0
        for info in infos:  # the central directory tells the sizes before anything is written
            w.count_member()
            declared += info.file_size
            ratio = info.file_size / max(info.compress_size, 1)
            if info.file_size > RATIO_MIN_BYTES and ratio > w.limits.max_ratio:
                raise ArchiveBomb(
                    f"archive {archive.name}: member {info.filename!r} expands {ratio:.0f}x "
                    f"(limit sources.max_ratio = {w.limits.max_ratio:g}): "
                    "refused as a possible archive bomb"
                )
        w.check_total(declared, infos[-1].filename if infos else "")
        for info in infos:
            _zip_member(zf, info, w)


def _zip_member(zf: zipfile.ZipFile, info: zipfile.ZipInfo, w: _Writer) -> None:
    name = info.filename
    mode = info.external_attr >> 16
    kind = "dir" if info.is_dir() else "file"
    if info.create_system == 3 and stat.S_IFMT(mode) not in (0, stat.S_IFREG, stat.S_IFDIR):
        kind = "symlink" if stat.S_ISLNK(mode) else "special"
        what = "a symlink" if kind == "symlink" else "not a regular file"
        w.record(name, None, kind, "skipped", info.file_size, f"{what}: not extracted")
        return
    rel = w.safe(name, kind, info.file_size)
    if rel is None:
        return
    if kind == "dir":
        w.mkdir(name, rel)
        return
    if info.flag_bits & 0x1:
        w.record(name, rel, kind, "skipped", info.file_size, "encrypted: no password")
        return
    mtime = _zip_mtime(info)
    try:
        with zf.open(info) as stream:
            w.write(name, rel, stream, info.file_size, mtime)
    except (zipfile.BadZipFile, NotImplementedError, EOFError, OSError) as exc:
        (w.root / rel).unlink(missing_ok=True)
        w.record(name, rel, kind, "skipped", info.file_size, f"corrupt member: {exc}")


def _zip_mtime(info: zipfile.ZipInfo) -> float | None:
    try:
        return time.mktime((*info.date_time, 0, 0, -1))
    except (OverflowError, ValueError):
        return None


_TAR_KINDS = (
    ("issym", "symlink", "a symlink: not extracted"),
    ("islnk", "hardlink", "a hardlink: not extracted"),
    ("ischr", "device", "a character device: not extracted"),
    ("isblk", "device", "a block device: not extracted"),
    ("isfifo", "fifo", "a FIFO: not extracted"),
)


def _unpack_tar(archive: Path, w: _Writer) -> None:
    try:
        tf = tarfile.open(archive, "r|*")  # noqa: SIM115 - a stream: members are read once, in order
    except (tarfile.TarError, OSError) as exc:
        raise UserError(f"archive {archive.name}: not a readable tar file: {exc}") from None
    try:
        with tf:
            for m in tf:
                w.count_member()
                _tar_member(tf, m, w)
                tf.members = []  # stream mode still keeps every header: drop them
    except (tarfile.TarError, EOFError, OSError, zlib.error, lzma.LZMAError) as exc:
        raise UserError(f"archive {archive.name}: corrupt or truncated: {exc}") from None


def _tar_member(tf: tarfile.TarFile, m: tarfile.TarInfo, w: _Writer) -> None:
    for test, kind, reason in _TAR_KINDS:
        if getattr(m, test)():
            w.record(m.name, None, kind, "skipped", None, reason)
            return
    kind = "dir" if m.isdir() else "file" if m.isreg() else "special"
    if kind == "special":
        w.record(m.name, None, kind, "skipped", None, "unsupported member type: not extracted")
        return
    rel = w.safe(m.name, kind, m.size if kind == "file" else None)
    if rel is None:
        return
    try:
        tarfile.data_filter(m, str(w.root))  # the standard library's own check, as well
    except tarfile.FilterError as exc:
        w.record(m.name, rel, kind, "skipped", None, f"refused by tarfile's data filter: {exc}")
        return
    if kind == "dir":
        w.mkdir(m.name, rel)
        return
    w.check_total(m.size, m.name)
    stream = tf.extractfile(m)
    if stream is None:  # pragma: no cover - isreg() members always have data
        w.record(m.name, rel, kind, "skipped", m.size, "no data")
        return
    w.write(m.name, rel, stream, m.size, float(m.mtime))
