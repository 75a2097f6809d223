"""Photos, not files: RAW + JPEG pairs, sidecars and Live Photo movies are one photo.

A library built from real photos: RAW + JPEG pairs (a Bayer mosaic of the photo as DNG),
JPEGs with XMP and AAE sidecars, Live Photo stills with their movie (a real MP4 video of the
photo), and byte copies of some of those photos in a backup folder. `curate run --apply`
must split no photo, analyse every RAW, quarantine each duplicate photo whole and leave no
sidecar or movie behind; `curate undo` puts the tree back byte for byte; a `kill -9` in the
middle of a photo leaves it whole after the next apply's recovery."""

from __future__ import annotations

import shutil
import signal
import subprocess
import sys
from datetime import datetime
from pathlib import Path

import cv2
import duckdb
import numpy as np
import pytest
from PIL import Image

from photo_curate.home import Home
from photo_curate.sample import bundled_photos
from tasks.apply import apply_plan, recover, undo_run
from tests.conftest import curate_cli, run_id_of, tree_digest
from tests.raw_files import write_dng

pytestmark = pytest.mark.slow

XMP = """<?xpacket begin="\ufeff" id="W5M0MpCehiHzreSzNTczkc9d"?>
<x:xmpmeta xmlns:x="adobe:ns:meta/">
 <rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">
  <rdf:Description rdf:about="" xmlns:xmp="http://ns.adobe.com/xap/1.0/"
    xmlns:crs="http://ns.adobe.com/camera-raw-settings/1.0/"
    xmp:Rating="{rating}" crs:Exposure2012="+0.35" crs:Temperature="5400"/>
 </rdf:RDF>
</x:xmpmeta>
<?xpacket end="w"?>
"""
AAE = """<?xml version="1.0" encoding="UTF-8"?>
<!DOCTYPE plist PUBLIC "-//Apple//DTD PLIST 1.0//EN" "http://www.apple.com/DTDs/PropertyList-1.0.dtd">
<plist version="1.0"><dict>
 <key>adjustmentFormatIdentifier</key><string>com.apple.photo</string>
 <key>adjustmentFormatVersion</key><string>1.4</string>
</dict></plist>
"""


def _movie(rgb: np.ndarray, path: Path) -> None:
    """A short real video of the photo, panning (what a Live Photo's movie holds)."""
    frame = cv2.cvtColor(cv2.resize(rgb, (320, 240)), cv2.COLOR_RGB2BGR)
    out = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), 15, (320, 240))
    for k in range(20):
        out.write(np.roll(frame, 4 * k, axis=1))
    out.release()
    assert path.stat().st_size > 1000


def _jpeg(rgb: np.ndarray, path: Path, when: datetime) -> None:
    exif = Image.Exif()
    exif[0x010F] = "photo-curate"
    exif[0x0132] = when.strftime("%Y:%m:%d %H:%M:%S")
    Image.fromarray(rgb).save(path, quality=92, exif=exif.tobytes())


