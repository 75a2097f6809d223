"""One collection with every hostile name and entry we know of, through a real run, apply and
undo: every entry accounted for, names kept exactly (NFC and NFD distinct), symlinks never
followed, hard links keep their content, HTML and Prefect artifacts show names as text, and
the tree is identical after undo."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import stat
import unicodedata
from pathlib import Path
from uuid import UUID

import duckdb
import pytest

from photo_curate.home import Home
from tasks.apply import apply_plan, undo_run

pytestmark = pytest.mark.slow

XSS = "<img src=x onerror=alert(1)>.jpg"
MD = "[x](javascript:alert(1)) *_#|`.jpg"
NFC = unicodedata.normalize("NFC", "café.jpg")
NFD = unicodedata.normalize("NFD", "café.jpg")
LONG = "L" * 246 + ".jpg"  # 250 bytes: NAME_MAX is 255
NOT_UTF8 = b"bad\xff\xfe.jpg"


def snapshot(root: Path) -> dict[bytes, tuple]:
    """Every entry under root (bytes paths, no link followed): content hash, link target,
    or kind; plus which regular files share an inode (hard links)."""
    out: dict[bytes, tuple] = {}
    inodes: dict[int, list[bytes]] = {}
    broot = os.fsencode(root)
    for folder, dirs, files in os.walk(broot, followlinks=False):
        for name in dirs + files:
            p = os.path.join(folder, name)
            rel = os.path.relpath(p, broot)
            st = os.lstat(p)
            if stat.S_ISLNK(st.st_mode):
                out[rel] = ("link", os.readlink(p))
            elif stat.S_ISDIR(st.st_mode):
                out[rel] = ("dir",)
            elif stat.S_ISREG(st.st_mode):
                with open(p, "rb") as fh:
                    out[rel] = ("file", hashlib.sha256(fh.read()).hexdigest())
                inodes.setdefault(st.st_ino, []).append(rel)
            else:
                out[rel] = ("special", stat.S_IFMT(st.st_mode))
    for group in inodes.values():
        if len(group) > 1:
            for rel in group:
                out[rel] = (*out[rel], tuple(sorted(group)))
    return out


@pytest.fixture
def hostile(sample: tuple[Path, Path], tmp_path: Path) -> tuple[Path, Path]:
    """(SOURCE, a folder outside it that links point to)."""
    photos = sorted((sample[0] / "DCIM").rglob("*.jpg"))[:5]
    assert len(photos) == 5
    p1, p2, p3, p4, p5 = (p.read_bytes() for p in photos)
    src = tmp_path / "src"
    outside = tmp_path / "outside"
    (outside / "dir").mkdir(parents=True)
    (outside / "photo.jpg").write_bytes(p5)
    (outside / "dir" / "inner.jpg").write_bytes(p4)

    def put(rel: str, data: bytes) -> None:
        f = src / rel
        f.parent.mkdir(parents=True, exist_ok=True)
        f.write_bytes(data)

    put("with space/IMG 0001.jpg", p1)
    put("-rf.jpg", p1)
    put(XSS, p1)
    put("--help.jpg", p2)
    put(NFC, p2)
    put(NFD, p2)
    put("a&b'\"q;$(touch x).jpg", p2)
    put("Case.jpg", p3)
    put("case.jpg", p3)
    put(MD, p3)
    put("line\nbreak.jpg", p4)
    put(LONG, p4)
    put("deep/" * 20 + "deep.jpg", p4)
    put("hard/one.jpg", p5)
    os.link(src / "hard/one.jpg", src / "hard/two.jpg")  # two paths, one inode
    put("hard/three.jpg", p5)
    put(".hidden.jpg", p1)
    put(".dotdir/x.jpg", p2)
    put("broken/truncated.jpg", p1[: len(p1) // 2])
    put("broken/empty.jpg", b"")
    put("notes.txt", b"not a photo")
    with open(os.path.join(os.fsencode(src), NOT_UTF8), "wb") as fh:
        fh.write(p3)
    os.mkfifo(src / "pipe.jpg")
    os.symlink(src / "-rf.jpg", src / "link_in.jpg")
    os.symlink(outside / "photo.jpg", src / "link_out.jpg")
    os.symlink(outside / "dir", src / "dir_out")
    os.symlink("loop_b", src / "loop_a")
    os.symlink("loop_a", src / "loop_b")
    os.symlink(".", src / "self_loop")
    os.symlink("..", src / "parent_loop")
    os.symlink(src / "missing.jpg", src / "dangling.jpg")
    return src, outside


def _rows(con: duckdb.DuckDBPyConnection, sql: str, **params: object) -> list[tuple]:
    return con.execute(sql, params).fetchall()


def test_hostile_collection_run_apply_undo(run_flow, hostile, tmp_path: Path) -> None:
    src, outside = hostile
    before = snapshot(src)
    outside_before = snapshot(outside)
    home = Home(tmp_path / "home")
    res = run_flow(src, home.root)
    assert res["status"] == "completed", res["validation"]["failed"]
    run_id = res["run_id"]
    con = duckdb.connect()
    files = str(home.table_file("files", run_id))
    images = str(home.table_file("images", run_id))
    findings = str(home.table_file("findings", run_id))

    # every entry accounted for: all but folders are rows, each with a reason when skipped
    entries = {k: v for k, v in before.items() if v[0] != "dir"}
    rows = _rows(con, "SELECT path, entry_type, status, reason FROM read_parquet($f)", f=files)
    assert len(rows) == len(entries)
    by_path = {r[0]: r[1:] for r in rows}
    assert len(by_path) == len(rows)
    for rel, kind in entries.items():
        try:
            name = rel.decode("utf-8")
        except UnicodeDecodeError:
            continue
        assert name in by_path, name  # exactly the name on disk
        entry_type, status, reason = by_path[name]
        assert status == "image" or reason, name
        assert entry_type == {"link": "symlink", "file": "file", "special": "special"}[kind[0]]
    bad = [r for r in rows if r[3] == "name is not valid UTF-8: left alone"]
    assert len(bad) == 1 and bad[0][2] == "skipped"
    assert NFC != NFD and {NFC, NFD, LONG, XSS, MD, "line\nbreak.jpg"} <= set(by_path)
    assert by_path["Case.jpg"][1] == by_path["case.jpg"][1] == "image"
    assert "outside SOURCE" in by_path["link_out.jpg"][2]
    assert "outside SOURCE" in by_path["dir_out"][2]
    for loop in ("loop_a", "loop_b", "dangling.jpg"):
        assert "broken" in by_path[loop][2]
    assert by_path["self_loop"][0] == by_path["parent_loop"][0] == "symlink"
    assert by_path["pipe.jpg"][0] == "special"
    assert "hidden" in by_path[".hidden.jpg"][2] and "hidden" in by_path[".dotdir/x.jpg"][2]
    assert not any(p.startswith(("dir_out/", "self_loop/", "parent_loop/")) for p in by_path)

    # one images row per image candidate, the broken ones with a reason
    img = dict(_rows(con, "SELECT path, is_valid FROM read_parquet($i)", i=images))
    candidates = {p for p, (_t, s, _r) in by_path.items() if s == "image"}
    assert set(img) == candidates
    assert not img["broken/truncated.jpg"] and not img["broken/empty.jpg"]
    dup = {
        p: (g, k)
        for p, g, k in _rows(
            con,
            "SELECT path, group_id, is_keeper FROM read_parquet($f) WHERE kind = 'duplicate'",
            f=findings,
        )
    }
    assert {NFC, NFD, "--help.jpg"} <= set(dup) and dup[NFC][0] == dup[NFD][0]
    assert dup["hard/one.jpg"][0] == dup["hard/two.jpg"][0] == dup["hard/three.jpg"][0]

    # the report and the Prefect artifacts show the names as text
    html = home.report_file(run_id).read_text(encoding="utf-8")
    assert "<img src=x" not in html and "&lt;img src=x onerror=alert(1)&gt;" in html
    assert "javascript:alert" not in html.replace("[x](javascript:alert(1))", "")
    _check_artifacts(home, run_id)

    # apply: every file exactly once, at its place or in quarantine, with its content
    out = apply_plan(home, run_id)
    assert out.success and out.failed == 0, out.describe()
    planned = {p for p, a in _rows(con, "SELECT path, action FROM read_parquet($f)",
                                   f=str(home.table_file("plan", run_id)))}  # fmt: skip
    assert planned and out.done == len(planned)
    after = snapshot(src)
    q = snapshot(home.quarantine_dir(run_id))
    moved = {os.fsencode(p) for p in planned}
    for rel, kind in before.items():
        if kind[0] == "file" and rel in moved:
            assert rel not in after and q[rel][:2] == kind[:2], rel
        elif kind[0] != "dir":
            assert after[rel][:2] == kind[:2], rel
    assert (
        set(after) - {k for k, v in after.items() if v[0] == "dir"}
        == {k for k, v in before.items() if v[0] != "dir"} - moved
    )
    # the hard-linked photo: whatever was moved, its content is still in SOURCE
    p5 = before[b"hard/one.jpg"][1]
    assert any(v[:2] == ("file", p5) for v in after.values())
    assert snapshot(outside) == outside_before  # nothing outside SOURCE touched

    # undo: the same tree, hard links included
    u = undo_run(home, run_id)
    assert u.failed == 0 and u.restored == len(planned)
    assert snapshot(src) == before
    assert snapshot(outside) == outside_before
    assert not (home.quarantine_dir(run_id).exists() and any(
        f for _d, _s, f in os.walk(home.quarantine_dir(run_id))
    ))  # fmt: skip


def _check_artifacts(home: Home, run_id: str) -> None:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import (
        ArtifactFilter,
        ArtifactFilterFlowRunId,
        ArtifactFilterKey,
    )

    from photo_curate.runs import read_run

    flow_run_id = (read_run(home, run_id) or {}).get("flow_run_id")
    assert flow_run_id
    # filtered on the server: an unfiltered read returns one page of the whole suite's artifacts
    wanted = ArtifactFilter(
        flow_run_id=ArtifactFilterFlowRunId(any_=[UUID(flow_run_id)]),
        key=ArtifactFilterKey(any_=["curate-plan"]),
    )
    with get_client(sync_client=True) as client:
        arts = client.read_artifacts(artifact_filter=wanted)
    assert len(arts) == 1, arts
    plan = arts[0]
    cells = [row["file"] for row in json.loads(plan.data)]
    text = "\n".join(cells)
    assert "<img" not in text and "](javascript" not in text
    assert r"\[x\]\(javascript:alert\(1\)\) \*\_\#\|\`\.jpg" in cells
    assert any("&lt;img src=x onerror=alert\\(1\\)&gt;" in c for c in cells)
    assert all("\n" not in c for c in cells)


def test_names_survive_a_cross_device_quarantine(run_flow, hostile, tmp_path: Path) -> None:
    """HOME on another file system than SOURCE: moves are hash-verified copies (a 250-byte
    name must not overflow NAME_MAX with the temp suffix)."""
    src, _outside = hostile
    home = Home(tmp_path / "home")
    run_id = run_flow(src, home.root)["run_id"]
    qroot = home.root / "quarantine"
    qroot.mkdir(parents=True, exist_ok=True)
    if os.system(f"mount -t tmpfs -o size=64m tmpfs '{qroot}' 2>/dev/null") != 0:
        pytest.skip("cannot mount a tmpfs here (needs root or CAP_SYS_ADMIN)")
    try:
        assert os.stat(qroot).st_dev != os.stat(src).st_dev
        before = snapshot(src)
        assert LONG in _planned(home, run_id)
        out = apply_plan(home, run_id)
        assert out.failed == 0 and out.success, out.describe()
        assert os.fsencode(LONG) not in snapshot(src)
        moved = (home.quarantine_dir(run_id) / LONG).read_bytes()
        assert ("file", hashlib.sha256(moved).hexdigest()) == before[os.fsencode(LONG)][:2]
        u = undo_run(home, run_id)
        assert u.failed == 0
        now = snapshot(src)
        # content and names identical; a restored copy is a new inode (hard links cannot
        # cross file systems), so compare without the link groups
        assert {k: v[:2] for k, v in now.items()} == {k: v[:2] for k, v in before.items()}
    finally:
        os.system(f"umount '{qroot}'")
        shutil.rmtree(qroot, ignore_errors=True)


def _planned(home: Home, run_id: str) -> set[str]:
    con = duckdb.connect()
    return {
        r[0]
        for r in con.execute(
            "SELECT path FROM read_parquet($p)", {"p": str(home.table_file("plan", run_id))}
        ).fetchall()
    }
