"""The web app in real headless Chromium (Debian's ``chromium``, driven by Playwright).

Two people at once: an annotator claims a Phase 3 task on a synthetic video, clicks on the
object and sees the mask on the canvas, propagates, corrects a frame with the brush and
submits; a verifier plays the masklet and accepts it; the dashboard draws its charts.
Screenshots of each page land in the test's temporary folder (or ``$DATAENGINE_SCREENSHOTS``).
"""

from __future__ import annotations

import os
import shutil
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import uvicorn

from engine.queues import Queue
from storage.catalog import Catalog
from tests.conftest import skip_or_fail
from tests.webapp.conftest import PASSWORD, Site, build_site
from webapp.wire import runs_mask

CHROMIUM = os.environ.get("DATAENGINE_CHROMIUM", "/usr/bin/chromium")
TIMEOUT_MS = 30_000


@pytest.fixture(scope="module")
def chromium() -> Iterator[object]:
    if not Path(CHROMIUM).exists() and shutil.which("chromium") is None:
        skip_or_fail(f"Chromium is not installed at {CHROMIUM} (apt-get install chromium)")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        skip_or_fail("the playwright package is not installed (pip install -e '.[test]')")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=CHROMIUM if Path(CHROMIUM).exists() else shutil.which("chromium"),
            headless=True,
            args=["--no-sandbox", "--disable-dev-shm-usage"],
        )
        try:
            yield browser
        finally:
            browser.close()


@pytest.fixture
def served(sqlite_catalog: Catalog, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[Site, str]]:
    """The site behind a real uvicorn on a free loopback port, in a background thread."""
    monkeypatch.setenv("DATAENGINE_CONFIG", str(tmp_path / "none.toml"))
    site = build_site(sqlite_catalog, tmp_path)
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(site.app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, name="uvicorn", daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.05)
    try:
        yield site, f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=30)
        site.close()


@pytest.fixture
def shots(tmp_path: Path) -> Path:
    folder = Path(os.environ.get("DATAENGINE_SCREENSHOTS") or tmp_path / "screenshots")
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def log_in(browser, base: str, name: str, shots: Path | None = None):  # type: ignore[no-untyped-def]
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    page = context.new_page()
    page.set_default_timeout(TIMEOUT_MS)
    page.goto(base + "/")
    page.wait_for_url("**/login")
    page.fill("#name", name)
    page.fill("#password", PASSWORD)
    if shots is not None:
        page.screenshot(path=str(shots / "login.png"))
    page.click("#login-button")
    page.wait_for_url(base + "/")
    page.wait_for_selector("#queues button.claim")
    return context, page


def canvas_pixels(page) -> list[int]:  # type: ignore[no-untyped-def]
    return page.evaluate(
        "() => { const c = document.getElementById('canvas'); return Array.from(c.getContext('2d').getImageData(0, 0, c.width, c.height).data); }"
    )


def biggest_object(site: Site) -> int:
    """The object that shows largest where it first appears: easy to click on in a 64x48 video."""
    sizes = {}
    for object_id in site.annotations.objects_with_ground_truth(site.video_id):
        truth = site.annotations.inputs(site.video_id, object_id).truth
        sizes[object_id] = truth.areas[truth.first_appeared_frame]
    return max(sizes, key=sizes.get)


