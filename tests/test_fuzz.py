"""Property-based and fuzz tests of what parses outside input: config, journal, file names.

Bounded in time: hypothesis with a fixed number of examples, atheris with a fixed number of
runs in a child process (its libFuzzer exits the process when done).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import duckdb
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from photo_curate.config import CurateConfig, config_from_mapping, parse_mapping
from photo_curate.errors import UserError
from photo_curate.home import Home
from photo_curate.journal import Entry, Journal, parse_line, read_entries
from tasks.ingest import scan

SECTIONS = {
    name: sorted(type(getattr(CurateConfig(), name)).model_fields)
    for name in CurateConfig.model_fields
}
scalars = (
    st.none()
    | st.booleans()
    | st.integers(-(2**70), 2**70)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=30)
    | st.sampled_from(["duplicate", "quarantine", "best", "Originals", "*.jpg", "../x"])
)
values = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner),
    max_leaves=8,
)
known_keys = st.sampled_from(sorted({k for ks in SECTIONS.values() for k in ks}))
sections = st.dictionaries(known_keys | st.text(max_size=12), values, max_size=4)
mappings = st.dictionaries(
    st.sampled_from(sorted(SECTIONS)) | st.text(max_size=10) | st.integers(),
    sections | values,
    max_size=4,
)


def _one_line(msg: str) -> None:
    assert msg and "\n" not in msg and "\r" not in msg and len(msg) < 400, msg


@settings(max_examples=400, deadline=None)
@given(mappings)
def test_any_mapping_is_a_config_or_one_line_user_error(data: dict) -> None:
    try:
        cfg = config_from_mapping(data)
    except UserError as exc:
        _one_line(str(exc))
        return
    # a config that validates round-trips through what the run records
    assert config_from_mapping(json.loads(cfg.to_json())) == cfg


@settings(max_examples=300, deadline=None)
@given(st.sampled_from([".yaml", ".toml", ".json"]), st.text(max_size=300))
def test_any_config_text_parses_or_is_one_line_user_error(suffix: str, text: str) -> None:
    try:
        config_from_mapping(parse_mapping(text, suffix))
    except UserError as exc:
        _one_line(str(exc))


@pytest.mark.parametrize(
    ("text", "suffix", "fragment"),
    [
        ("[" * 100_000, ".json", "nested too deeply"),
        ("rules: {blur_sharpness: .nan}", ".yaml", "rules.blur_sharpness"),
        ("rules: {blur_sharpness: -.inf}", ".yaml", "rules.blur_sharpness"),
        ('rules: {dark_p95: "40"}', ".yaml", "rules.dark_p95"),
        ("fastdup: {threads: true}", ".yaml", "fastdup.threads"),
        ("!!python/object/apply:os.system ['true']", ".yaml", "not valid yaml"),
        ('"a\\nb": 1', ".yaml", "'a\\nb': unknown setting"),
    ],
)
def test_hostile_config_texts(text: str, suffix: str, fragment: str) -> None:
    with pytest.raises(UserError) as err:
        config_from_mapping(parse_mapping(text, suffix))
    _one_line(str(err.value))
    assert fragment in str(err.value)


def test_config_file_that_is_not_text_or_too_big(tmp_path: Path) -> None:
    from photo_curate.config import load_config

    binary = tmp_path / "c.yaml"
    binary.write_bytes(b"\xff\xfe\x00rules")
    with pytest.raises(UserError, match="not UTF-8"):
        load_config(binary)
    big = tmp_path / "big.yaml"
    big.write_bytes(b"#" * (2 * 1024**2))
    with pytest.raises(UserError, match="larger than"):
        load_config(big)


entries = st.builds(
    Entry,
    run_id=st.text(max_size=10),
    op_id=st.text(min_size=1, max_size=10),
    path=st.text(max_size=40),
    action=st.sampled_from(["quarantine", "trash", "delete", "restore"]),
    status=st.sampled_from(["intent", "done", "skipped", "failed"]),
    destination=st.none() | st.text(max_size=40),
    sha256=st.none() | st.text("0123456789abcdef", min_size=64, max_size=64),
    size_bytes=st.none() | st.integers(0, 2**62),
    detail=st.none() | st.text(max_size=20),
)


@settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    st.lists(entries, max_size=8),
    st.lists(st.binary(max_size=60).filter(lambda b: b"\n" not in b), max_size=4),
    st.integers(0, 10_000),
    st.floats(0, 1),
)
def test_journal_reader_keeps_every_whole_entry_and_ignores_the_rest(
    tmp_path: Path, written: list[Entry], garbage: list[bytes], where: int, cut: float
) -> None:
    """Whole entries come back exactly, in order; garbage lines, a torn last line and NUL
    padding (a power cut) are ignored; nothing raises."""
    for g in garbage:
        assume(parse_line(g) is None)
    home = Home(Path(tempfile.mkdtemp(dir=tmp_path)))
    with Journal(home, "r") as j:
        for e in written:
            j.write(e)
    path = home.table_file("actions", "r", ".jsonl")
    lines = path.read_bytes().splitlines(keepends=True)
    for i, g in enumerate(garbage):
        lines.insert((where + i) % (len(lines) + 1), g + b"\n")
    torn = b""
    if written:
        last = json.dumps({**written[-1].__dict__, "op_id": "torn"}).encode()
        torn = last[: int(cut * (len(last) - 1))]
    path.write_bytes(b"".join(lines) + torn + b"\x00" * (where % 7))
    assert list(read_entries(path)) == written


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    st.lists(
        st.binary(min_size=1, max_size=40).filter(
            lambda b: b"/" not in b and b"\x00" not in b and b not in (b".", b"..")
        ),
        min_size=1,
        max_size=3,
    ),
    st.binary(max_size=8),
)
def test_every_name_round_trips_through_the_manifest(
    tmp_path: Path, parts: list[bytes], content: bytes
) -> None:
    """A file with any name (any bytes but / and NUL) is in `files` exactly once: a UTF-8
    name as itself (`SOURCE / path` is that very file), any other name with a reason."""
    root = Path(tempfile.mkdtemp(dir=tmp_path))
    folder = os.path.join(os.fsencode(root), *parts[:-1])
    os.makedirs(folder, exist_ok=True)
    target = os.path.join(folder, parts[-1])
    if os.path.isdir(target):
        return
    with open(target, "wb") as fh:
        fh.write(content)
    home = Home(tmp_path / f"home-{root.name}")
    res = scan(root, home, "r1")
    assert res.n_files == 1
    rows = (
        duckdb.connect()
        .execute(
            "SELECT path, entry_type, status, reason FROM read_parquet($p)",
            {"p": str(home.table_file("files", "r1"))},
        )
        .fetchall()
    )
    assert len(rows) == 1
    path, entry_type, status, reason = rows[0]
    assert entry_type == "file"
    rel = b"/".join(parts)
    try:
        expected = rel.decode("utf-8")
    except UnicodeDecodeError:
        assert reason == "name is not valid UTF-8: left alone" and status == "skipped"
        return
    assert path == expected
    assert os.path.samefile(root / path, target)
    hidden = any(p.startswith(b".") for p in parts)
    assert status in ("image", "skipped") and (status == "image" or reason)
    if hidden:
        assert status == "skipped"


FUZZ = Path(__file__).with_name("fuzz_targets.py")
SEEDS = {
    "config": {
        "a.yaml": b"\x00rules:\n  dark_p95: 40\nactions: {act_on: [dark], protected: [x]}\n",
        "b.toml": b"\x01[fastdup]\nthreads = 2\n[analysis]\nworkers = 1\n",
        "c.json": b'\x02{"rules": {"blur_sharpness": -2.5}, "actions": {"keep": "newest"}}',
    },
    "journal": {
        "e": b'{"run_id": "r", "op_id": "o", "path": "a/b.jpg", "action": "quarantine", '
        b'"status": "intent", "destination": "/h/q/a/b.jpg", "size_bytes": 12}\n',
    },
}


@pytest.mark.parametrize("target", ["config", "journal"])
def test_atheris_fuzz(target: str, tmp_path: Path) -> None:
    """A bounded libFuzzer run (coverage-guided): no exception but one-line UserErrors."""
    pytest.importorskip("atheris")
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    for name, data in SEEDS[target].items():
        (corpus / name).write_bytes(data)
    runs = 30_000
    p = subprocess.run(
        [sys.executable, str(FUZZ), target, f"-runs={runs}", "-max_len=512",
         "-max_total_time=60", f"-artifact_prefix={tmp_path}/", str(corpus)],
        capture_output=True, text=True, timeout=180, check=False,
        cwd=Path(__file__).resolve().parent.parent,
    )  # fmt: skip
    tail = p.stderr[-3000:]
    assert p.returncode == 0, tail
    assert f"Done {runs} runs" in p.stderr, tail
