"""Feature vectors for the graph benchmark, cached under bench/.cache/vectors/ as feature caches.

- `real_vectors(n)`: fastdup's vectors (`run_mode=1`, its model, as curate runs it) of the n
  distinct real-photo JPEGs of bench/corpus.py's `distinct_collection(n)`.
- `synthetic_vectors(n)`: clustered vectors of fastdup's dimension: cluster centres are
  mixtures of two real vectors (so the directions and the spread of similarities are those of
  real photos), members are a centre plus Gaussian noise of a per-cluster scale (cosine to the
  centre about 0.70 to 0.99: bursts and near copies to loose scenes), one cluster per ten
  vectors on average. Half of the noise's energy is shaped like the real vectors' covariance
  and half is isotropic: on the 20,000 real vectors, half of the energy of the difference
  between an image and its ten nearest lies on the first 128 principal axes (median 0.50),
  where isotropic noise alone would put 22 %.

Each is a folder holding `features/*.parquet` (sha256, feature: what HOME/cache/features/<key>
holds) and `images.parquet` (an `images` table naming one valid file per vector), built in a
staging folder and renamed into place when complete.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from bench.corpus import distinct_collection, image_files
from bench.photos import CACHE
from photo_curate.features import DIM, FEATURES_CSV, FEATURES_DAT
from photo_curate.schema import arrow_schema

VECTORS = CACHE / "vectors"
_BATCH = 65536


SCHEMA = pa.schema([("sha256", pa.string()), ("feature", pa.list_(pa.float32(), DIM))])


def _feature_table(shas: list[str], feats: np.ndarray) -> pa.Table:
    column = pa.FixedSizeListArray.from_arrays(pa.array(feats.astype("<f4").ravel()), DIM)
    return pa.Table.from_arrays([pa.array(shas, pa.string()), column], schema=SCHEMA)


def _write_images(folder: Path) -> int:
    """images.parquet: one valid image per cached vector, path and analysis id by hash."""
    con = duckdb.connect()
    try:
        glob = str(folder / "features" / "*.parquet")
        n = con.execute("SELECT count(*) FROM read_parquet($g)", {"g": glob}).fetchall()[0][0]
        schema = arrow_schema("images")
        cols = ", ".join(
            {"run_id": "'bench' AS run_id", "path": "printf('v/%08d.jpg', i) AS path",
             "sha256": "sha256", "is_valid": "true AS is_valid",
             "analysis_id": "i AS analysis_id"}.get(f.name, f"NULL AS \"{f.name}\"")
            for f in schema
        )  # fmt: skip
        con.execute(
            f"""COPY (SELECT {cols} FROM (SELECT sha256, row_number() OVER (ORDER BY sha256) - 1
                                          AS i FROM read_parquet($g)))
                TO '{folder / "images.parquet"}' (FORMAT parquet)""",
            {"g": glob},
        )
    finally:
        con.close()
    return int(n)


def _done(folder: Path, params: dict) -> bool:
    f = folder / "params.json"
    return f.exists() and json.loads(f.read_text()) == params


def _finish(stage: Path, final: Path, params: dict) -> Path:
    _write_images(stage)
    (stage / "params.json").write_text(json.dumps(params))
    shutil.rmtree(final, ignore_errors=True)
    os.replace(stage, final)
    return final


def real_vectors(n: int, seed: int = 0, threads: int = 8) -> Path:
    """fastdup's vectors of `distinct_collection(n, seed)` (extracted once, cached)."""
    images = distinct_collection(n, seed=seed)
    params = {"kind": "real", "n": n, "seed": seed, "collection": str(images), "v": 1}
    final = VECTORS / f"real-{n}-seed{seed}"
    if _done(final, params):
        return final
    stage = final.with_name(final.name + ".building")
    shutil.rmtree(stage, ignore_errors=True)
    (stage / "features").mkdir(parents=True)
    files = sorted(str(p) for p in image_files(images))
    (stage / "list.txt").write_text("".join(f"{f}\n" for f in files))
    spec = {"input_list": str(stage / "list.txt"), "work_dir": str(stage / "fd"),
            "threads": threads, "run_mode": 1}  # fmt: skip
    (stage / "spec.json").write_text(json.dumps(spec))
    env = {**os.environ, "SENTRY_OPT_OUT": "1", "FASTDUP_PRODUCTION": "1"}
    print(f"extracting fastdup's vectors of {n} photos (once)", flush=True)
    with open(stage / "fastdup.log", "wb") as log:
        subprocess.run(
            [sys.executable, "-m", "photo_curate.fastdup_child", str(stage / "spec.json")],
            check=True, stdout=log, stderr=subprocess.STDOUT, env=env,
        )  # fmt: skip
    names = (stage / "fd" / FEATURES_CSV).read_text().splitlines()[1:]
    feats = np.fromfile(stage / "fd" / FEATURES_DAT, dtype="<f4").reshape(-1, DIM)
    shas = [hashlib.sha256(Path(line.split(",", 1)[1]).read_bytes()).hexdigest() for line in names]
    pq.write_table(_feature_table(shas, feats), stage / "features" / "real.parquet")
    shutil.rmtree(stage / "fd")
    return _finish(stage, final, params)


