"""The `curate` flow: one curation run of a folder, step by step, as Prefect tasks.

acquire (an archive or URL manifest becomes a folder inside HOME) -> ingest -> inspect ->
fastdup (vectors) -> neighbours -> parse -> verify (pixels of candidate pairs) ->
findings (+plan) -> validate -> [apply] -> report, with the run
recorded in `runs` at the start and the end (also when it fails). The flow only orchestrates;
the work is in `tasks/`. Everything a run did is reproducible from its recorded config
(`runs.config`).
"""

from __future__ import annotations

import dataclasses
import functools
import shutil
import time
from contextlib import ExitStack
from pathlib import Path
from typing import Any

from prefect import flow, get_run_logger

from photo_curate import decisions
from photo_curate.artifacts import publish_run_artifacts
from photo_curate.config import CurateConfig, ExecutionConfig
from photo_curate.features import FeatureCache
from photo_curate.home import Home
from photo_curate.incremental import (
    Base,
    carried_checks,
    carry_over,
    feature_cache,
    find_base,
    inspect_key,
    results_key,
    unchanged,
)
from photo_curate.inspect_image import InspectOptions
from photo_curate.locking import exclusive
from photo_curate.neighbours import GraphSpec
from photo_curate.plain_flow import plain_flow
from photo_curate.preflight import check_run
from photo_curate.report import report_facts
from photo_curate.runs import StepTimes, ended_by, mark_interrupted, new_run_id, now, read_run
from photo_curate.sources import describe
from photo_curate.validation import warm_up
from tasks.acquire import acquire
from tasks.apply import apply_task, recover_interrupted, source_lock
from tasks.approval import Answer, await_approval, checked
from tasks.fastdup_run import (
    FastdupResult,
    FastdupSpec,
    discard_prestarted,
    fastdup_task,
    plan_extraction,
    prestart,
)
from tasks.findings import findings_task
from tasks.history import record, record_task
from tasks.ingest import ingest_task
from tasks.inspect import InspectResult, Reuse, inspect_task, merge_shards, plan_shards
from tasks.neighbours import neighbours_task
from tasks.parse import PairSpec, parse_task
from tasks.report import report_task
from tasks.shards import (
    ShardReport,
    check_scheduler,
    decoders_per_worker,
    extract_shard_task,
    inspect_shard_task,
    n_workers,
    task_runner,
)
from tasks.validate import ValidationResult, count_regular_files, validate_task
from tasks.verify import verify_task


@dataclasses.dataclass(frozen=True)
class ApplyRequest:
    """Whether the run applies its plan, and how long it waits for a person's approval first
    (None: it does not wait)."""

    wanted: bool
    approval_timeout: int | None = None

    def __bool__(self) -> bool:
        return self.wanted


def _run_name() -> str:
    from prefect.runtime import flow_run

    params = flow_run.parameters or {}
    name = Path(str(params.get("source", "collection"))).name or "collection"
    return f"curate-{name}-{time.strftime('%Y-%m-%d-%H%M')}"


def _fastdup_spec(cfg: CurateConfig) -> FastdupSpec:
    return FastdupSpec(threads=cfg.fastdup_threads(), timeout_seconds=cfg.fastdup.timeout_seconds)


def _graph_spec(cfg: CurateConfig) -> GraphSpec:
    f = cfg.fastdup
    return GraphSpec(k=f.nearest_neighbors_k, exact_max=f.exact_search_max)


def _pair_spec(cfg: CurateConfig) -> PairSpec:
    f = cfg.fastdup
    return PairSpec(f.nearest_neighbors_k, f.min_similarity, cfg.rules.outlier_similarity)


