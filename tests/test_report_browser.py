"""The HTML report as a person sees it, in headless Chromium (Debian's, driven by Playwright)."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from playwright.sync_api import sync_playwright

import audit
from audit.models.training import TrainConfig, train

CHROMIUM = "/usr/bin/chromium"
ARTIFACTS = Path(__file__).resolve().parents[1] / "test-artifacts"
SCRIPT_NAME = "<script>window.__pwned = 1</script>"
IMG_NAME = '<img src=x onerror="window.__pwned = 2">'
MATH_NAME = "cost $x^2$ in b$$c"  # matplotlib would read "$...$" as math


@pytest.fixture(scope="module")
def hostile_report(tmp_path_factory) -> Path:
    """A full default audit of a model whose feature, class and sensitive names carry markup."""
    rng = np.random.default_rng(0)
    n = 600
    frame = pd.DataFrame({SCRIPT_NAME: rng.normal(size=n), MATH_NAME: rng.normal(size=n),
                          "group": rng.choice([IMG_NAME, MATH_NAME], n)})
    frame["label"] = np.where(frame[SCRIPT_NAME] + 0.3 * rng.normal(size=n) > 0, IMG_NAME, "fine")
    data = audit.Dataset.from_dataframe(frame, target="label", sensitive=["group"], name=SCRIPT_NAME)
    parts = data.split([0.6, 0.2, 0.2], seed=0)
    model = train("mlp", *parts, config=TrainConfig(epochs=5), quiet=True).model
    policy = audit.Policy.from_dict({"gates": {"performance.accuracy": {"min": 0.99}}})
    run = audit.run(model, parts[2], seed=0, policy=policy, samples=8)
    assert {r.analyzer: r.error for r in run.results if r.status != "ok"} == {}
    return run.save_html(tmp_path_factory.mktemp("report") / "report.html")


def stylesheet_font_family() -> str:
    """The font-family the report's stylesheet gives `.audit-report`, as the browser writes it back."""
    css = (Path(audit.__file__).parent / "report" / "templates" / "report.css").read_text(encoding="utf-8")
    rule = re.search(r"\.audit-report \{[^}]*?font-family:\s*([^;]+);", css).group(1)
    return ", ".join(part.strip() for part in rule.split(","))


def test_report_in_a_real_browser(hostile_report):
    requests, console_errors, page_errors = [], [], []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=[
            "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
            "--disable-sync", "--no-first-run", "--disable-quic"])
        try:
            page = browser.new_page(viewport={"width": 1200, "height": 900})
            page.on("request", lambda r: requests.append(r.url))
            page.on("console", lambda m: console_errors.append(m.text) if m.type == "error" else None)
            page.on("pageerror", lambda e: page_errors.append(str(e)))
            page.goto(hostile_report.as_uri())
            page.wait_for_load_state("load")

            external = [u for u in requests if u != hostile_report.as_uri() and not u.startswith("data:")]
            assert external == []
            assert console_errors == [] and page_errors == []
            assert page.locator("#verdict").is_visible()
            # The stylesheet reached the browser intact (autoescaping once turned its quotes into entities,
            # which voided the rule and left the browser's default serif font).
            family = page.evaluate("() => getComputedStyle(document.querySelector('.audit-report')).fontFamily")
            assert family == stylesheet_font_family()
            assert "FAIL" in page.locator("#verdict").inner_text()
            images = page.evaluate("""() => Array.from(document.images).map(
                i => ({src: i.src.slice(0, 30), ok: i.complete && i.naturalWidth > 0}))""")
            assert images and all(i["ok"] for i in images), [i for i in images if not i["ok"]]
            assert page.evaluate("() => window.__pwned") is None
            text = page.locator("body").inner_text()
            assert SCRIPT_NAME in text and MATH_NAME in text  # shown as text, never run
            assert page.locator("script").count() == 0

            ARTIFACTS.mkdir(exist_ok=True)
            page.screenshot(path=str(ARTIFACTS / "report.png"), full_page=False)
            page.set_viewport_size({"width": 390, "height": 844})
            width = page.evaluate("() => document.documentElement.scrollWidth")
            assert width <= 390 + 2, f"page is {width}px wide on a 390px screen"
            page.screenshot(path=str(ARTIFACTS / "report-narrow.png"), full_page=False)
            page.emulate_media(media="print")
            assert not page.locator("nav").is_visible()  # the print stylesheet hides navigation
        finally:
            browser.close()


AXE = Path(__file__).resolve().parents[1] / ".ci" / "node" / "node_modules" / "axe-core" / "axe.min.js"
MAX_HEIGHT = 12_500  # half the 22,500 px the adult report measured before it led with findings, plus the slices
# section (about 1,050 px: three findings and the chart of ten slices) that came with slice discovery


@pytest.fixture(scope="module")
def adult_report(adult_mlp, tmp_path_factory) -> Path:
    """A full default audit of the adult MLP, judged by the default policy."""
    run = audit.run(adult_mlp, audit.load_dataset("adult", "test"), seed=0, samples=8)
    assert {r.analyzer: r.error for r in run.results if r.status != "ok"} == {}
    assert run.verdict.findings, "the adult MLP has findings to lead with"
    return run.save_html(tmp_path_factory.mktemp("adult") / "adult.html")


def test_report_leads_with_the_verdict_fits_narrow_screens_and_passes_axe(adult_report):
    assert AXE.exists(), "install axe-core first: npm install --prefix .ci/node axe-core@4.11.1 (see .ci/run)"
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=["--no-sandbox"])
        try:
            # The report's CSP forbids scripts; axe is injected into this test page only.
            page = browser.new_page(viewport={"width": 1280, "height": 800}, bypass_csp=True)
            page.goto(adult_report.as_uri())
            page.wait_for_load_state("load")
            for selector in ("#verdict", ".finding >> nth=0"):
                box = page.locator(selector).bounding_box()
                assert box and box["y"] + box["height"] <= 800, f"{selector} is below the first screen: {box}"
            assert page.evaluate("() => document.querySelectorAll('details[open]').length") == 0
            height = page.evaluate("() => document.documentElement.scrollHeight")
            assert height <= MAX_HEIGHT, f"the report is {height}px tall at 1280px"
            ARTIFACTS.mkdir(exist_ok=True)
            page.screenshot(path=str(ARTIFACTS / "adult-1280.png"))

            page.set_viewport_size({"width": 390, "height": 844})
            width = page.evaluate("() => document.documentElement.scrollWidth")
            assert width <= 390, f"page is {width}px wide on a 390px screen"
            figures = page.evaluate("""() => Array.from(document.images).filter(i => i.offsetParent)
                .map(i => Math.round(i.getBoundingClientRect().width))""")
            assert figures and min(figures) >= 340, figures
            page.screenshot(path=str(ARTIFACTS / "adult-390.png"))

            page.add_script_tag(path=str(AXE))
            violations = page.evaluate("""async () => (await axe.run(document)).violations
                .filter(v => v.impact === 'serious' || v.impact === 'critical')
                .map(v => v.id + ': ' + v.nodes.slice(0, 2).map(n => n.html.slice(0, 100)).join(' | '))""")
            assert violations == []
        finally:
            browser.close()
