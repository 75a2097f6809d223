"""`curate review` in real Chromium: the controls record the same decisions as the CLI, the
reviewed plan is applied by a new run that honours them, and a request without the token is
refused."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import duckdb
import pytest

from photo_curate import decisions
from photo_curate.home import Home
from photo_curate.review import Review, reviewed_apply

pytestmark = [pytest.mark.slow, pytest.mark.browser]


def _status(url: str, data: bytes | None = None, headers: dict[str, str] | None = None) -> int:
    req = urllib.request.Request(url, data=data, headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            return r.status
    except urllib.error.HTTPError as exc:
        return exc.code


def test_review_in_a_browser_records_decisions_and_applies_them(
    run_flow, chromium: Any, collection: Path, tmp_path: Path
) -> None:
    home = Home(tmp_path / "home")
    run_id = run_flow(collection, home.root)["run_id"]
    con = duckdb.connect()
    findings = str(home.table_file("findings", run_id))
    ((keep,),) = con.execute(
        "SELECT min(path) FROM read_parquet(?) WHERE kind = 'duplicate' AND action = 'quarantine'",
        [findings],
    ).fetchall()
    review = Review(home, run_id, lambda: reviewed_apply(home, run_id))
    review.serve_in_thread()
    try:
        base = review.url.removesuffix("index.html")
        # without the token: refused; a POST without the header (a form of another site): too
        port_root = review.url.split(review.token)[0]
        assert _status(port_root + "index.html") == 403
        body = json.dumps({"verdict": "keep", "paths": [keep]}).encode()
        assert _status(base + "decide", body, {"Content-Type": "application/json"}) == 403
        assert not decisions.listing(home)
        page = chromium.new_page(viewport={"width": 1280, "height": 900})
        page.goto(review.url)
        page.evaluate("() => document.querySelectorAll('details').forEach(d => { d.open = true; })")
        card = page.locator(f'.group[data-kind="duplicate"] .card[data-path="{keep}"]').first
        card.locator('button[data-verdict="keep"]').click()
        card.locator(".decided.ok").wait_for(timeout=15_000)
        assert "keep on " + keep in card.locator(".decided").inner_text()
        # the same checks as `curate decide`: a remove of a kept file is refused
        card.locator('button[data-verdict="remove"]').click()
        card.locator(".decided.refused").wait_for(timeout=15_000)
        assert "says keep" in card.locator(".decided").inner_text()
        (row,) = decisions.listing(home)
        assert row[2] == "keep" and row[4] == keep and row[6] == "in force"
        page.click("#apply-reviewed")
        page.wait_for_function(
            "() => document.getElementById('apply-result').textContent.length > 0",
            timeout=300_000,
        )
        out = page.locator("#apply-result").inner_text()
        assert "applied:" in out, out
        assert (collection / keep).exists()  # kept by the decision, the rest applied
        assert list((home.root / "quarantine").rglob("*.jpg"))
    finally:
        review.close()
