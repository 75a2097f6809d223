"""great-expectations suites over the run's tables (loaded from DuckDB into DataFrames).

GX 1.24 cannot validate DuckDB through SQLAlchemy, so DuckDB computes compact frames (one row
per image, finding or group) and GX validates those. `import great_expectations` takes a few
seconds: it is imported here only, and `warm_up()` starts it in a background thread while the
slow steps run.
"""

from __future__ import annotations

import logging
import os
import threading
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pandas as pd

_warm: threading.Thread | None = None


def warm_up() -> None:
    """Import great_expectations in the background (it is needed only at the end of a run)."""
    global _warm
    os.environ.setdefault("TQDM_DISABLE", "1")  # GX's metric progress bars
    if _warm is None:
        _warm = threading.Thread(target=_import_gx, name="gx-import", daemon=True)
        _warm.start()


def _import_gx() -> None:
    import great_expectations  # noqa: F401


@dataclass(frozen=True)
class Check:
    """One expectation, by its GX class name and keyword arguments."""

    expectation: str
    kwargs: dict[str, Any]


@dataclass(frozen=True)
class Outcome:
    suite: str
    expectation: str
    column: str | None
    success: bool
    observed: str


def run_suites(suites: dict[str, tuple[pd.DataFrame, list[Check]]]) -> list[Outcome]:
    """Validate each DataFrame with its checks in one ephemeral GX context."""
    if _warm is not None:
        _warm.join()
    os.environ.setdefault("TQDM_DISABLE", "1")  # GX's metric progress bars
    import great_expectations as gx
    import great_expectations.expectations as gxe

    logging.getLogger("great_expectations").setLevel(logging.ERROR)
    ctx = gx.get_context(mode="ephemeral")
    ctx.variables.progress_bars = {"globally": False, "metric_calculations": False}
    source = ctx.data_sources.add_pandas("curate")
    outcomes: list[Outcome] = []
    for name, (frame, checks) in suites.items():
        asset = source.add_dataframe_asset(name=name)
        batch_def = asset.add_batch_definition_whole_dataframe(f"{name}-all")
        suite = ctx.suites.add(gx.ExpectationSuite(name=f"curate-{name}"))
        for check in checks:
            suite.add_expectation(getattr(gxe, check.expectation)(**check.kwargs))
        vd = ctx.validation_definitions.add(
            gx.ValidationDefinition(name=f"validate-{name}", data=batch_def, suite=suite)
        )
        result = vd.run(batch_parameters={"dataframe": frame})
        for r in result.results:
            cfg = r.expectation_config
            observed = r.result.get("observed_value")
            if observed is None and "unexpected_count" in r.result:
                observed = f"{r.result['unexpected_count']} unexpected"
                sample = r.result.get("partial_unexpected_list") or []
                if sample:
                    observed += f", e.g. {sample[:3]}"
            outcomes.append(
                Outcome(
                    suite=name,
                    expectation=cfg.type,
                    column=cfg.kwargs.get("column") or cfg.kwargs.get("column_A"),
                    success=bool(r.success),
                    observed=str(observed),
                )
            )
    return outcomes
