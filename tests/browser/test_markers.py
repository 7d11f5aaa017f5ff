"""End to end in Chromium: what the view draws for points at the image edge and for many objects.

Measured on the view's canvas as the browser drew it, with this suite's own
numbers (``pixels.py``), not the app's drawing code: a point marker at the
image edge is a whole disc (it was cut to a sliver in a corner), and twelve
objects show twelve different colours, in the picture and in the list (the
colours used to repeat from the 8th object).
"""

from __future__ import annotations

import re

import numpy as np
import pytest

from sam_demo.service import DEFAULT_DISPLAY_SIDE
from sam_onnx.geometry import DisplayFrame
from tests.browser.conftest import BIG_HW
from tests.browser.pixels import OKABE_ITO, marker_radius, marker_rim
from tests.browser.test_prompts import click, start
from tests.browser.ui import OBJECT_ROWS, DemoPage

pytestmark = pytest.mark.browser

JPEG_COLOUR_TOLERANCE = 60
"""Sum of absolute RGB differences within which a displayed pixel counts as the marker's pure colour."""
FIRST_COLOUR = OKABE_ITO[0]


def marker_disc(pixels: np.ndarray, near: tuple[float, float], reach: float) -> tuple[int, int, int, int]:
    """``(top, left, bottom, right)`` (inclusive) of the pixels in the first object's pure colour within ``reach``
    of ``near`` (x, y): the coloured disc of its point marker (the fill is a blend, far from the pure colour)."""
    h, w = pixels.shape[:2]
    yy, xx = np.mgrid[0:h, 0:w]
    window = (np.abs(xx - near[0]) <= reach) & (np.abs(yy - near[1]) <= reach)
    pure = np.abs(pixels.astype(int) - FIRST_COLOUR).sum(axis=-1) <= JPEG_COLOUR_TOLERANCE
    rows, cols = np.nonzero(pure & window)
    assert rows.size, f"no marker in the first object's colour near {near}"
    return int(rows.min()), int(cols.min()), int(rows.max()), int(cols.max())


def test_markers_at_the_image_edge_are_drawn_whole(desktop: DemoPage, pictures):
    frame = DisplayFrame.fit(BIG_HW, DEFAULT_DISPLAY_SIDE)
    H, W = BIG_HW
    desktop.upload(pictures["big"], frame.display_hw, BIG_HW)
    desktop.tap_or_click(desktop.page.locator("#contour input"))  # no outline: only markers are the pure colour
    desktop.page.wait_for_function("() => !document.querySelector('#contour input').checked")
    radius, rim = marker_radius(), marker_rim()
    whole = 2 * (radius - rim) - 4  # width of the coloured disc inside the rim, less anti-aliasing
    for aimed in ((2, 2), (W - 3, H // 2), (W // 3, H - 2)):
        result = desktop.click_image(*aimed)
        box = result.box
        assert box.dpr == 1
        pixels = desktop.canvas_pixels()
        near = (result.client[0] - box.left, result.client[1] - box.top)  # canvas px = CSS px here
        top, left, bottom, right = marker_disc(pixels, near, 3 * radius)
        desktop.screenshot(f"edge_marker_{aimed[0]}_{aimed[1]}")
        assert bottom - top + 1 >= whole and right - left + 1 >= whole, (
            f"the marker of the point at {aimed} is cut: its disc spans {right - left + 1} x {bottom - top + 1} "
            f"px, a whole one {whole:.0f}+")
        x0, y0, x1, y1 = box.tx, box.ty, box.tx + W * box.s, box.ty + H * box.s  # the picture on the canvas
        assert top >= y0 + 1 and left >= x0 + 1 and bottom <= y1 - 2 and right <= x1 - 2, (
            "the disc's rim is cut by the picture's edge")
        centre = ((left + right) / 2, (top + bottom) / 2)
        assert np.hypot(centre[0] - near[0], centre[1] - near[1]) <= 1.5 * radius + 2, (
            "the marker stays next to its point")
        desktop.press_button("undo_btn")  # one point at a time


SWATCH = re.compile(r"background:\s*#([0-9a-fA-F]{6})")
OBJECTS = 12
GRID = [(90 + 170 * (k % 4), 100 + 190 * (k // 4)) for k in range(OBJECTS)]
"""One positive click per object, far enough apart that the masks (ellipses of about 44 x 36 px) do not meet."""
FILL_OFFSET = 25
"""Display px right of each click where the fill is sampled: inside the mask, beyond the marker and outline."""
MIN_COLOUR_DISTANCE = 45
"""Sum of absolute RGB differences two objects' colours must exceed (the closest of the first 12 differ by ~90)."""


def test_colours_stay_distinct_past_eight_objects(desktop: DemoPage, pictures):
    base = start(desktop, pictures).astype(int)
    for k, (x, y) in enumerate(GRID):
        if k:
            desktop.add_object()
        click(desktop, x, y)
    desktop.screenshot("twelve_objects")
    overlay = desktop.display_pixels().astype(int)
    # the colour each object is drawn in, from its fill: overlay = (base + colour) / 2 at opacity 0.5
    drawn = []
    for x, y in GRID:
        patch = (slice(y - 1, y + 2), slice(x + FILL_OFFSET - 1, x + FILL_OFFSET + 2))
        drawn.append(np.clip(2 * overlay[patch].mean(axis=(0, 1)) - base[patch].mean(axis=(0, 1)), 0, 255))
    drawn = np.array(drawn)
    apart = np.abs(drawn[:, None] - drawn[None]).sum(axis=-1) + np.eye(OBJECTS) * 1e9
    i, j = np.unravel_index(np.argmin(apart), apart.shape)
    assert apart.min() > MIN_COLOUR_DISTANCE, (
        f"objects {i + 1} and {j + 1} are drawn in nearly the same colour: {drawn[i].round()} and {drawn[j].round()}")
    swatches = [SWATCH.search(html).group(1) for html in
                desktop.page.locator(f"{OBJECT_ROWS} .swatch").evaluate_all("s => s.map(e => e.outerHTML)")]
    listed = np.array([[int(h[k:k + 2], 16) for k in (0, 2, 4)] for h in swatches])
    assert len(set(swatches)) == OBJECTS, f"the list shows repeated colours: {swatches}"
    assert np.abs(listed - drawn).sum(axis=-1).max() <= MIN_COLOUR_DISTANCE, "the list's swatches match the picture"
