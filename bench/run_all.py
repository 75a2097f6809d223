"""Every benchmark, one after the other, each with its defaults (hours on a 2-core machine).

    .venv/bin/python -m bench.run_all [--only peers floor growth]

Each benchmark is its own command (see its docstring) and writes its JSON under
bench/results/; this only runs them in turn, each in a child of its own, and stops at the
first that fails. Run it on a quiet machine: the figures are wall times.
"""

from __future__ import annotations

import argparse
import subprocess
import sys

BENCHMARKS = ("quality", "speed", "apply_speed", "peers", "floor", "growth", "graph", "catalog")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--only", nargs="+", choices=BENCHMARKS, default=list(BENCHMARKS))
    args = ap.parse_args()
    for name in BENCHMARKS:
        if name in args.only:
            print(f"\n=== bench.{name} ===", flush=True)
            subprocess.run([sys.executable, "-m", f"bench.{name}"], check=True)


if __name__ == "__main__":
    main()