def _real_pool() -> np.ndarray:
    """Unit vectors of the largest real set at hand (the mixtures' ingredients)."""
    sets = sorted(VECTORS.glob("real-*-seed0"), key=lambda p: int(p.name.split("-")[1]))
    sets = [s for s in sets if _done(s, json.loads((s / "params.json").read_text()))]
    if not sets:
        sets = [real_vectors(2000)]
    table = pq.read_table(sets[-1] / "features" / "real.parquet")
    flat = table.column("feature").combine_chunks().flatten().to_numpy()
    x = flat.reshape(-1, DIM).astype(np.float64)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def synthetic_vectors(n: int, seed: int = 0) -> Path:
    """n clustered vectors (see the module docstring), generated in batches, cached."""
    params = {"kind": "synthetic", "n": n, "seed": seed, "v": 2}
    final = VECTORS / f"synthetic-{n}-seed{seed}"
    if _done(final, params):
        return final
    pool = _real_pool()
    w, v = np.linalg.eigh(np.cov(pool.T))
    shape = (v * np.sqrt(np.clip(w, 0, None) / w.clip(0).sum() * DIM)) @ v.T  # E|z A|^2 = DIM
    stage = final.with_name(final.name + ".building")
    shutil.rmtree(stage, ignore_errors=True)
    (stage / "features").mkdir(parents=True)
    rng = np.random.default_rng(seed)
    n_clusters = max(1, n // 10)
    a = rng.integers(0, len(pool), n_clusters)
    b = rng.integers(0, len(pool), n_clusters)
    w = rng.uniform(0.0, 1.0, n_clusters)
    noise = rng.uniform(0.004, 0.04, n_clusters)  # cosine to the centre ~0.99 to ~0.70
    writer = pq.ParquetWriter(stage / "features" / "synthetic.parquet", SCHEMA)
    for start in range(0, n, _BATCH):
        m = min(_BATCH, n - start)
        c = rng.integers(0, n_clusters, m)
        centre = pool[a[c]] * (1 - w[c, None]) + pool[b[c]] * w[c, None]
        centre /= np.linalg.norm(centre, axis=1, keepdims=True)
        iso, cov = rng.standard_normal((m, DIM)), rng.standard_normal((m, DIM)) @ shape
        x = centre + (iso + cov) * np.sqrt(0.5) * noise[c, None]
        shas = [hashlib.sha256(f"synthetic-{seed}-{start + i}".encode()).hexdigest()
                for i in range(m)]  # fmt: skip
        writer.write_table(_feature_table(shas, x * 20.0))  # fastdup's vectors are ~20 long
    writer.close()
    return _finish(stage, final, params)


def vectors(n: int, seed: int = 0, real_max: int = 20000) -> Path:
    """Real vectors up to `real_max`, synthetic ones beyond."""
    return real_vectors(n, seed) if n <= real_max else synthetic_vectors(n, seed)


if __name__ == "__main__":
    for arg in sys.argv[1:]:
        print(vectors(int(arg)))
