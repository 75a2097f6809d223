"""URL manifests against a real HTTP server on 127.0.0.1 that fails, stalls and cuts bodies."""

from __future__ import annotations

import hashlib
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import duckdb
import pytest

from photo_curate.config import SourcesConfig
from photo_curate.errors import UserError
from photo_curate.home import Home
from photo_curate.sample import bundled_photos
from photo_curate.sources import Source, check_source, download_source
from tests.photo_server import PhotoServer, serve

FAST = SourcesConfig(timeout_seconds=0.5, retries=2, backoff_seconds=0.01, download_workers=4)


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("served")
    for i, p in enumerate(sorted(bundled_photos())[:4]):
        shutil.copyfile(p, folder / f"photo{i}.jpg")
    return folder


@pytest.fixture
def server(served: Path) -> Iterator[PhotoServer]:
    with serve(served) as srv:
        yield srv


def _sha(p: Path) -> str:
    return hashlib.sha256(p.read_bytes()).hexdigest()


def _rows(home: Home, run_id: str) -> dict[int, dict[str, Any]]:
    con = duckdb.connect()
    res = con.execute(
        "SELECT * FROM read_parquet($p)", {"p": str(home.table_file("downloads", run_id))}
    )
    cols = [d[0] for d in res.description]
    return {r["line"]: r for r in (dict(zip(cols, row, strict=True)) for row in res.fetchall())}


def _outside_home(root: Path) -> set[str]:
    """Everything under root except the curation home."""
    return {
        p.relative_to(root).as_posix()
        for p in root.rglob("*")
        if p.relative_to(root).parts[0] != "home"
    }


def test_a_flaky_server_is_retried_resumed_and_recorded(
    server: PhotoServer, served: Path, tmp_path: Path
) -> None:
    b = server.base
    manifest = tmp_path / "photos.csv"
    manifest.write_text(
        "url,path,sha256\n"
        "# a comment, then a blank line\n\n"
        f"{b}/ok/photo0.jpg\n"  # line 4: path derived from the URL
        f"{b}/flaky/2/photo1.jpg,trips/flaky.jpg\n"  # 5: two 500s, then fine
        f"{b}/stall-once/photo2.jpg,stalled.jpg\n"  # 6: first try times out
        f"{b}/cut-once/photo3.jpg,cut.jpg\n"  # 7: half a body, then resumed with Range
        f"{b}/cut-norange/photo3.jpg,cut-norange.jpg\n"  # 8: restarted from 0
        f"{b}/missing/photo0.jpg,missing.jpg\n"  # 9: 404, not retried
        f"{b}/stall/photo0.jpg,never.jpg\n"  # 10: always stalls
        f"{b}/cut/photo1.jpg,always-cut.jpg\n"  # 11: always truncated
        f"{b}/ok/photo1.jpg,../escape.jpg\n"  # 12: path outside the folder
        f"{b}/ok/photo1.jpg,/etc/evil.jpg\n"  # 13: absolute path
        f"{b}/ok/photo2.jpg,bad-hash.jpg,{'0' * 64}\n"  # 14: hash mismatch
        f"ftp://example.com/x.jpg\n"  # 15: not http
        f"{b}/ok/photo2.jpg,trips/flaky.jpg\n"  # 16: same target as line 5
    )
    home = Home(tmp_path / "home").ensure()
    before_outside = _outside_home(tmp_path)
    acq = download_source(check_source(manifest), home, "run1", FAST)
    rows = _rows(home, "run1")
    folder = acq.folder
    assert folder.parent == home.root / "downloads"
    ok = {4: ("ok/photo0.jpg", "photo0.jpg"), 5: ("trips/flaky.jpg", "photo1.jpg"),
          6: ("stalled.jpg", "photo2.jpg"), 7: ("cut.jpg", "photo3.jpg"),
          8: ("cut-norange.jpg", "photo3.jpg")}  # fmt: skip
    for line, (rel, name) in ok.items():
        r = rows[line]
        assert r["status"] == "downloaded", r
        assert r["path"] == rel
        assert (folder / rel).read_bytes() == (served / name).read_bytes()
        assert r["sha256"] == _sha(served / name) and r["bytes"] == (served / name).stat().st_size
    assert rows[5]["attempts"] == 3
    assert rows[6]["attempts"] == 2
    assert rows[7]["attempts"] == 2 and rows[7]["resumed_from"] > 0
    assert any(p == "/cut-once/photo3.jpg" for p, _ in server.ranges)
    assert rows[8]["attempts"] == 2 and rows[8]["resumed_from"] is None
    assert rows[9]["status"] == "failed" and rows[9]["http_status"] == 404
    assert rows[9]["attempts"] == 1 and "HTTP 404" in rows[9]["error"]
    assert "timed out" in rows[10]["error"] and rows[10]["attempts"] == 3
    assert rows[11]["status"] == "failed" and rows[11]["attempts"] == 3
    assert "truncated" in rows[11]["error"] or "transfer failed" in rows[11]["error"]
    assert "outside the folder" in rows[12]["error"]
    assert "absolute path" in rows[13]["error"]
    assert "sha256 mismatch" in rows[14]["error"]
    assert "not an http(s) URL" in rows[15]["error"]
    assert "same path as line 5" in rows[16]["error"]
    assert acq.counts == {"downloaded": 5, "cached": 0, "failed": 8}
    # the folder holds exactly the complete downloads; nothing was written outside HOME
    files = {str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file()}
    assert files == {rel for rel, _ in ok.values()}
    assert _outside_home(tmp_path) == before_outside
    assert not (tmp_path / "escape.jpg").exists() and not Path("/etc/evil.jpg").exists()

    # a second run fetches nothing that is already complete
    hits = sum(server.hits.values())
    again = download_source(check_source(manifest), home, "run2", FAST)
    rows2 = _rows(home, "run2")
    assert all(rows2[line]["status"] == "cached" for line in ok)
    assert all(rows2[line]["sha256"] == rows[line]["sha256"] for line in ok)
    assert again.counts["cached"] == 5 and again.counts["downloaded"] == 0
    fetched = sum(server.hits.values()) - hits
    assert fetched < 20  # only the failing lines were asked again (each with its retries)
    assert server.hits["/ok/photo0.jpg"] == 1


