"""A person's verdicts outlive the night: `curate decide` on a planted collection, then an
unchanged re-run, a rename and a `--full` run: the decided files are never planned again, and
the rest of the plan stays as it was."""

from __future__ import annotations

from pathlib import Path

import duckdb
import pytest

from tests.conftest import curate_cli, run_id_of

pytestmark = pytest.mark.slow


def _query(home: Path, sql: str) -> list[tuple]:
    con = duckdb.connect(str(home / "catalog.duckdb"), read_only=True)
    try:
        return con.execute(sql).fetchall()
    finally:
        con.close()


def _run(collection: Path, home: Path, *extra: str) -> set[str]:
    run_id_of(curate_cli("run", collection, "--home", home, *extra))
    return {path for (path,) in _query(home, "SELECT path FROM latest_plan")}


def test_decisions_hold_across_reruns_renames_and_full_runs(
    collection: Path, tmp_path: Path
) -> None:
    import skimage
    from PIL import Image

    # a planted duplicate pair of its own: a photo and a smaller re-encode of it
    photo = Image.open(Path(skimage.__file__).parent / "data" / "hubble_deep_field.jpg")
    (collection / "New").mkdir()
    photo.convert("RGB").save(collection / "New" / "hubble.jpg", quality=92)
    small = photo.convert("RGB").resize((photo.width * 3 // 5, photo.height * 3 // 5))
    small.save(collection / "New" / "hubble small.jpg", quality=85)
    home = tmp_path / "home"
    before = _run(collection, home)
    # a planned copy to keep, and a planted duplicate pair (not byte copies) said to differ
    ((keep,),) = _query(
        home,
        "SELECT min(path) FROM latest_findings WHERE kind = 'duplicate' AND action = 'quarantine'",
    )
    copy, keeper = "New/hubble small.jpg", "New/hubble.jpg"
    assert keep in before and copy in before and keeper not in before
    p = curate_cli("decide", "keep", keep, "--note", "mine", "--home", str(home))
    assert p.returncode == 0 and "the next run honours it" in p.stdout, p.stderr
    p = curate_cli("decide", "not-duplicate", copy, keeper, "--home", str(home))
    assert p.returncode == 0, p.stderr
    # mistakes are one line and exit code 2
    bad = curate_cli("decide", "remove", keep, "--home", str(home))
    assert bad.returncode == 2 and "says keep" in bad.stderr and "Traceback" not in bad.stderr
    bad = curate_cli("decide", "keep", "no/such/file.jpg", "--home", str(home))
    assert bad.returncode == 2 and "no such file" in bad.stderr
    expected = before - {keep, copy}
    assert _run(collection, home) == expected  # an unchanged re-run: not carried over
    reason = _query(home, f"SELECT reason FROM latest_findings WHERE path = '{keep}'")
    assert any("[decision d" in r and ": keep]" in r for (r,) in reason)
    (collection / copy).rename(collection / "New" / "renamed.jpg")
    assert _run(collection, home) == expected  # the decision follows the content
    assert _run(collection, home, "--full") == expected
    listed = curate_cli("decisions", "--home", str(home))
    assert listed.returncode == 0 and listed.stdout.count("in force") == 2
    # retracted: the next run plans the kept copy again
    decision = next(line.split()[0] for line in listed.stdout.splitlines() if keep in line)
    assert curate_cli("decide", "retract", decision, "--home", str(home)).returncode == 0
    assert keep in _run(collection, home)
    assert "retracted" in curate_cli("decisions", "--home", str(home)).stdout
