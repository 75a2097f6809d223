"""SOURCE kinds and archives: detection by content, safe unpacking, archive bombs."""

from __future__ import annotations

import io
import os
import shutil
import stat
import tarfile
import zipfile
from pathlib import Path

import duckdb
import pytest

from photo_curate.config import SourcesConfig
from photo_curate.errors import UserError
from photo_curate.home import Home
from photo_curate.sample import bundled_photos
from photo_curate.sources import check_source, unpack_source

CFG = SourcesConfig()


@pytest.fixture(scope="module")
def photos() -> list[bytes]:
    return [p.read_bytes() for p in sorted(bundled_photos())[:3]]


def _members(home: Home, run_id: str) -> dict[str, tuple]:
    con = duckdb.connect()
    rows = con.execute(
        "SELECT member, path, member_type, status, reason FROM read_parquet($p)",
        {"p": str(home.table_file("archive_members", run_id))},
    ).fetchall()
    return {r[0]: r[1:] for r in rows}


def _everything(root: Path) -> set[str]:
    return {p.relative_to(root).as_posix() for p in root.rglob("*")}


def _outside_home(root: Path) -> set[str]:
    return {p for p in _everything(root) if not p.startswith("home")}


def _zip_symlink(zf: zipfile.ZipFile, name: str, target: str) -> None:
    info = zipfile.ZipInfo(name)
    info.create_system = 3
    info.external_attr = (stat.S_IFLNK | 0o777) << 16
    zf.writestr(info, target)


def _tar_add(tf: tarfile.TarFile, name: str, data: bytes = b"", **kw: object) -> None:
    ti = tarfile.TarInfo(name)
    ti.size = len(data)
    for k, v in kw.items():
        setattr(ti, k, v)
    tf.addfile(ti, io.BytesIO(data) if data else None)


def test_source_kinds_are_told_by_content(tmp_path: Path, photos: list[bytes]) -> None:
    assert check_source(tmp_path).kind == "folder"
    with zipfile.ZipFile(tmp_path / "a.zip", "w") as zf:
        zf.writestr("x.jpg", photos[0])
    for mode, name in (("w:gz", "b.dat"), ("w:bz2", "c"), ("w:xz", "d.bin"), ("w", "e.tar")):
        with tarfile.open(tmp_path / name, mode) as tf:
            _tar_add(tf, "x.jpg", photos[0])
    zipped = check_source(tmp_path / "a.zip")
    assert (zipped.kind, zipped.archive_format) == ("archive", "zip")
    assert check_source(tmp_path / "b.dat").archive_format == "tar.gz"
    assert check_source(tmp_path / "c").archive_format == "tar.bz2"
    assert check_source(tmp_path / "d.bin").archive_format == "tar.xz"
    assert check_source(tmp_path / "e.tar").archive_format == "tar"
    (tmp_path / "urls").write_text("# my photos\nhttps://example.com/a.jpg\n")
    (tmp_path / "list.csv").write_text("url,path\nhttps://example.com/a.jpg,a.jpg\n")
    assert check_source(tmp_path / "urls").kind == "manifest"
    assert check_source(tmp_path / "list.csv").kind == "manifest"
    (tmp_path / "empty.csv").write_text("url,path\n")
    with pytest.raises(UserError, match="lists no URLs"):
        check_source(tmp_path / "empty.csv")
    (tmp_path / "photo.jpg").write_bytes(photos[0])
    with pytest.raises(UserError, match=r"is a file \((PNG|JPEG) image\), not a folder, an"):
        check_source(tmp_path / "photo.jpg")
    (tmp_path / "notes").write_text("hello\n")
    with pytest.raises(UserError, match="is a text file, but neither a folder, an archive nor"):
        check_source(tmp_path / "notes")
    (tmp_path / "notes.txt").write_text("# not URLs\nbuy milk\nhttps://example.com/a.jpg\n")
    with pytest.raises(UserError, match="its first entry is not an http"):
        check_source(tmp_path / "notes.txt")  # a .txt is a manifest only by its content
    (tmp_path / "fake.zip").write_bytes(b"PK\x03\x04 not really a zip")
    with pytest.raises(UserError, match="is a file"):
        check_source(tmp_path / "fake.zip")
    with pytest.raises(UserError, match="no such folder"):
        check_source(tmp_path / "nope.zip")


