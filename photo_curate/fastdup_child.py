"""Entry point of the child process that runs fastdup exactly once.

photo-curate runs it for feature vectors (`run_mode=1`); bench/graph.py also times fastdup's
own neighbour graph (`run_mode=2`, with `threshold` and `k` in the spec) against ours.

fastdup must live in a process of its own: two runs in one process crash it, after a run it
ignores SIGTERM, and its import changes global state (pandas options, Sentry, a PyPI version
check). The parent (tasks/fastdup_run.py) starts ``python -m photo_curate.fastdup_child
SPEC.json`` and kills it with SIGKILL on timeout.
"""

from __future__ import annotations

import json
import os
import sys


def _quiet_environment() -> None:
    """Switch off fastdup's telemetry and network calls; must run before `import fastdup`."""
    os.environ["SENTRY_OPT_OUT"] = "1"
    os.environ["FASTDUP_PRODUCTION"] = "1"
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")


def main(spec_path: str) -> int:
    """Run fastdup with SPEC; with "-" import fastdup first, then read the spec path on stdin.

    The second form lets the parent start the child (fastdup's import takes 1.5 s) while the
    inspect step is still producing the files it will read.
    """
    _quiet_environment()
    import fastdup

    if spec_path == "-":
        spec_path = sys.stdin.readline().strip()
        if not spec_path:
            return 0  # the parent did not need fastdup after all
    with open(spec_path, encoding="utf-8") as fh:
        spec = json.load(fh)

    turi = {
        "nnmodel": 0,
        "ccthreshold": spec.get("cc_threshold", 0.96),
        "run_cc": 1,
        "run_sentry": 0,
        "run_stats": int(spec.get("run_stats", 0)),  # photo-curate measures images itself
        "store_int": 1,
        "min_input_image_height": 10,
        "min_input_image_width": 10,
    }
    rc = fastdup.run(
        input_dir=spec["input_list"],
        work_dir=spec["work_dir"],
        num_threads=spec["threads"],
        threshold=spec.get("threshold", 0.9),
        lower_threshold=spec.get("lower_threshold", 0.05),
        nearest_neighbors_k=spec.get("k", 2),
        run_mode=spec.get("run_mode", 0),
        turi_param=",".join(f"{k}={v}" for k, v in turi.items()),
        verbose=False,
    )
    return 0 if rc in (0, None) else int(rc)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
