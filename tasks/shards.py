"""Scale-out: the parallel steps as shard tasks on a Dask cluster (config `execution`).

`engine: dask` runs inspect and fastdup's vector extraction per shard as Prefect tasks of a
`DaskTaskRunner` (prefect-dask): on an existing scheduler (`execution.address`) or on a local
cluster of `execution.workers` processes started for the run. The work itself is the same
code as on one machine (tasks/inspect.py, tasks/fastdup_run.py): each shard writes its own
Parquet part and cache file under HOME, which every worker must see at the same path (one
machine, or a shared file system). fastdup still runs in a child process of its own per run.
"""

from __future__ import annotations

import os
import socket
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from prefect import task

from photo_curate.config import ExecutionConfig
from photo_curate.errors import UserError
from photo_curate.features import FeatureCache
from photo_curate.home import Home
from photo_curate.inspect_image import InspectOptions
from tasks.fastdup_run import ExtractShard, FastdupSpec, extract_shard
from tasks.inspect import InspectShard, inspect_shard


@dataclass(frozen=True)
class ShardReport:
    """What one shard did and where: the proof that the work was spread."""

    step: str  # "inspect" or "vectors"
    shard: int
    n: int  # images inspected, or vectors stored
    seconds: float
    worker: str  # the Dask worker's address ("" outside Dask)
    host: str
    pid: int


def _where() -> tuple[str, str, int]:
    try:
        from distributed import get_worker

        address = str(get_worker().address)
    except (ImportError, ValueError):
        address = ""
    return address, socket.gethostname(), os.getpid()


def _check_worker_can_fork() -> None:
    """Inspect runs a decoder pool in child processes; a daemonic Dask worker cannot."""
    import multiprocessing

    if multiprocessing.current_process().daemon:
        raise RuntimeError(
            "this Dask worker is a daemonic process and cannot start decoder processes: "
            "start workers with DASK_DISTRIBUTED__WORKER__DAEMON=False"
        )


def _decoders(workers: int) -> int:
    """Decoder processes of one shard: the configured number, else the worker host's cores."""
    return workers or (os.cpu_count() or 1)


@task(name="inspect shard", task_run_name="inspect shard {shard.index}")
def inspect_shard_task(
    source: str, home_root: str, run_id: str, shard: InspectShard, workers: int,
    opts: InspectOptions,
) -> ShardReport:  # fmt: skip
    """Decode check of one shard (no retries, as the whole-run inspect: it is deterministic)."""
    _check_worker_can_fork()
    t0 = time.monotonic()
    n = inspect_shard(Path(source), Home(Path(home_root)), run_id, shard, _decoders(workers), opts)
    return ShardReport("inspect", shard.index, n, round(time.monotonic() - t0, 3), *_where())


@task(
    name="fastdup vectors shard",
    task_run_name="fastdup vectors shard {shard.index}",
    retries=1,
    retry_delay_seconds=5,
)
def extract_shard_task(
    home_root: str, run_id: str, spec: FastdupSpec, shard: ExtractShard, cache_dir: str
) -> ShardReport:
    """fastdup `run_mode=1` on one shard (a crash or hang is retried once, in a fresh dir)."""
    t0 = time.monotonic()
    threads = spec.threads or min(32, 4 * (os.cpu_count() or 1))
    local = FastdupSpec(**{**spec.__dict__, "threads": threads})
    n = extract_shard(Home(Path(home_root)), run_id, local, shard, FeatureCache(Path(cache_dir)))
    return ShardReport("vectors", shard.index, n, round(time.monotonic() - t0, 3), *_where())


def _api_url() -> str | None:
    """The Prefect API this process talks to (also a temporary server's), for the workers:
    without it each worker process would start a temporary server of its own."""
    try:
        from prefect.client.orchestration import get_client

        with get_client(sync_client=True) as client:
            return str(client.api_url).rstrip("/")
    except Exception:
        return None


def check_scheduler(execution: ExecutionConfig) -> None:
    """An `address` that no scheduler answers is a one-line user error before the run starts."""
    if execution.engine == "dask" and execution.address:
        n_workers(execution)


def n_workers(execution: ExecutionConfig) -> int:
    """The worker processes the shards will share: the local cluster's, or the scheduler's
    (a one-line user error when it does not answer or has none)."""
    if not execution.address:
        return execution.workers
    from distributed import Client

    try:
        client = Client(execution.address, timeout=execution.connect_seconds, set_as_default=False)
    except (OSError, TimeoutError) as exc:
        raise UserError(
            f"execution.address {execution.address}: no Dask scheduler answered within "
            f"{execution.connect_seconds:g} s ({type(exc).__name__})"
        ) from None
    try:
        workers = len(client.scheduler_info(n_workers=-1).get("workers") or {})
    finally:
        client.close()
    if not workers:
        raise UserError(f"execution.address {execution.address}: the Dask scheduler has no workers")
    return workers


def task_runner(execution: ExecutionConfig) -> Any:
    """The Prefect task runner for the shard steps: a DaskTaskRunner on the configured
    scheduler, or on a local cluster of worker processes that lives as long as the steps."""
    import dask
    from prefect_dask import DaskTaskRunner

    if execution.address:
        return DaskTaskRunner(address=execution.address)
    # inspect's decoder pool needs worker processes that may have children
    dask.config.set({"distributed.worker.daemon": False})
    env = {"PREFECT_API_URL": url} if (url := _api_url()) else {}
    return DaskTaskRunner(
        cluster_class="distributed.LocalCluster",
        cluster_kwargs={
            "n_workers": execution.workers,
            "threads_per_worker": 1,
            "processes": True,
            "dashboard_address": None,
            "env": env,
        },
    )


def decoders_per_worker(execution: ExecutionConfig, analysis_workers: int) -> int:
    """A local cluster shares this machine's cores among its workers; a remote worker uses
    its own host's cores (0 = decided on the worker)."""
    if analysis_workers:
        return analysis_workers
    if execution.address:
        return 0
    return max(1, (os.cpu_count() or 1) // execution.workers)