def photo_library(root: Path) -> dict[str, list[str]]:
    """The library; returns photo name -> its files (relative paths)."""
    photos = [np.asarray(Image.open(p).convert("RGB")) for p in bundled_photos()[:9]]
    sets: dict[str, list[str]] = {}

    def put(name: str, files: list[str]) -> None:
        sets[name] = files

    cam, phone, edits = root / "Camera", root / "Phone", root / "Edits"
    for d in (cam, phone, edits):
        d.mkdir(parents=True)
    for i in range(3):  # RAW + JPEG pairs, one with its XMP named after the RAW
        when = datetime(2024, 5, 1, 10, i)
        stem = f"IMG_{i + 1:04d}"
        _jpeg(photos[i], cam / f"{stem}.JPG", when)
        write_dng(photos[i], cam / f"{stem}.DNG", captured_at=when)
        files = [f"Camera/{stem}.DNG", f"Camera/{stem}.JPG"]
        if i == 0:
            (cam / f"{stem}.DNG.xmp").write_text(XMP.format(rating=5))
            files.append(f"Camera/{stem}.DNG.xmp")
        put(stem, files)
    for i in range(3, 6):  # Live Photos: still + movie (+ Apple's AAE edit sidecar)
        stem = f"IMG_{i + 1:04d}"
        _jpeg(photos[i], phone / f"{stem}.JPG", datetime(2024, 6, 2, 9, i))
        _movie(photos[i], phone / f"{stem}.MOV")
        files = [f"Phone/{stem}.JPG", f"Phone/{stem}.MOV"]
        if i == 3:
            (phone / f"{stem}.AAE").write_text(AAE)
            files.append(f"Phone/{stem}.AAE")
        put(stem, files)
    for i in range(6, 9):  # JPEG + XMP
        stem = f"DSC_{i + 1:04d}"
        _jpeg(photos[i], edits / f"{stem}.jpg", datetime(2024, 7, 3, 8, i))
        (edits / f"{stem}.xmp").write_text(XMP.format(rating=i - 5))
        put(stem, [f"Edits/{stem}.jpg", f"Edits/{stem}.xmp"])
    for name in ("IMG_0001", "IMG_0004", "DSC_0007"):  # byte copies of whole photos
        for rel in sets[name]:
            dst = root / "Backup" / rel
            dst.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(root / rel, dst)
        sets[f"Backup/{name}"] = [f"Backup/{rel}" for rel in sets[name]]
    return sets


def _whole(tree: set[str], sets: dict[str, list[str]]) -> dict[str, str]:
    """Where each photo is: 'here' (every file in `tree`), 'gone' (none), else 'SPLIT'."""
    out = {}
    for name, files in sets.items():
        n = sum(f in tree for f in files)
        out[name] = "here" if n == len(files) else "gone" if n == 0 else "SPLIT"
    return out


def test_photo_sets_are_planned_moved_and_restored_whole(tmp_path: Path) -> None:
    src, home = tmp_path / "library", tmp_path / "home"
    sets = photo_library(src)
    before = tree_digest(src)
    run_id = run_id_of(curate_cli("run", src, "--apply", "--home", home))
    con = duckdb.connect(str(home / "catalog.duckdb"), read_only=True)
    # every RAW was read: a valid images row with its size
    raws = con.execute(
        "SELECT path, is_valid, width, height, format FROM images WHERE run_id = ? "
        "AND path ILIKE '%.dng' ORDER BY path",
        [run_id],
    ).fetchall()
    assert len(raws) == 4  # three pairs and the backup copy of one
    assert all(valid and w > 0 and h > 0 and fmt == "DNG" for _p, valid, w, h, fmt in raws), raws
    # the catalog says which file belongs to which photo, in what role
    roles = dict(
        con.execute("SELECT path, role FROM photo_files WHERE run_id = ?", [run_id]).fetchall()
    )
    for files in sets.values():
        ids = con.execute(
            "SELECT DISTINCT photo_id FROM photo_files WHERE run_id = ? AND list_contains(?, path)",
            [run_id, files],
        ).fetchall()
        assert len(ids) == 1, files
    assert roles["Camera/IMG_0001.JPG"] == "primary" and roles["Camera/IMG_0001.DNG"] == "raw"
    assert roles["Camera/IMG_0001.DNG.xmp"] == "sidecar"
    assert roles["Phone/IMG_0004.MOV"] == "movie" and roles["Phone/IMG_0004.AAE"] == "sidecar"
    # no RAW + JPEG pair is a duplicate of itself: only the byte copies are duplicates
    dup_groups = con.execute(
        "SELECT list(path ORDER BY path) FROM findings WHERE run_id = ? AND kind = 'duplicate' "
        "GROUP BY group_id ORDER BY 1",
        [run_id],
    ).fetchall()
    assert [g for (g,) in dup_groups] == [
        ["Backup/Camera/IMG_0001.JPG", "Camera/IMG_0001.JPG"],
        ["Backup/Edits/DSC_0007.jpg", "Edits/DSC_0007.jpg"],
        ["Backup/Phone/IMG_0004.JPG", "Phone/IMG_0004.JPG"],
    ]
    con.close()
    # each duplicate photo was quarantined whole, the others are whole in SOURCE
    after = set(tree_digest(src))
    quarantined = set(tree_digest(home / "quarantine" / run_id))
    place = _whole(after, sets)
    assert "SPLIT" not in place.values(), place
    gone = {n for n, w in place.items() if w == "gone"}
    assert len(gone) == 3 and {n.removeprefix("Backup/") for n in gone} == {
        "IMG_0001", "IMG_0004", "DSC_0007"
    }  # fmt: skip
    assert quarantined == {f for n in gone for f in sets[n]}
    assert after | quarantined == set(before) and not after & quarantined
    u = curate_cli("undo", run_id, "--home", home)
    assert u.returncode == 0, u.stderr
    assert tree_digest(src) == before