def test_zip_unpacks_inside_home_and_is_reused(tmp_path: Path, photos: list[bytes]) -> None:
    arc = tmp_path / "Holiday 2024.zip"
    with zipfile.ZipFile(arc, "w") as zf:
        zf.writestr("beach/a.jpg", photos[0])
        zf.writestr("b.jpg", photos[1])
        zf.writestr("empty-folder/", b"")
        zf.writestr("notes.txt", b"hello")
    home = Home(tmp_path / "home").ensure()
    acq = unpack_source(check_source(arc), home, "r1", CFG)
    assert acq.folder.parent == home.root / "sources"
    assert acq.folder.name.startswith("Holiday_2024-")
    assert (acq.folder / "beach" / "a.jpg").read_bytes() == photos[0]
    assert (acq.folder / "empty-folder").is_dir()
    assert acq.counts == {"files": 3, "skipped": 0, "reused": 0}
    m = _members(home, "r1")
    assert m["beach/a.jpg"] == ("beach/a.jpg", "file", "extracted", None)
    mtime = (acq.folder / "b.jpg").stat().st_mtime
    again = unpack_source(check_source(arc), home, "r2", CFG)
    assert again.folder == acq.folder and again.counts["reused"] == 1
    assert (acq.folder / "b.jpg").stat().st_mtime == mtime
    assert _members(home, "r2") == m  # every run records the members
    (acq.folder / "b.jpg").unlink()  # e.g. quarantined by an applied run: unpack afresh
    killed = acq.folder.with_name(f".{acq.folder.name}.tmp-999999")  # a run killed mid-way
    (killed / "half").mkdir(parents=True)
    third = unpack_source(check_source(arc), home, "r3", CFG)
    assert third.counts["reused"] == 0 and (acq.folder / "b.jpg").read_bytes() == photos[1]
    assert sorted(p.name for p in (home.root / "sources").iterdir()) == sorted(
        [acq.folder.name, f".{acq.folder.name}.members.jsonl"]
    )


def test_zip_slip_and_symlinks_are_skipped_and_recorded(tmp_path: Path, photos: list[bytes]):
    arc = tmp_path / "evil.zip"
    with zipfile.ZipFile(arc, "w") as zf:
        zf.writestr("good.jpg", photos[0])
        zf.writestr("../escaped.jpg", photos[1])
        zf.writestr("a/../../escaped2.jpg", photos[1])
        zf.writestr("/tmp/absolute.jpg", photos[1])
        zf.writestr("C:\\windows\\drive.jpg", photos[1])
        zf.writestr("sub\\..\\..\\backslash.jpg", photos[1])
        _zip_symlink(zf, "link.jpg", "../../../../etc/passwd")
        with pytest.warns(UserWarning, match="Duplicate name"):
            zf.writestr("good.jpg", photos[2])  # the same name twice: the first one wins
    before = _outside_home(tmp_path)
    home = Home(tmp_path / "home").ensure()
    acq = unpack_source(check_source(arc), home, "r", CFG)
    assert _everything(acq.folder) == {"good.jpg"}
    assert (acq.folder / "good.jpg").read_bytes() == photos[0]
    m = _members(home, "r")
    for name in ("../escaped.jpg", "a/../../escaped2.jpg", "sub\\..\\..\\backslash.jpg"):
        assert m[name][2:] == ("skipped", "unsafe name: a '..' component: would be written "
                               "outside the folder"), name  # fmt: skip
    for name in ("/tmp/absolute.jpg", "C:\\windows\\drive.jpg"):
        assert m[name][2] == "skipped" and "absolute path" in m[name][3]
    assert m["link.jpg"][1:3] == ("symlink", "skipped")
    assert acq.counts["skipped"] == 7  # five unsafe names, the link, the second good.jpg
    assert _outside_home(tmp_path) == before
    assert not Path("/tmp/absolute.jpg").exists()