@plain_flow(name="curate", flow_run_name=_run_name, persist_result=False, log_prints=False)
def curate(
    source: str,
    home: str | None = None,
    config: dict[str, Any] | None = None,
    apply: bool = False,
    action: str | None = None,
    full: bool = False,
    yes: bool = False,
    approval_timeout_seconds: int | None = None,
) -> dict[str, Any]:
    """Curate SOURCE into HOME's catalog; a dry run unless `apply` (then `action` or config's;
    a permanent delete also needs `yes`). With `approval_timeout_seconds`, an apply first waits
    that long for a person to approve it in the Prefect UI (no answer: nothing is applied).

    Incremental unless `full` (or `analysis.incremental: false`): files unchanged since the
    last completed run are not read again (see photo_curate/incremental.py)."""
    checked = check_run(source, home, config, apply, action, yes)  # done once by the CLI
    cfg, origin = checked.config, checked.source
    check_scheduler(cfg.execution)  # engine dask with an address: it must answer, or nothing starts
    h = checked.home.ensure()
    log = get_run_logger()
    # one run at a time per home and per SOURCE (a run may apply; see tasks/apply.py)
    with ExitStack() as locks:
        # a few seconds' grace: a run killed a moment ago may still be letting go of it
        locks.enter_context(exclusive(h.lock_file, f"curation home {h.root}", wait_seconds=3))
        if origin.kind == "folder":
            locks.enter_context(exclusive(source_lock(origin.path), f"SOURCE {origin.path}"))
        for stale in mark_interrupted(h):
            log.warning("run %s had ended without recording how; marked interrupted", stale)
        if origin.kind == "folder":  # a killed apply: every photo whole again before the scan
            for settled in recover_interrupted(h, origin.path):
                log.warning("run %s: its interrupted apply or undo was settled", settled)
        run_id = new_run_id()
        row: dict[str, Any] = {
            "run_id": run_id,
            "started_at": now(),
            "source": str(origin.path),
            "source_kind": origin.kind,
            "source_dir": str(origin.path) if origin.kind == "folder" else None,
            "status": "running",
            "config": cfg.to_json(),
            "flow_run_id": _flow_run_id(),
        }
        record(h, row)
        log.info("run %s: %s (%s)", run_id, origin.path, origin.kind)
        steps = StepTimes(h.run_dir(run_id))
        try:
            acq = _timed(steps, "acquire", acquire, origin, h, run_id, cfg.sources)
            src = acq.folder
            if origin.kind != "folder":  # the folder is inside HOME: lock it like a SOURCE
                row["source_dir"] = str(src)
                locks.enter_context(exclusive(source_lock(src), f"SOURCE {src}"))
            wish = ApplyRequest(apply, approval_timeout_seconds)
            result = _steps(src, h, run_id, cfg, steps, wish, row, full)
            row["step_seconds"] = steps
            record_task(str(h.root), row)
            result.update(
                run_id=run_id,
                status=row["status"],
                home=str(h.root),
                source={"kind": acq.kind, "folder": str(src), "counts": acq.counts,
                        "line": describe(acq)},
            )  # fmt: skip
            publish_run_artifacts(h, run_id, result)
            return result
        except BaseException as exc:
            status, error = ended_by(exc, steps.current)
            discard_prestarted(run_id)  # fastdup children waiting for work: killed
            row.update(
                status=status, finished_at=now(), step_seconds=steps, step=steps.current,
                error=error,
            )  # fmt: skip
            record(h, row)
            raise


def _flow_run_id() -> str | None:
    try:
        from prefect.runtime import flow_run

        return str(flow_run.id) if flow_run.id else None
    except Exception:
        return None


def _timed(steps: dict[str, float], name: str, fn: Any, *args: Any) -> Any:
    if isinstance(steps, StepTimes):
        steps.start(name)
    t0 = time.monotonic()
    try:
        return fn(*args)
    finally:
        steps[name] = round(time.monotonic() - t0, 3)


