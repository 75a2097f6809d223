"""The `curate` flow: one curation run of a folder, step by step, as Prefect tasks.

acquire (an archive or URL manifest becomes a folder inside HOME) -> ingest -> inspect ->
fastdup -> parse -> findings (+plan) -> validate -> [apply] -> report, with the run
recorded in `runs` at the start and the end (also when it fails). The flow only orchestrates;
the work is in `tasks/`. Everything a run did is reproducible from its recorded config
(`runs.config`).
"""

from __future__ import annotations

import shutil
import time
from contextlib import ExitStack
from pathlib import Path
from typing import Any

from prefect import flow, get_run_logger

from photo_curate.artifacts import publish_run_artifacts
from photo_curate.changes import changes_since_previous
from photo_curate.config import CurateConfig, config_from_mapping
from photo_curate.home import Home
from photo_curate.inspect_image import InspectOptions
from photo_curate.locking import exclusive
from photo_curate.runs import mark_interrupted, new_run_id, now
from photo_curate.sources import check_source, describe
from photo_curate.summary import compute
from photo_curate.validation import warm_up
from tasks.acquire import acquire
from tasks.apply import apply_task, check_writable, source_lock
from tasks.fastdup_run import FastdupSpec, discard_prestarted, fastdup_task, prestart
from tasks.findings import findings_task
from tasks.history import record, record_task
from tasks.ingest import ingest_task
from tasks.inspect import inspect_task
from tasks.parse import parse_task
from tasks.report import report_task
from tasks.validate import validate_task


def _run_name() -> str:
    from prefect.runtime import flow_run

    params = flow_run.parameters or {}
    name = Path(str(params.get("source", "collection"))).name or "collection"
    return f"curate-{name}-{time.strftime('%Y-%m-%d-%H%M')}"


def _fastdup_spec(cfg: CurateConfig) -> FastdupSpec:
    f = cfg.fastdup
    return FastdupSpec(
        threads=cfg.fastdup_threads(),
        k=f.nearest_neighbors_k,
        threshold=f.min_similarity,
        outlier_percentile=f.outlier_percentile,
        timeout_seconds=f.timeout_seconds,
    )


@flow(name="curate", flow_run_name=_run_name, persist_result=False, log_prints=False)
def curate(
    source: str,
    home: str | None = None,
    config: dict[str, Any] | None = None,
    apply: bool = False,
    action: str | None = None,
) -> dict[str, Any]:
    """Curate SOURCE into HOME's catalog; a dry run unless `apply` (then `action` or config's)."""
    cfg = config_from_mapping(config or {})
    if action:
        cfg = config_from_mapping(
            {
                **cfg.model_dump(mode="json"),
                "actions": {**cfg.actions.model_dump(), "action": action},
            }
        )
    origin = check_source(source)
    if apply and origin.kind == "folder":
        check_writable(origin.path)
    h = Home.resolve(home).ensure()
    log = get_run_logger()
    # one run at a time per home and per SOURCE (a run may apply; see tasks/apply.py)
    with ExitStack() as locks:
        locks.enter_context(exclusive(h.lock_file, f"curation home {h.root}"))
        if origin.kind == "folder":
            locks.enter_context(exclusive(source_lock(origin.path), f"SOURCE {origin.path}"))
        for stale in mark_interrupted(h):
            log.warning("run %s had been interrupted; marked failed", stale)
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
        steps: dict[str, float] = {}
        try:
            acq = _timed(steps, "acquire", acquire, origin, h, run_id, cfg.sources)
            src = acq.folder
            if origin.kind != "folder":  # the folder is inside HOME: lock it like a SOURCE
                row["source_dir"] = str(src)
                locks.enter_context(exclusive(source_lock(src), f"SOURCE {src}"))
            result = _steps(src, h, run_id, cfg, steps, apply, row)
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
            discard_prestarted(run_id)
            row.update(
                status="failed",
                finished_at=now(),
                step_seconds=steps,
                error=f"{type(exc).__name__}: {exc}"[:2000],
            )
            record(h, row)
            raise


def _flow_run_id() -> str | None:
    try:
        from prefect.runtime import flow_run

        return str(flow_run.id) if flow_run.id else None
    except Exception:
        return None


def _timed(steps: dict[str, float], name: str, fn: Any, *args: Any) -> Any:
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
    apply: bool,
    row: dict[str, Any],
) -> dict[str, Any]:
    """Run the steps; fill `row` (the run's history record) as facts become known."""
    root = str(h.root)
    log = get_run_logger()
    ing = _timed(steps, "ingest", ingest_task, str(src), root, run_id, cfg.analysis.include_hidden)
    row.update(n_files=ing.n_files, n_images=ing.n_images, n_skipped=ing.n_skipped)
    if ing.n_images >= 2:
        prestart(h, run_id)  # fastdup's import (1.5 s) overlaps the inspect step
    opts = InspectOptions(
        max_pixels=cfg.analysis.max_pixels,
        max_file_bytes=cfg.analysis.max_file_mib * 1024**2,
        thumbnail_dir=str(h.thumbnails),
    )
    ins = _timed(
        steps, "inspect", inspect_task, str(src), root, run_id, cfg.workers(), opts, ing.n_images
    )
    row["n_invalid"] = ins.n_invalid
    warm_up()  # import great-expectations while fastdup runs (its serial phases leave a core)
    fd = _timed(steps, "fastdup", fastdup_task, root, run_id, _fastdup_spec(cfg))
    log.info(fd.message)
    _timed(steps, "parse", parse_task, root, run_id, fd.work_dir)
    _timed(steps, "findings", findings_task, root, run_id, cfg)
    val = _timed(steps, "validate", validate_task, root, run_id, str(src))
    status = "completed" if val.success else "validation_failed"
    if not val.success:
        log.error("validation failed: %s", "; ".join(val.failed))
    applied = None
    if apply and not val.success:
        log.error("not applying the plan: validation failed")
    elif apply:
        applied = _timed(
            steps, "apply", apply_task, root, run_id, str(src), cfg.actions.action,
            list(cfg.actions.protected),
        )  # fmt: skip
        if applied.stopped:
            log.error("apply stopped: %s", applied.stopped)  # resumable: the run stays valid
        elif not applied.success:
            status = "validation_failed"
    summary = compute(h, run_id)
    row.update(
        status=status,
        finished_at=now(),
        n_findings=sum(k["files"] for k in summary["kinds"].values()),
        counts={k: v["files"] for k, v in summary["kinds"].items()},
    )
    record(h, row)  # the report reads the run as recorded
    changes = changes_since_previous(h, run_id, row["source"])  # what was named, e.g. a zip
    report = _timed(steps, "report", report_task, root, run_id, str(src))
    _cleanup(h, run_id)
    return {
        "summary": summary,
        "changes": changes,
        "report": report,
        "validation": {"success": val.success, "checks": val.n_checks, "failed": val.failed},
        "fastdup": fd.message,
        "applied": applied.as_dict() if applied else None,
        "steps": steps,
    }


def _cleanup(h: Home, run_id: str) -> None:
    """Drop the analysis copies (thumbnails for the report are cached by then)."""
    analysis = h.run_dir(run_id) / "analysis"
    if analysis.exists():
        shutil.rmtree(analysis, ignore_errors=True)