def test_tar_links_devices_and_escapes_are_skipped(tmp_path: Path, photos: list[bytes]) -> None:
    arc = tmp_path / "evil.tgz"
    with tarfile.open(arc, "w:gz") as tf:
        _tar_add(tf, "ok/photo.jpg", photos[0], mtime=1_600_000_000)
        _tar_add(tf, "../up.jpg", photos[1])
        _tar_add(tf, "/etc/cron.d/evil", b"* * * * * root rm -rf /\n")
        _tar_add(tf, "out", type=tarfile.SYMTYPE, linkname="/etc")
        _tar_add(tf, "out/passwd", b"through the link")  # would write through the symlink
        _tar_add(tf, "hard", type=tarfile.LNKTYPE, linkname="/etc/passwd")
        _tar_add(tf, "dev", type=tarfile.CHRTYPE, devmajor=1, devminor=3)
        _tar_add(tf, "fifo", type=tarfile.FIFOTYPE)
    before = _outside_home(tmp_path)
    home = Home(tmp_path / "home").ensure()
    acq = unpack_source(check_source(arc), home, "r", CFG)
    tree = _everything(acq.folder)
    assert tree == {"ok", "ok/photo.jpg", "out", "out/passwd"}
    assert not (acq.folder / "out").is_symlink()  # a plain folder: the link was never made
    assert (acq.folder / "ok/photo.jpg").stat().st_mtime == 1_600_000_000
    m = _members(home, "r")
    assert m["out"][1:3] == ("symlink", "skipped")
    assert m["hard"][1:3] == ("hardlink", "skipped")
    assert m["dev"][1:3] == ("device", "skipped") and m["fifo"][1:3] == ("fifo", "skipped")
    assert "'..'" in m["../up.jpg"][3] and "absolute" in m["/etc/cron.d/evil"][3]
    assert _outside_home(tmp_path) == before


@pytest.mark.parametrize("kind", ["zip", "tar.gz"])
def test_archive_bomb_is_refused_and_leaves_nothing(tmp_path: Path, kind: str) -> None:
    arc = tmp_path / f"bomb.{kind}"
    zeros = b"\0" * (64 * 1024**2)  # 64 MiB that compress to ~64 KiB
    if kind == "zip":
        with zipfile.ZipFile(arc, "w", zipfile.ZIP_DEFLATED) as zf:
            zf.writestr("small.txt", b"hello")
            zf.writestr("zeros.bin", zeros)
    else:
        with tarfile.open(arc, "w:gz") as tf:
            _tar_add(tf, "small.txt", b"hello")
            _tar_add(tf, "zeros.bin", zeros)
    assert arc.stat().st_size < 1024**2
    home = Home(tmp_path / "home").ensure()
    with pytest.raises(UserError, match=r"expands \d+x.*sources.max_ratio.*archive bomb"):
        unpack_source(check_source(arc), home, "r", CFG)
    assert not (home.root / "sources").exists() or not any((home.root / "sources").iterdir())
    # with a generous ratio the size cap still holds
    capped = SourcesConfig(max_ratio=100_000, max_unpacked_mib=16)
    with pytest.raises(UserError, match=r"more than 16 MiB.*sources\.max_unpacked_mib"):
        unpack_source(check_source(arc), home, "r", capped)
    assert not any((home.root / "sources").iterdir())


def test_too_many_members_and_corrupt_archives(tmp_path: Path, photos: list[bytes]) -> None:
    arc = tmp_path / "many.tar"
    with tarfile.open(arc, "w") as tf:
        for i in range(12):
            _tar_add(tf, f"f{i}.txt", b"x")
    home = Home(tmp_path / "home").ensure()
    with pytest.raises(UserError, match="more than 10 members"):
        unpack_source(check_source(arc), home, "r", SourcesConfig(max_members=10))
    good = tmp_path / "cut.tar.gz"
    with tarfile.open(good, "w:gz") as tf:
        _tar_add(tf, "a.jpg", photos[0])
        _tar_add(tf, "b.jpg", photos[1])
    data = good.read_bytes()
    good.write_bytes(data[: len(data) * 2 // 3])
    with pytest.raises(UserError, match="corrupt or truncated"):
        unpack_source(check_source(good), home, "r", CFG)
    assert not any((home.root / "sources").iterdir())
    shutil.rmtree(home.root)
    assert set(os.listdir(tmp_path)) == {"many.tar", "cut.tar.gz"}  # nothing else appeared


@pytest.mark.parametrize("mode", ["w", "w:gz", "w:bz2", "w:xz"])
def test_every_tar_compression_unpacks(tmp_path: Path, photos: list[bytes], mode: str) -> None:
    arc = tmp_path / "photos.archive"  # the name says nothing: the content tells
    with tarfile.open(arc, mode) as tf:
        _tar_add(tf, "a/one.jpg", photos[0])
        _tar_add(tf, "two.jpg", photos[1])
    home = Home(tmp_path / "home").ensure()
    acq = unpack_source(check_source(arc), home, "r", CFG)
    assert (acq.folder / "a" / "one.jpg").read_bytes() == photos[0]
    assert (acq.folder / "two.jpg").read_bytes() == photos[1]
    assert acq.counts == {"files": 2, "skipped": 0, "reused": 0}
