"""engine: dask on a real local cluster of worker processes: the same findings as one machine.

No mocks: a `distributed.LocalCluster` of two worker processes (started by the run from
`execution.workers`), real fastdup children inside the workers, the real flow against the
session's Prefect test server.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import duckdb
import pytest
from PIL import Image, ImageOps

from photo_curate.config import ExecutionConfig, config_from_mapping
from photo_curate.errors import UserError
from photo_curate.home import Home
from tests.conftest import tree_digest

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parent.parent
COMPARED = ("images", "pairs", "outliers", "findings", "clusters", "plan")
DASK = {"execution": {"engine": "dask", "workers": 2, "shard_images": 20}}
DASK_AUTO = {"execution": {"engine": "dask", "workers": 2}}  # one shard per worker, >= 100


def _rows(home: Path, table: str, run_id: str) -> list[tuple]:
    """The run's rows of `table` without the run id, sorted (a multiset to compare)."""
    con = duckdb.connect()
    try:
        rows = con.execute(
            "SELECT * EXCLUDE (run_id) FROM read_parquet($p)",
            {"p": str(Home(home).table_file(table, run_id))},
        ).fetchall()
    finally:
        con.close()
    return sorted(rows, key=repr)


def _findings(home: Path, run_id: str) -> list[tuple]:
    con = duckdb.connect()
    try:
        return con.execute(
            "SELECT kind, path, group_id, is_keeper, action FROM read_parquet($p) ORDER BY ALL",
            {"p": str(Home(home).table_file("findings", run_id))},
        ).fetchall()
    finally:
        con.close()


def test_dask_local_cluster_finds_what_one_machine_finds(run_flow, sample, tmp_path) -> None:
    photos = sample[0]
    before = tree_digest(photos)
    local = run_flow(photos, tmp_path / "local")
    dist = run_flow(photos, tmp_path / "dask", config=DASK)
    assert local["status"] == dist["status"] == "completed"
    assert dist["validation"]["success"], dist["validation"]["failed"]

    found = _findings(tmp_path / "dask", dist["run_id"])
    assert {k for k, *_ in found} >= {"invalid", "duplicate", "dark"}  # planted defects found
    assert found == _findings(tmp_path / "local", local["run_id"])
    for table in COMPARED:
        assert _rows(tmp_path / "dask", table, dist["run_id"]) == _rows(
            tmp_path / "local", table, local["run_id"]
        ), table

    # the work was really spread: several shards, run in more than one worker process
    shards = dist["execution"]["shards"]
    inspect = [s for s in shards if s["step"] == "inspect"]
    vectors = [s for s in shards if s["step"] == "vectors"]
    assert len(inspect) >= 3 and len(vectors) >= 2
    assert sum(s["n"] for s in inspect) == local["summary"]["images"]
    workers = {(s["host"], s["pid"]) for s in shards}
    assert len(workers) >= 2, shards
    assert all(s["worker"].startswith("tcp://") for s in shards)
    assert os.getpid() not in {pid for _, pid in workers}
    # each vector shard stored its own cache file; no content hash was extracted twice
    cache = next((tmp_path / "dask" / "cache" / "features").iterdir())
    con = duckdb.connect()
    n_rows, n_hashes, n_files = con.execute(
        "SELECT count(*), count(DISTINCT sha256), count(DISTINCT filename) "
        "FROM read_parquet($g, filename = true)",
        {"g": str(cache / "*.parquet")},
    ).fetchall()[0]
    assert n_rows == n_hashes == dist["incremental"]["n_extracted"]
    assert n_files == len(vectors)
    assert tree_digest(photos) == before  # a dry run, on every engine


def test_dask_incremental_run_reuses_rows_and_vectors(run_flow, collection, tmp_path) -> None:
    """The shard path also reads only new files; the result equals a full local run's."""
    home = tmp_path / "home"
    run_flow(collection, home, config=DASK_AUTO)
    new = collection / "New"
    new.mkdir()
    photos = sorted((collection / "DCIM").rglob("*.jpg"))
    for i, src in enumerate(photos[:3]):
        (new / f"copy {i}.jpg").write_bytes(src.read_bytes())  # byte copies
    (new / "broken.jpg").write_bytes(photos[0].read_bytes()[:2000])
    with Image.open(photos[1]) as im:
        ImageOps.mirror(im.convert("RGB")).save(new / "mirrored.jpg", quality=90)
    inc = run_flow(collection, home, config=DASK_AUTO)
    full = run_flow(collection, tmp_path / "full", full=True)
    assert inc["incremental"]["mode"] == "incremental"
    assert inc["incremental"]["n_inspected"] == 5
    assert inc["incremental"]["n_extracted"] == 1  # byte copies: their vectors are cached
    assert [s["step"] for s in inc["execution"]["shards"]] == ["inspect", "vectors"]
    for table in COMPARED:
        assert _rows(home, table, inc["run_id"]) == _rows(
            tmp_path / "full", table, full["run_id"]
        ), table


def test_bad_engine_is_a_one_line_config_error() -> None:
    with pytest.raises(UserError) as exc:
        config_from_mapping({"execution": {"engine": "spark"}})
    assert "execution.engine" in str(exc.value) and "\n" not in str(exc.value)
    with pytest.raises(UserError, match="only used with engine: dask"):
        config_from_mapping({"execution": {"address": "tcp://127.0.0.1:8786"}})
    with pytest.raises(UserError, match="tcp://host:8786"):
        config_from_mapping({"execution": {"engine": "dask", "address": "127.0.0.1"}})


def test_shard_size_one_per_worker_within_bounds() -> None:
    ex = ExecutionConfig(engine="dask")
    assert ex.shard_size(1000, 2) == 500
    assert ex.shard_size(50, 2) == 100  # a shard costs a fastdup start: not too small
    assert ex.shard_size(1_000_000, 4) == 10_000  # big runs: small retry units, balance
    assert ExecutionConfig(engine="dask", shard_images=20).shard_size(1000, 2) == 20


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_scheduler_address_that_answers_nothing(prefect_server, collection, tmp_path) -> None:
    """A one-line error, exit code 2, no traceback; SOURCE untouched and no run started."""
    from prefect.settings import PREFECT_API_URL

    before = tree_digest(collection)
    address = f"tcp://127.0.0.1:{_free_port()}"
    cfg = tmp_path / "dask.yaml"
    cfg.write_text(
        f"execution: {{engine: dask, address: '{address}', connect_seconds: 2}}\n",
        encoding="utf-8",
    )
    home = tmp_path / "home"
    env = dict(os.environ, PREFECT_API_URL=str(PREFECT_API_URL.value()))
    p = subprocess.run(
        [sys.executable, "-m", "photo_curate.cli", "run", str(collection), "--config", str(cfg),
         "--home", str(home), "--apply"],
        capture_output=True, text=True, env=env, cwd=ROOT, timeout=300, check=False,
    )  # fmt: skip
    assert p.returncode == 2, p.stderr
    assert "Traceback" not in p.stderr + p.stdout
    lines = [line for line in p.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, p.stderr
    assert address in lines[0] and "no Dask scheduler answered" in lines[0]
    assert tree_digest(collection) == before
    assert not (home / "data" / "runs").exists()  # nothing was recorded, nothing to clean up
