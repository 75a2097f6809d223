"""Entry point of the child process that runs fastdup exactly once.

fastdup must live in a process of its own: two runs in one process crash it, after a run it
ignores SIGTERM, and its import changes global state (pandas options, Sentry, a PyPI version
check). The parent (`photo_curate.fastdup_runner`) starts ``python -m photo_curate.fastdup_child
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
        "ccthreshold": spec["cc_threshold"],
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
        threshold=spec["threshold"],
        lower_threshold=spec["lower_threshold"],
        nearest_neighbors_k=spec["k"],
        run_mode=spec.get("run_mode", 0),
        turi_param=",".join(f"{k}={v}" for k, v in turi.items()),
        verbose=False,
    )
    return 0 if rc in (0, None) else int(rc)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
