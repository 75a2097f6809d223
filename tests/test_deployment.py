"""prefect.yaml against a real Prefect server: deploy, run by a real worker, look at the API."""

from __future__ import annotations

import os
import re
import signal
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


FINAL = ("COMPLETED", "FAILED", "CRASHED", "CANCELLED")


@pytest.fixture(scope="module")
def deployed(server, sample, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict]:
    """prefect.yaml deployed to the server, and a real process worker polling its pool."""
    photos, _truth = sample
    home = tmp_path_factory.mktemp("deployed") / "home"
    env = {
        **server,
        "CURATE_SOURCE": str(photos),
        "CURATE_HOME": str(home),
        "CURATE_TIMEZONE": "Europe/Berlin",
        "PREFECT_WORKER_QUERY_SECONDS": "2",
    }
    _prefect(env, "work-pool", "create", "curate", "--type", "process")
    _prefect(env, "--no-prompt", "deploy", "--all")
    api = server["PREFECT_API_URL"]
    dep = _api("GET", f"{api}/deployments/name/curate/nightly")
    worker = subprocess.Popen(
        [str(BIN / "prefect"), "worker", "start", "--pool", "curate"], env=env, cwd=ROOT,
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        yield {"api": api, "deployment": dep, "photos": photos, "home": home}
    finally:
        worker.terminate()
        try:
            worker.wait(timeout=60)
        except subprocess.TimeoutExpired:  # a loaded machine: the worker's own teardown is slow
            worker.kill()
            worker.wait(timeout=30)


def _run_deployment(deployed: dict, parameters: dict | None = None) -> dict:
    """Trigger the nightly deployment now and wait for the worker to finish the run."""
    api, dep = deployed["api"], deployed["deployment"]
    body = {"parameters": parameters} if parameters else {}
    run = _api("POST", f"{api}/deployments/{dep['id']}/create_flow_run", json=body)
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        run = _api("GET", f"{api}/flow_runs/{run['id']}")
        if run["state"]["type"] in FINAL:
            return run
        time.sleep(2)
    pytest.fail(f"flow run {run['id']} did not finish: {run['state']['type']}")


def _task_runs(api: str, flow_run_id: str) -> list[dict]:
    return _api(
        "POST", f"{api}/task_runs/filter", json={"flow_runs": {"id": {"any_": [flow_run_id]}}}
    )


@pytest.fixture(scope="module")
def nightly_run(deployed) -> dict:
    return _run_deployment(deployed)


def test_entrypoints_resolve() -> None:
    """Every deployment in prefect.yaml names a flow that imports, with its parameters."""
    import inspect

    import yaml
    from prefect.flows import load_flow_from_entrypoint

    spec = yaml.safe_load((ROOT / "prefect.yaml").read_text())
    assert spec["deployments"]
    for dep in spec["deployments"]:
        flow = load_flow_from_entrypoint(str(ROOT / dep["entrypoint"]))
        params = inspect.signature(flow.fn).parameters
        assert set(dep["parameters"]) <= set(params), dep["name"]


def test_nightly_deployment_runs_on_a_worker(deployed, nightly_run) -> None:
    api, dep = deployed["api"], deployed["deployment"]
    schedule = dep["schedules"][0]["schedule"]
    assert schedule["cron"] == "30 2 * * *" and schedule["timezone"] == "Europe/Berlin"
    assert dep["parameters"]["source"] == str(deployed["photos"])
    assert dep["global_concurrency_limit"]["limit"] == 1
    assert nightly_run["state"]["type"] == "COMPLETED"
    assert nightly_run["name"].startswith(f"curate-{deployed['photos'].name}-")
    names = {t["name"].rsplit("-", 1)[0] for t in _task_runs(api, nightly_run["id"])}
    assert {"ingest", "inspect", "fastdup", "parse", "findings", "validate", "report"} <= names
    mine = {"artifacts": {"flow_run_id": {"any_": [nightly_run["id"]]}}}
    keys = {a["key"] for a in _api("POST", f"{api}/artifacts/filter", json=mine)}
    assert {"curate-summary", "curate-plan", "curate-validation", "curate-report"} <= keys
    assert "progress-inspect" in keys and any(k.startswith("progress-fastdup") for k in keys)
    assert (deployed["home"] / "catalog.duckdb").exists()


def test_the_ui_shows_the_run_its_tasks_and_artifacts(
    deployed, nightly_run, chromium, screenshots: Path
) -> None:
    """The Prefect UI in headless Chromium: the run page lists every step and the artifacts."""
    base = deployed["api"].removesuffix("/api")
    page = chromium.new_page(viewport={"width": 1400, "height": 1000})
    try:
        page.goto(f"{base}/runs/flow-run/{nightly_run['id']}")
        page.get_by_text(nightly_run["name"]).first.wait_for(timeout=60_000)
        page.get_by_text("Completed").first.wait_for()
        page.screenshot(path=str(screenshots / "prefect-flow-run.png"))
        page.get_by_text("Task Runs", exact=True).first.click()
        for step in ("ingest", "inspect", "fastdup", "parse", "findings", "validate", "report"):
            page.get_by_text(re.compile(rf"^{step}-\w+$")).first.wait_for(timeout=30_000)
        page.get_by_text("Artifacts", exact=True).first.click()
        for key in ("curate-summary", "curate-plan", "curate-validation"):
            page.get_by_text(key).first.wait_for(timeout=30_000)
        page.screenshot(path=str(screenshots / "prefect-artifacts.png"))
    finally:
        page.close()


def test_a_failing_step_retries_then_the_run_fails(deployed, tmp_path: Path) -> None:
    """A step that fails (here: the report folder is a file) is retried, then the run fails
    and says why in `runs`; nothing in the collection moved."""
    from photo_curate.home import Home
    from photo_curate.runs import all_run_ids, read_run
    from tests.conftest import tree_digest

    home = tmp_path / "home"
    home.mkdir()
    (home / "reports").write_text("not a folder")
    before = tree_digest(deployed["photos"])
    run = _run_deployment(deployed, {"home": str(home)})
    assert run["state"]["type"] == "FAILED"
    report = [t for t in _task_runs(deployed["api"], run["id"]) if t["name"].startswith("report")]
    assert len(report) == 1 and report[0]["run_count"] == 2  # one retry, visible in the UI
    assert report[0]["state"]["type"] == "FAILED"
    h = Home(home)
    row = read_run(h, all_run_ids(h)[0])
    assert row["status"] == "failed" and "reports" in row["error"]
    assert tree_digest(deployed["photos"]) == before


def test_a_nightly_apply_waits_for_approval_on_the_worker(deployed, tmp_path: Path) -> None:
    """apply with approval_timeout_seconds: the worker's run pauses after validation; resumed
    through the API with the form's `approve` ticked (what the UI sends), it applies."""
    import shutil

    from tests.conftest import tree_digest

    photos = tmp_path / "photos"  # the run moves files: a copy of the shared sample
    shutil.copytree(deployed["photos"], photos, copy_function=shutil.copy2)
    before = tree_digest(photos)
    api, dep = deployed["api"], deployed["deployment"]
    params = {"source": str(photos), "home": str(tmp_path / "home"), "apply": True,
              "approval_timeout_seconds": 600}  # fmt: skip
    run = _api("POST", f"{api}/deployments/{dep['id']}/create_flow_run",
               json={"parameters": params})  # fmt: skip
    deadline = time.monotonic() + 300
    while run["state"]["type"] != "PAUSED" and time.monotonic() < deadline:
        assert run["state"]["type"] not in FINAL, run["state"]
        time.sleep(2)
        run = _api("GET", f"{api}/flow_runs/{run['id']}")
    assert run["state"]["type"] == "PAUSED"
    assert tree_digest(photos) == before  # nothing applied while it waits
    _api("POST", f"{api}/flow_runs/{run['id']}/resume", json={"run_input": {"approve": True}})
    while run["state"]["type"] not in FINAL and time.monotonic() < deadline + 300:
        time.sleep(2)
        run = _api("GET", f"{api}/flow_runs/{run['id']}")
    assert run["state"]["type"] == "COMPLETED", run["state"]
    assert any((tmp_path / "home" / "quarantine").rglob("*.jpg"))
    assert tree_digest(photos) != before


def test_a_bad_config_fails_at_once_without_retries(deployed) -> None:
    run = _run_deployment(deployed, {"config": {"rules": {"dark_p95": "very dark"}}})
    assert run["state"]["type"] == "FAILED"
    assert _task_runs(deployed["api"], run["id"]) == []
    assert "dark_p95" in run["state"]["message"]


def test_curate_serve_runs_the_flow_on_its_schedule(server, sample, tmp_path: Path) -> None:
    """`curate serve` (flow.serve): a scheduled deployment served by the curate process."""
    photos, _truth = sample
    api = server["PREFECT_API_URL"]
    serve = subprocess.Popen(
        [str(BIN / "curate"), "serve", str(photos), "--home", str(tmp_path / "home"),
         "--cron", "15 3 * * *", "--timezone", "Europe/Berlin", "--name", "serve-test"],
        env=server, cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        dep = None
        deadline = time.monotonic() + 120
        while dep is None and time.monotonic() < deadline:
            assert serve.poll() is None, serve.stderr.read()
            found = httpx.get(f"{api}/deployments/name/curate/serve-test", timeout=30)
            dep = found.json() if found.status_code == 200 else time.sleep(1)
        assert dep is not None, "curate serve did not register its deployment"
        schedule = dep["schedules"][0]["schedule"]
        assert schedule == {**schedule, "cron": "15 3 * * *", "timezone": "Europe/Berlin"}
        assert dep["parameters"]["apply"] is False
        run = _run_deployment({"api": api, "deployment": dep})
        assert run["state"]["type"] == "COMPLETED"
        assert (tmp_path / "home" / "catalog.duckdb").exists()
    finally:
        serve.send_signal(signal.SIGINT)
        try:
            serve.wait(timeout=30)
        except subprocess.TimeoutExpired:
            serve.kill()


def test_curate_serve_without_a_server_says_how_to_start_one(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_API")}
    p = subprocess.run(
        [str(BIN / "curate"), "serve", str(tmp_path)], env=env,
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert p.returncode == 2
    assert p.stderr.count("\n") == 1 and "make prefect-server" in p.stderr