# A real `kill -9` at an exact point: the apply process kills itself right after its K-th
# file move (a photo's first file moved, its others not yet).
_KILL_AFTER_MOVES = """
import os, signal, sys
from pathlib import Path
import tasks.apply as apply
from photo_curate.home import Home
moves, real_do = [0], apply._do
def do(*args):
    out = real_do(*args)
    moves[0] += 1
    if moves[0] == int(sys.argv[3]):
        os.kill(os.getpid(), signal.SIGKILL)
    return out
apply._do = do
apply.apply_plan(Home(Path(sys.argv[1])), sys.argv[2])
"""


def test_a_kill_in_the_middle_of_a_photo_leaves_it_whole(run_flow, tmp_path: Path) -> None:
    """Copies of a RAW + JPEG + XMP photo: the apply is killed after its 1st, 4th and 29th
    file move; after the next run (or the next apply's recovery) every photo is wholly in
    SOURCE or wholly in quarantine, and the resumed apply or the undo ends with whole photos
    again."""
    from tests.test_apply import _retarget

    base = tmp_path / "base"
    sets = photo_library(base)
    for i in range(12):  # byte copies of one photo: a plan of many three-file photos
        for rel in sets["IMG_0001"]:
            dst = base / f"Copies {i:02d}" / rel
            dst.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(base / rel, dst)
        sets[f"copy{i}"] = [f"Copies {i:02d}/{rel}" for rel in sets["IMG_0001"]]
    home_base = tmp_path / "home-base"
    run_id = run_flow(base, home_base)["run_id"]
    original = tree_digest(base)
    for trial, kill_after in enumerate((1, 4, 29)):
        src, home = tmp_path / f"t{trial}" / "src", tmp_path / f"t{trial}" / "home"
        shutil.copytree(base, src, copy_function=shutil.copy2)
        shutil.copytree(home_base, home)
        _retarget(Home(home), run_id, base, src)
        proc = subprocess.run(
            [sys.executable, "-c", _KILL_AFTER_MOVES, str(home), run_id, str(kill_after)],
            capture_output=True, check=False,
        )  # fmt: skip
        assert proc.returncode == -signal.SIGKILL, proc.stderr
        h = Home(home)
        q = h.quarantine_dir(run_id)
        if kill_after == 1:  # killed inside the first photo: it is split until recovery
            assert "SPLIT" in _whole(set(tree_digest(src)), sets).values()
            run_flow(src, home)  # the next run settles the killed apply before its scan
        else:
            recover(h, run_id, src)
        now_src = tree_digest(src)
        now_q = tree_digest(q) if q.exists() else {}
        assert {**now_src, **now_q} == original and not set(now_src) & set(now_q)
        assert "SPLIT" not in _whole(set(now_src), sets).values()
        if trial % 2 == 0:
            res = apply_plan(h, run_id)  # resume
            assert res.failed == 0
            place = _whole(set(tree_digest(src)), sets)
            assert "SPLIT" not in place.values() and "gone" in place.values()
        assert undo_run(h, run_id).failed == 0
        assert tree_digest(src) == original
