"""The HTML report of a real-photo run, opened from disk in headless Chromium."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pytest

from photo_curate.home import Home

pytestmark = [pytest.mark.slow, pytest.mark.browser]

# A copy of a photo under a name that would run script if the report spliced it into HTML.
EVIL = "<img src=x onerror=document.title='pwned'>.jpg"
SECTIONS = [
    "Summary", "Duplicates", "Near duplicates (review)", "Dark", "Bright / overexposed",
    "Blurry", "Outliers", "Clusters of similar shots", "Invalid (corrupt, truncated, empty)",
    "Plan", "Validation (great-expectations)", "What was done",
]  # fmt: skip


@pytest.fixture(scope="module")
def applied_run(
    sample: tuple[Path, Path], tmp_path_factory: pytest.TempPathFactory, prefect_server
):
    """A run over a copy of the sample with a hostile file name, then its plan applied."""
    from flows.curate import curate
    from tasks.apply import apply_plan

    root = tmp_path_factory.mktemp("browser")
    photos = root / "photos"
    shutil.copytree(sample[0], photos, copy_function=shutil.copy2)
    shutil.copy2(photos / "DCIM/2023/astronaut.jpg", photos / "Shared" / EVIL)
    home = Home(root / "home")
    res = curate(source=str(photos), home=str(home.root))
    apply_plan(home, res["run_id"])  # rebuilds the report with what was done
    return home, res


def _open(chromium: Any, report: Path, unfold: bool = True) -> Any:
    page = chromium.new_page(viewport={"width": 1280, "height": 900})
    messages: list[str] = []
    page.on("console", lambda m: messages.append(m.text))
    page.goto(report.as_uri())
    page.messages = messages
    if not unfold:
        return page
    page.evaluate("() => document.querySelectorAll('details').forEach(d => { d.open = true; })")
    # thumbnails are lazy: make every one load now, then wait for all of them
    page.evaluate(
        """() => Promise.all([...document.images].map(img => {
               img.loading = 'eager';
               return img.complete ? null : new Promise(r => { img.onload = img.onerror = r; });
           }))"""
    )
    return page


def test_report_renders_with_thumbnails_keepers_and_safe_names(
    applied_run, chromium, screenshots: Path
) -> None:
    home, res = applied_run
    report = home.report_file(res["run_id"])
    page = _open(chromium, report)
    try:
        headings = page.locator("h2").all_inner_texts()
        for section in SECTIONS:
            assert any(h.startswith(section) for h in headings), (section, headings)

        images = page.evaluate(
            "() => [...document.images].map(i => [i.getAttribute('src'), i.naturalWidth])"
        )
        assert len(images) >= 40
        broken = [src for src, width in images if width == 0]
        assert broken == [], broken[:5]
        # thumbnails only: nothing is inlined from SOURCE, everything comes from HOME's cache
        for src, _ in images:
            target = (report.parent / src).resolve()
            assert target.is_relative_to(home.thumbnails.resolve()), src
            assert target.stat().st_size < 60_000

        # every group shown has exactly one keeper, marked and explained: the copy kept, or
        # the best shot of similar shots (a suggestion)
        for section, why in (("duplicate", "keeper of"), ("near_duplicate", "best shot of")):
            groups = page.locator(f"details#{section} .group[data-kind='{section}']")
            assert groups.count() >= 3
            for i in range(groups.count()):
                group = groups.nth(i)
                assert group.locator(".card.keeper").count() == 1
                assert why in group.locator(".card.keeper").inner_text()
        copy = page.locator(".card:not(.keeper)").filter(has_text="kept because it").first
        assert copy.is_visible()

        # the hostile name is shown as text and ran nothing
        assert page.title().startswith("photo-curate report")
        assert page.get_by_text(EVIL, exact=False).count() >= 1
        assert page.locator("img[src='x']").count() == 0

        # after apply, the report lists what was done
        done = page.locator("details#actions table tr")
        assert done.count() > 1
        assert "quarantine" in done.nth(1).inner_text()
        assert not [m for m in page.messages if "Content Security Policy" in m]
        page.evaluate("() => window.scrollTo(0, 0)")
        page.screenshot(path=str(screenshots / "report-top.png"))
        page.locator("details#duplicate").scroll_into_view_if_needed()
        page.screenshot(path=str(screenshots / "report-duplicates.png"))
    finally:
        page.close()


def test_report_opens_short_with_contents_and_sections_that_fold(applied_run, chromium) -> None:
    """As it opens: a table of contents whose links reach every section, the summary and
    (once applied) what was done open, the rest folded (the page was
    over 16,000 px at 1,400 px wide); a click on a folded section's title opens it, with no
    script (the CSP allows none)."""
    home, res = applied_run
    page = _open(chromium, home.report_file(res["run_id"]), unfold=False)
    try:
        page.set_viewport_size({"width": 1400, "height": 900})
        links = page.locator("nav.toc a").evaluate_all("as => as.map(a => a.hash.slice(1))")
        ids = page.locator("details.section").evaluate_all("ds => ds.map(d => d.id)")
        assert set(links) == set(ids) and len(ids) >= 12
        opened = page.locator("details.section[open]").evaluate_all("ds => ds.map(d => d.id)")
        assert opened == ["summary", "actions"]  # applied: what was done shows
        folded = page.evaluate("document.documentElement.scrollHeight")
        assert page.locator("details#plan table").is_visible() is False
        page.locator("details#plan > summary").click()
        assert page.locator("details#plan table").is_visible()
        page.evaluate("() => document.querySelectorAll('details').forEach(d => { d.open = true; })")
        unfolded = page.evaluate("document.documentElement.scrollHeight")
        assert folded < unfolded / 2, (folded, unfolded)
        assert page.locator("script").count() == 0
        assert not [m for m in page.messages if "Content Security Policy" in m]
    finally:
        page.close()


def test_report_rebuilt_from_the_catalog_alone_is_identical(applied_run) -> None:
    from photo_curate.report import build_report

    home, res = applied_run
    before = home.report_file(res["run_id"]).read_text()
    assert build_report(home, res["run_id"]).read_text() == before