@pytest.mark.slow
def test_annotate_verify_and_watch_the_dashboard_in_chromium(chromium, served, shots: Path) -> None:
    site, base = served
    site.enqueue_one(3, object_id=biggest_object(site))
    site.enqueue_one(1)  # left waiting: the queue chart has something to show

    # --- the annotator -------------------------------------------------------------------------
    annotator_context, page = log_in(chromium, base, "ann", shots)
    page.screenshot(path=str(shots / "home.png"))
    page.click(f'#queues button[data-queue="{Queue.ANNOTATE_PHASE_3.value}"]')
    page.wait_for_url("**/annotate/*")
    page.wait_for_selector('#annotator[data-ready="1"]')
    task_id = int(page.get_attribute("#annotator", "data-task-id"))
    view = page.evaluate(f"() => fetch('/api/tasks/{task_id}').then(r => r.json())")["task"]
    hint, zoom = view["hint"], int(page.input_value("#zoom"))
    assert page.get_attribute("#canvas", "data-frame") == str(hint["frame"])
    assert page.get_attribute("#canvas", "data-mask-pixels") == "0"
    page.wait_for_function("() => { const c = document.getElementById('canvas'); return c.width > 0; }")
    time.sleep(0.3)  # the frame image to load and be drawn
    before = canvas_pixels(page)

    page.click("#canvas", position={"x": hint["x"] * zoom + zoom / 2, "y": hint["y"] * zoom + zoom / 2})
    page.wait_for_function("() => Number(document.getElementById('canvas').dataset.maskPixels) > 0")
    page.screenshot(path=str(shots / "annotate-click.png"))
    after = canvas_pixels(page)
    state = page.evaluate(f"() => fetch('/api/tasks/{task_id}').then(r => r.json())")["frames"][hint["frame"]]
    mask = runs_mask(state["mask"])
    assert mask.any() and int(page.get_attribute("#canvas", "data-mask-pixels")) == int(mask.sum())
    width = view["width"] * zoom
    tinted = [after[i : i + 3] != before[i : i + 3]
              for i in (((y * zoom + zoom // 2) * width + x * zoom + zoom // 2) * 4 for y, x in zip(*mask.nonzero()))]
    assert all(tinted)  # every pixel of the mask is drawn over the frame on the canvas, at the zoom

    page.click("#propagate")
    page.wait_for_selector('#annotator[data-propagated="1"]')
    statuses = page.eval_on_selector_all("#strip .cell", "cells => cells.map(c => c.dataset.status)")
    assert statuses[hint["frame"]] == "edited" and statuses[hint["frame"] + 1 :] == ["propagated"] * (len(statuses) - hint["frame"] - 1)

    # Correct the last frame with the brush.
    last = view["frame_count"] - 1
    page.click(f'#strip .cell[data-frame="{last}"]')
    page.click('button.tool[data-tool="brush"]')
    box = page.locator("#canvas").bounding_box()
    page.mouse.move(box["x"] + 4 * zoom, box["y"] + 4 * zoom)
    page.mouse.down()
    for step in range(1, 11):
        page.mouse.move(box["x"] + (4 + 2 * step) * zoom, box["y"] + 4 * zoom)
    page.mouse.up()
    page.wait_for_selector(f'#strip .cell[data-frame="{last}"][data-status="edited"]')
    page.screenshot(path=str(shots / "annotate-propagated.png"))

    # --- the verifier logs in while the annotator is still at work -----------------------------------
    verifier_context, verifier = log_in(chromium, base, "ver")
    assert verifier.evaluate("() => fetch('/api/tasks/claim', {method: 'POST'}).then(r => r.status)") == 403  # no CSRF

    page.click("#submit")
    if hint["frame"] > 0:  # the frames before the object appears were never touched
        page.click("#submit-anyway")
    page.wait_for_selector("#annotator[data-submitted]")
    masklet_id = int(page.get_attribute("#annotator", "data-submitted"))

    verifier.click(f'#queues button[data-queue="{Queue.VERIFY.value}"]')
    verifier.wait_for_url("**/verify/*")
    verifier.wait_for_selector('#verifier[data-ready="1"]')
    assert f"masklet {masklet_id}" in verifier.inner_text("#task-title")
    verifier.click("#play")
    verifier.wait_for_function(f"() => Number(document.getElementById('slider').value) >= {last}", timeout=TIMEOUT_MS)
    assert int(verifier.get_attribute("#canvas", "data-mask-pixels")) > 0  # the corrected last frame, played back
    verifier.screenshot(path=str(shots / "verify.png"))
    verifier.check('input[name="verdict"][value="satisfactory"]')
    verifier.click("#send-verdict")
    verifier.wait_for_selector('#verifier[data-verdict="satisfactory"]')

    # --- the dashboard ------------------------------------------------------------------------
    verifier.goto(base + "/dashboard")
    verifier.wait_for_selector('#dashboard[data-ready="1"]')
    assert verifier.locator("#chart-spf circle.point.filled").count() == 1  # one masklet, by a person
    assert verifier.locator("#chart-outcomes rect.bar.satisfactory").count() == 1
    assert verifier.locator("#chart-queues rect.bar.ready").count() == 1
    assert verifier.locator("#chart-edited rect.bar").count() == 1
    names = verifier.eval_on_selector_all("#people-table tbody tr td:first-child", "cells => cells.map(c => c.textContent)")
    assert {"ann", "ver"} <= set(names)
    verifier.screenshot(path=str(shots / "dashboard.png"), full_page=True)

    # Both sessions were live side by side; logging out ends one and not the other.
    page.click("#logout")
    page.wait_for_url("**/login")
    assert verifier.evaluate("() => fetch('/api/session/me').then(r => r.status)") == 200
    assert sorted(p.name for p in shots.glob("*.png")) == [
        "annotate-click.png", "annotate-propagated.png", "dashboard.png", "home.png", "login.png", "verify.png",
    ]
    annotator_context.close()
    verifier_context.close()
