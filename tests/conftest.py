"""Shared fixtures: a real-photo collection with planted defects, a Prefect test server."""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

os.environ.setdefault("DO_NOT_TRACK", "1")
os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
os.environ.setdefault("SENTRY_OPT_OUT", "1")
os.environ.setdefault("FASTDUP_PRODUCTION", "1")
os.environ.setdefault("TQDM_DISABLE", "1")
# The session owns its PREFECT_HOME (a `curate` without PREFECT_API_URL starts its local server
# there) and no server of the shell it was started from is used.
# (this module is imported twice, as pytest's conftest and as tests.conftest: one folder)
SESSION_PREFECT_HOME = os.environ.get("CURATE_TESTS_PREFECT_HOME") or tempfile.mkdtemp(
    prefix="curate-tests-prefect-"
)
os.environ["CURATE_TESTS_PREFECT_HOME"] = os.environ["PREFECT_HOME"] = SESSION_PREFECT_HOME
os.environ.pop("PREFECT_API_URL", None)


@pytest.fixture(scope="session", autouse=True)
def _stop_local_server() -> Iterator[None]:
    """Whatever local Prefect server the session's commands started is stopped at its end."""
    yield
    from photo_curate import local_server

    local_server.stop(Path(SESSION_PREFECT_HOME))
    shutil.rmtree(SESSION_PREFECT_HOME, ignore_errors=True)


@pytest.fixture(scope="session")
def sample(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """(photos folder, truth.csv) built once from the photos in the installed wheels."""
    from photo_curate.sample import build_collection

    root = tmp_path_factory.mktemp("sample")
    truth = build_collection(root, seed=7)
    return root / "photos", truth


@pytest.fixture
def collection(sample: tuple[Path, Path], tmp_path: Path) -> Path:
    """A private copy of the sample collection (mtimes kept) that a test may change."""
    dst = tmp_path / "photos"
    shutil.copytree(sample[0], dst, copy_function=shutil.copy2)
    return dst


@pytest.fixture(scope="session")
def prefect_server() -> Iterator[None]:
    """One Prefect test server for the session (starting one costs ~10 s)."""
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(server_startup_timeout=120):
        yield


@pytest.fixture
def run_flow(prefect_server: None) -> Any:
    """Call the real `curate` flow against the session's Prefect server."""
    from flows.curate import curate

    def _run(source: Path, home: Path, **kw: Any) -> dict[str, Any]:
        return curate(source=str(source), home=str(home), **kw)

    return _run


CHROMIUM = Path(os.environ.get("CURATE_CHROMIUM", "/usr/bin/chromium"))
# Chromium's own network chatter is refused on this machine's closed network: switch it off.
CHROMIUM_ARGS = [
    "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]  # fmt: skip


@pytest.fixture(scope="session")
def chromium() -> Iterator[Any]:
    """A headless Debian Chromium driven by Playwright (no browser download).

    Skipped where Chromium is not installed, unless CURATE_REQUIRE_BROWSER=1 (set by .ci/run,
    which installs it): there a missing browser fails the run instead of hiding the tests.
    """
    if not CHROMIUM.exists():
        if os.environ.get("CURATE_REQUIRE_BROWSER") == "1":
            pytest.fail(f"{CHROMIUM} is missing (apt-get install chromium)")
        pytest.skip(f"{CHROMIUM} is not installed (.ci/run installs Debian's chromium)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            browser.close()


@pytest.fixture
def screenshots(tmp_path: Path) -> Path:
    """Where browser tests save their screenshots: `make screenshots` keeps them in bench/."""
    kept = os.environ.get("CURATE_SCREENSHOTS")
    folder = Path(kept) if kept else tmp_path / "screenshots"
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def tree_digest(root: Path) -> dict[str, str]:
    """relative path -> sha256 of every regular file under root (symlinks by target)."""
    out = {}
    for dirpath, _dirs, files in os.walk(root):
        for name in files:
            p = Path(dirpath) / name
            rel = p.relative_to(root).as_posix()
            if p.is_symlink():
                out[rel] = "link:" + os.readlink(p)
            else:
                out[rel] = hashlib.sha256(p.read_bytes()).hexdigest()
    return out


CURATE = Path(sys.executable).parent / "curate"


def curate_cli(*args: str | Path) -> subprocess.CompletedProcess[str]:
    """`curate ARGS` as a user types it, its output captured."""
    return subprocess.run(
        [str(CURATE), *map(str, args)], capture_output=True, text=True, check=False
    )


def run_id_of(p: subprocess.CompletedProcess[str]) -> str:
    """The run id `curate run` prints last, once it succeeded."""
    assert p.returncode == 0, p.stderr
    return p.stdout.strip().split()[-1]
