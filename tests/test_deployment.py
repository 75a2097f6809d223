"""prefect.yaml against a real Prefect server: deploy, run by a real worker, look at the API."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

pytestmark = [pytest.mark.slow, pytest.mark.server]
BIN = Path(sys.executable).parent
ROOT = Path(__file__).resolve().parent.parent


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    home = tmp_path_factory.mktemp("prefect-home")
    port = _free_port()
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("PREFECT_")},
        "PREFECT_HOME": str(home),
        "PREFECT_API_URL": f"http://127.0.0.1:{port}/api",
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        "DO_NOT_TRACK": "1",
    }
    proc = subprocess.Popen(
        [str(BIN / "prefect"), "server", "start", "--host", "127.0.0.1", "--port", str(port)],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{env['PREFECT_API_URL']}/health", timeout=2).status_code == 200:
                break
        except httpx.HTTPError:
            time.sleep(1)
    else:
        proc.kill()
        pytest.fail("prefect server did not start")
    yield env
    proc.terminate()
    proc.wait(timeout=30)


def _prefect(env: dict[str, str], *args: str, timeout: int = 180) -> str:
    p = subprocess.run(
        [str(BIN / "prefect"), *args], env=env, cwd=ROOT,
        capture_output=True, text=True, timeout=timeout, check=False,
    )  # fmt: skip
    assert p.returncode == 0, p.stdout + p.stderr
    return p.stdout


def _api(method: str, url: str, **kwargs: object) -> object:
    """One API call that survives the busy SQLite database of a freshly started server.

    A new deployment makes the scheduler insert its runs at the same moment; the server can
    then answer 500 ("database is locked") once. The body is shown when it keeps failing.
    """
    response = None
    for _ in range(10):
        response = httpx.request(method, url, timeout=30, **kwargs)
        if response.status_code < 500:
            break
        time.sleep(2)
    assert response is not None and response.is_success, f"{method} {url}: {response.text}"
    return response.json()


def test_nightly_deployment_runs_on_a_worker(server, sample, tmp_path: Path) -> None:
    photos, _truth = sample
    env = {
        **server,
        "CURATE_SOURCE": str(photos),
        "CURATE_HOME": str(tmp_path / "home"),
        "CURATE_TIMEZONE": "Europe/Berlin",
    }
    _prefect(env, "work-pool", "create", "curate", "--type", "process")
    _prefect(env, "--no-prompt", "deploy", "--all")
    api = server["PREFECT_API_URL"]
    dep = _api("GET", f"{api}/deployments/name/curate/nightly")
    schedule = dep["schedules"][0]["schedule"]
    assert schedule["cron"] == "30 2 * * *" and schedule["timezone"] == "Europe/Berlin"
    assert dep["parameters"]["source"] == str(photos)
    run = _api("POST", f"{api}/deployments/{dep['id']}/create_flow_run", json={})
    worker = subprocess.Popen(
        [str(BIN / "prefect"), "worker", "start", "--pool", "curate"], env=env, cwd=ROOT,
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 300
        state = None
        while time.monotonic() < deadline:
            state = _api("GET", f"{api}/flow_runs/{run['id']}")["state"]["type"]
            if state in ("COMPLETED", "FAILED", "CRASHED", "CANCELLED"):
                break
            time.sleep(2)
    finally:
        worker.terminate()
        worker.wait(timeout=30)
    assert state == "COMPLETED"
    tasks = _api(
        "POST", f"{api}/task_runs/filter", json={"flow_runs": {"id": {"any_": [run["id"]]}}}
    )
    names = {t["name"].rsplit("-", 1)[0] for t in tasks}
    assert {"ingest", "inspect", "fastdup", "parse", "findings", "validate", "report"} <= names
    keys = {a["key"] for a in _api("POST", f"{api}/artifacts/filter", json={})}
    assert {"curate-summary", "curate-plan", "curate-validation", "curate-report"} <= keys
    assert (tmp_path / "home" / "catalog.duckdb").exists()
