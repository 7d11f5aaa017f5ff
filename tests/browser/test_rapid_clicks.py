"""End to end in Chromium: quick clicks and taps while the previous answer is still on its way are all recorded, exactly.

Every edit answers with a new scene, and the view loads its files (mask layers) before drawing it.
The page maps each click to an original pixel itself, from the transform it is drawing with
(``sam_demo/static/view/geometry.js``), so a click made while the next scene loads needs no holding
back (the old ``gr.Image`` mapped clicks from the image file's natural size, which read 0 while a new
overlay loaded, and dropped them). These tests add network latency, so that most clicks land while a
scene is on its way, and check that every click reaches the server once, in order, at the pixel aimed at
(``page.IN_ORDER_SCRIPT`` keeps the queue joins in order).
"""

from __future__ import annotations

import time

import numpy as np
import pytest

from tests.browser.conftest import WIDE_HW
from tests.browser.pixels import ObjectPrompt, check_overlay
from tests.browser.test_prompts import FRAME, INCLUDE, start
from tests.browser.ui import DemoPage

pytestmark = pytest.mark.browser

CLICKS = 15
SPACING_S = 0.150
LATENCY_MS = 150
"""Added to every request: each scene's layer then loads for at least this long after its edit."""
SETTLE_S = 20.0


def targets(hw: tuple[int, int], n: int = CLICKS) -> list[tuple[int, int]]:
    """``n`` pixels spread over the picture (a 5 x 3 grid, shifted per row), away from the edges."""
    h, w = hw
    return [(int(w * (0.12 + 0.17 * (k % 5) + 0.04 * (k // 5))), int(h * (0.2 + 0.3 * (k // 5))))
            for k in range(n)]


def rapid_clicks(page: DemoPage, pixels: list[tuple[int, int]]) -> list[tuple[int, int]]:
    """Click (tap) each pixel ``SPACING_S`` apart without waiting for the page; return the pixels under the pointer."""
    box = page.view_box()
    reported = []
    for x, y in pixels:
        client = box.aim(x, y)
        reported.append(box.reported(*client))
        started = time.perf_counter()
        if page.touch:
            page.page.touchscreen.tap(*client)
        else:
            page.page.mouse.click(*client)
        page.page.wait_for_timeout(max(0.0, SPACING_S - (time.perf_counter() - started)) * 1e3)
    return reported


def recorded_points(page: DemoPage, sent: list[str], expected: int) -> list[list[float]]:
    """The points the app holds, once ``expected`` clicks have reached it (or what arrived by ``SETTLE_S``)."""
    deadline = time.perf_counter() + SETTLE_S
    while sent.count("ui_click") < expected and time.perf_counter() < deadline:
        page.page.wait_for_timeout(100)
    points: list[list[float]] = []
    while time.perf_counter() < deadline:
        points = page.export().session["objects"][0]["points"]
        if len(points) >= sent.count("ui_click"):
            break
    return points


@pytest.mark.parametrize("device", ["desktop", "phone"])
def test_quick_clicks_while_the_scene_loads_are_all_recorded(device, request, pictures):
    page: DemoPage = request.getfixturevalue(device)
    base = start(page, pictures) if device == "desktop" else None
    if base is None:
        page.upload(pictures["wide"], WIDE_HW)
        base = page.display_pixels()
    page.slow_network(LATENCY_MS)
    sent = page.track_events()
    aimed = targets(WIDE_HW)
    reported = rapid_clicks(page, aimed)
    points = recorded_points(page, sent, CLICKS)
    page.screenshot("after_rapid_clicks")
    assert sent.count("ui_click") == CLICKS, f"only {sent.count('ui_click')} of {CLICKS} clicks reached the server"
    assert len(points) == CLICKS, f"{len(points)} of {CLICKS} clicks recorded"
    assert [(x, y) for x, y, _ in points] == [tuple(map(float, r)) for r in reported], (
        "the clicks must be recorded in order, each at the pixel under the pointer")
    if device == "desktop":  # drawn at natural size: exactly the aimed pixels
        assert reported == aimed
    else:
        box = page.view_box()
        assert np.abs(np.subtract(reported, aimed)).max() <= box.tolerance
    page.wait_for_points(CLICKS)  # the server holds them all; the page may still be loading the last scene's layer
    expected = ObjectPrompt(tuple((x, y) for x, y, _ in points), (INCLUDE,) * CLICKS)
    check_overlay(page.display_pixels(), base, [expected], FRAME)