def _steps(
    src: Path,
    h: Home,
    run_id: str,
    cfg: CurateConfig,
    steps: dict[str, float],
    apply: ApplyRequest,
    row: dict[str, Any],
    full: bool,
) -> dict[str, Any]:
    """Run the steps; fill `row` (the run's history record) as facts become known."""
    root = str(h.root)
    log = get_run_logger()
    ing = _timed(steps, "ingest", ingest_task, str(src), root, run_id, cfg.analysis.include_hidden)
    row.update(n_files=ing.n_files, n_images=ing.n_images, n_skipped=ing.n_skipped)
    opts = InspectOptions(
        max_pixels=cfg.analysis.max_pixels,
        max_file_bytes=cfg.analysis.max_file_mib * 1024**2,
        thumbnail_dir=str(h.thumbnails),
    )
    key = inspect_key(opts)
    cache = feature_cache(h, key)
    base = None
    if cfg.analysis.incremental and not full:
        base = find_base(h, run_id, row["source"], key)  # what was named
    results = results_key(key, cfg, decisions.digest(h))  # a new verdict: results change
    row.update(inspect_key=key, results_key=results, mode="incremental" if base else "full")
    row["reused_from"] = base.run_id if base else None
    if base and _nothing_changed(h, base, run_id, results, cache, src, ing.n_files):
        return _carry_over(src, h, run_id, base, cfg, steps, apply, row)
    reuse = Reuse(base, cache) if base else None
    sharded = cfg.execution.engine == "dask"
    if ing.n_images and not sharded:  # fastdup's import (1.5 s) overlaps the inspect step
        prestart(h, run_id)
    spec = _fastdup_spec(cfg)
    shards: list[ShardReport] = []
    if sharded:
        ins, fd, shards = _sharded(src, h, run_id, cfg, opts, reuse, spec, str(cache.folder), steps)
    else:
        ins = _timed(steps, "inspect", inspect_task, str(src), root, run_id, cfg.workers(), opts,
                     reuse)  # fmt: skip
    row.update(n_invalid=ins.n_invalid, n_inspected=ins.n_inspected)
    if base:
        log.info("%d of %d images new or changed since run %s", ins.n_inspected, ins.n_images,
                 base.run_id)  # fmt: skip
    if not sharded:
        warm_up()  # import great-expectations while fastdup runs (its serial phases leave a core)
        fd = _timed(steps, "fastdup", fastdup_task, root, run_id, spec, str(cache.folder))
    row["n_extracted"] = fd.n_extracted
    log.info(fd.message)
    nb = _timed(steps, "neighbours", neighbours_task, root, run_id, str(cache.folder),
                _graph_spec(cfg), row["source"], base.run_id if base else None)  # fmt: skip
    log.info(nb.message())
    _timed(steps, "parse", parse_task, root, run_id, _pair_spec(cfg))
    ver = _timed(steps, "verify", verify_task, root, run_id, cfg, str(src))
    log.info("pixels compared: %d candidate pairs (%d new): %s", ver.n_candidates,
             ver.n_measured, ver.relations)  # fmt: skip
    _timed(steps, "findings", findings_task, root, run_id, cfg)
    val = _timed(steps, "validate", validate_task, root, run_id, str(src))
    result = _finish(src, h, run_id, cfg, steps, apply, row, val, fd.message)
    result["execution"] = {
        "engine": cfg.execution.engine,
        "shards": [dataclasses.asdict(r) for r in shards],
    }
    return result


@dataclasses.dataclass(frozen=True)
class _ShardsOutcome:
    inspect: InspectResult
    n_valid: int
    n_new: int
    n_vector_shards: int
    reports: list[ShardReport]
    seconds: dict[str, float]


@flow(name="curate-shards", persist_result=False, validate_parameters=False, log_prints=False)
def curate_shards(
    source: str,
    home_root: str,
    run_id: str,
    reuse: Reuse | None,
    opts: InspectOptions,
    spec: FastdupSpec,
    cache_dir: str,
    execution: ExecutionConfig,
    workers: int,
    decoders: int,
) -> _ShardsOutcome:
    """The parallel steps, run on this flow's task runner (a DaskTaskRunner, see
    tasks/shards.py): inspect per shard, one `images` table from the parts, then fastdup's
    vectors per shard into the feature cache. The neighbour search runs afterwards, here."""
    h = Home(Path(home_root))
    t0 = time.monotonic()
    size = functools.partial(execution.shard_size, n_workers=workers)
    plan = plan_shards(h, run_id, reuse, size)
    futures = [
        inspect_shard_task.submit(source, home_root, run_id, s, decoders, opts) for s in plan
    ]
    reports = [f.result() for f in futures]
    ins = merge_shards(h, run_id, len(plan))
    t1 = time.monotonic()
    warm_up()  # great-expectations' import overlaps the vector shards
    fastdup_dir = h.run_dir(run_id) / "fastdup"
    shutil.rmtree(fastdup_dir, ignore_errors=True)  # always a fresh work dir
    n_valid, lists = plan_extraction(h, run_id, FeatureCache(Path(cache_dir)), size)
    futures = [extract_shard_task.submit(home_root, run_id, spec, s, cache_dir) for s in lists]
    reports += [f.result() for f in futures]
    n_new = sum(r.n for r in reports if r.step == "vectors")
    seconds = {"inspect": round(t1 - t0, 3), "fastdup_vectors": round(time.monotonic() - t1, 3)}
    return _ShardsOutcome(ins, n_valid, n_new, len(lists), reports, seconds)