def test_a_partial_file_is_resumed_in_the_next_run(
    server: PhotoServer, served: Path, tmp_path: Path
) -> None:
    manifest = tmp_path / "one.txt"
    manifest.write_text(f"{server.base}/cut/photo0.jpg,p.jpg\n{server.base}/ok/photo1.jpg\n")
    home = Home(tmp_path / "home").ensure()
    no_retry = SourcesConfig(timeout_seconds=0.5, retries=0, backoff_seconds=0.01)
    download_source(check_source(manifest), home, "r1", no_retry)
    assert _rows(home, "r1")[1]["status"] == "failed"
    partial = list((home.root / "downloads" / ".partial").rglob("*.part"))
    size = (served / "photo0.jpg").stat().st_size
    assert len(partial) == 1 and partial[0].stat().st_size == size // 2
    manifest.write_text(f"{server.base}/ok/photo0.jpg,p.jpg\n")  # the server is fixed
    acq = download_source(check_source(manifest), home, "r2", no_retry)
    row = _rows(home, "r2")[1]
    assert row["status"] == "downloaded" and row["resumed_from"] == size // 2
    assert (acq.folder / "p.jpg").read_bytes() == (served / "photo0.jpg").read_bytes()
    assert not partial[0].exists()


def test_a_manifest_where_every_url_fails_is_a_clear_error(
    server: PhotoServer, tmp_path: Path
) -> None:
    manifest = tmp_path / "bad.txt"
    manifest.write_text(f"{server.base}/missing/a.jpg\n{server.base}/missing/b.jpg\n")
    home = Home(tmp_path / "home").ensure()
    with pytest.raises(UserError, match=r"none of its 2 URLs could be downloaded.*HTTP 404"):
        download_source(check_source(manifest), home, "r", FAST)
    assert len(_rows(home, "r")) == 2  # the outcomes are recorded all the same
    assert not list((home.root / "downloads").glob("bad-*"))  # nothing came: no empty folder
    empty = tmp_path / "empty.txt"
    empty.write_text("# nothing yet\n\n")
    with pytest.raises(UserError, match="lists no URLs"):
        check_source(empty)  # told before anything starts


def test_refused_connection_fails_fast_and_is_recorded(tmp_path: Path) -> None:
    import socket

    with socket.socket() as s:  # a port with nothing listening
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    manifest = tmp_path / "m.txt"
    manifest.write_text(f"http://127.0.0.1:{port}/x.jpg\n")
    home = Home(tmp_path / "home").ensure()
    with pytest.raises(UserError, match="transfer failed: ConnectError"):
        download_source(Source("manifest", manifest), home, "r", FAST)


def test_not_utf8_manifest_is_a_user_error(tmp_path: Path) -> None:
    manifest = tmp_path / "m.txt"
    manifest.write_bytes(b"http://127.0.0.1/\xff\xfe.jpg\n")
    with pytest.raises(UserError, match="not UTF-8"):
        download_source(Source("manifest", manifest), Home(tmp_path / "h").ensure(), "r", FAST)


def test_a_url_httpx_cannot_parse_fails_alone(server: PhotoServer, tmp_path: Path) -> None:
    manifest = tmp_path / "m.txt"
    manifest.write_text(f"http://bad host/x.jpg,x.jpg\n{server.base}/ok/photo0.jpg,y.jpg\n")
    home = Home(tmp_path / "home").ensure()
    acq = download_source(check_source(manifest), home, "r", FAST)
    rows = _rows(home, "r")
    assert rows[1]["status"] == "failed" and rows[1]["error"]
    assert rows[2]["status"] == "downloaded" and acq.counts["failed"] == 1


def test_a_trickling_server_is_cut_and_resumed(
    server: PhotoServer, served: Path, tmp_path: Path
) -> None:
    manifest = tmp_path / "m.txt"
    manifest.write_text(f"{server.base}/trickle/photo0.jpg,slow.jpg\n")
    home = Home(tmp_path / "home").ensure()
    impatient = SourcesConfig(timeout_seconds=1, retries=0, attempt_seconds=0.6)
    with pytest.raises(UserError, match=r"too slow: \d+ bytes after 0.6 s"):
        download_source(check_source(manifest), home, "r1", impatient)
    patient = SourcesConfig(timeout_seconds=1, retries=8, attempt_seconds=0.6, backoff_seconds=0)
    acq = download_source(check_source(manifest), home, "r2", patient)
    row = _rows(home, "r2")[1]
    assert row["status"] == "downloaded" and row["resumed_from"] > 0, row
    assert (acq.folder / "slow.jpg").read_bytes() == (served / "photo0.jpg").read_bytes()