def _sharded(
    src: Path,
    h: Home,
    run_id: str,
    cfg: CurateConfig,
    opts: InspectOptions,
    reuse: Reuse | None,
    spec: FastdupSpec,
    cache_dir: str,
    steps: dict[str, float],
) -> tuple[InspectResult, FastdupResult, list[ShardReport]]:
    """engine dask: the shard steps on the configured cluster (the neighbours run here)."""
    ex = cfg.execution
    decoders = decoders_per_worker(ex, cfg.analysis.workers)
    run_shards = curate_shards.with_options(task_runner=task_runner(ex))
    shard_spec = dataclasses.replace(spec, threads=cfg.fastdup.threads)  # 0: the worker decides
    out = _timed(steps, "shards", run_shards, str(src), str(h.root), run_id, reuse, opts,
                 shard_spec, cache_dir, ex, n_workers(ex), decoders)  # fmt: skip
    steps.update(out.seconds)
    where = sorted({(r.host, r.pid) for r in out.reports})
    get_run_logger().info(
        "dask: %d inspect and %d vector shard(s) ran in %d worker process(es)",
        sum(r.step == "inspect" for r in out.reports), out.n_vector_shards, len(where),
    )  # fmt: skip
    msg = (
        f"fastdup extracted {out.n_new} vectors of {out.n_valid} valid images in "
        f"{out.n_vector_shards} shard(s)"
    )
    return out.inspect, FastdupResult("ran", None, out.n_valid, msg, 0.0, out.n_new), out.reports


def _nothing_changed(
    h: Home, base: Base, run_id: str, results: str, cache: Any, src: Path, n_files: int
) -> bool:
    """The same files, settings, rules and reusable rows as the base run, and (counted on disk
    independently of the scan, as the validation does) the same number of files."""
    same = unchanged(h, base, run_id, results, cache)
    return same and count_regular_files(src, h.root) == n_files


def _carry_over(
    src: Path,
    h: Home,
    run_id: str,
    base: Base,
    cfg: CurateConfig,
    steps: dict[str, float],
    apply: ApplyRequest,
    row: dict[str, Any],
) -> dict[str, Any]:
    """Nothing changed since the base run: its results (validated then) become this run's."""
    _timed(steps, "carry_over", carry_over, h, base, run_id)
    msg = f"nothing changed since run {base.run_id}: its results were carried over"
    get_run_logger().info(msg)
    row.update(
        mode="unchanged",
        n_invalid=(read_run(h, base.run_id) or {}).get("n_invalid"),  # the same images rows
        n_inspected=0,
        n_extracted=0,
    )
    val = ValidationResult(True, carried_checks(h, run_id), [])
    return _finish(src, h, run_id, cfg, steps, apply, row, val, msg)


def _finish(
    src: Path,
    h: Home,
    run_id: str,
    cfg: CurateConfig,
    steps: dict[str, float],
    apply: ApplyRequest,
    row: dict[str, Any],
    val: ValidationResult,
    fastdup_message: str,
) -> dict[str, Any]:
    """Apply (if asked and valid), record, report."""
    root = str(h.root)
    log = get_run_logger()
    status = "completed" if val.success else "validation_failed"
    if not val.success:
        log.error("validation failed: %s", "; ".join(val.failed))
    applied = None
    approval = None
    if apply and not val.success:
        log.error("not applying the plan: validation failed")
    elif apply and apply.approval_timeout is not None:
        answer = _timed(steps, "approval", await_approval, run_id, apply.approval_timeout)
        answer = checked(h, run_id, answer)
        approval = answer.verdict
        log.info("approval: %s", approval)
    else:
        answer = Answer("approved")
    if apply and val.success and answer.verdict == "approved":
        applied = _timed(
            steps, "apply", apply_task, root, run_id, str(src), cfg.actions.action,
            list(cfg.actions.protected), answer.exclude,
        )  # fmt: skip
        if applied.stopped:
            log.error("apply stopped: %s", applied.stopped)  # resumable: the run stays valid
        elif not applied.success:
            status = "validation_failed"
    facts = report_facts(h, run_id, row["source"])  # what was named, e.g. a zip
    summary = facts["summary"]
    row.update(
        status=status,
        finished_at=now(),
        n_findings=sum(k["files"] for k in summary["kinds"].values()),
        counts={k: v["files"] for k, v in summary["kinds"].items()},
    )
    record(h, row)  # the report reads the run as recorded
    report = _timed(steps, "report", report_task, root, run_id, str(src), facts)
    _cleanup(h, run_id)
    return {
        "summary": summary,
        "changes": facts["changes"],
        "previous_summary": facts["previous"],
        "report": report,
        "validation": {"success": val.success, "checks": val.n_checks, "failed": val.failed},
        "fastdup": fastdup_message,
        "incremental": {
            k: row.get(k) for k in ("mode", "reused_from", "n_inspected", "n_extracted")
        },
        "applied": applied.as_dict() if applied else None,
        "approval": approval,
        "steps": steps,
    }


def _cleanup(h: Home, run_id: str) -> None:
    """Drop the analysis copies (thumbnails for the report are cached by then)."""
    analysis = h.run_dir(run_id) / "analysis"
    if analysis.exists():
        shutil.rmtree(analysis, ignore_errors=True)
