"""End to end in Chromium: the brush and the eraser (``sam_demo/static/view/brush.js``) by mouse, touch and keys.

Every stroke is checked in the downloaded mask PNG, pixel by pixel, against this suite's own expectation:

* the polyline is computed here from where the pointer went (whole CSS pixels) and the view's reported
  transform (``ui.ViewBox``: ``original = (client - left - tx) / s - 0.5``, clamped to the image), the radius
  from the brush size (screen pixels) over the scale; the stroke the page sent must be exactly that;
* the painted pixels are those whose centre lies within the radius of that polyline
  (``tests.test_strokes.brute_force``: the distance to every segment, every pixel), not ``sam_onnx.strokes``;
* SAM's part is ``analytic_models.pipeline_mask`` for the prompts (pixels it calls unsure and no stroke
  covers are left out: typically none).

All the tests share the session's server (``conftest.demo_url``).
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from sam_onnx.geometry import DisplayFrame
from sam_demo.service import DEFAULT_DISPLAY_SIDE
from tests import analytic_models as am
from tests.browser.conftest import BIG_HW, WIDE_HW
from tests.browser.pixels import blend, colour
from tests.browser.test_prompts import EXCLUDE, INCLUDE, click, start
from tests.browser.ui import FINGER_REST_MS, MODE_LABELS, DemoPage, ViewBox
from tests.test_strokes import brute_force

pytestmark = pytest.mark.browser

SIZE_CSS = 24
"""The brush's default size (diameter, screen pixels): brush.js SIZE_DEFAULT_CSS."""
PREVIEW_TOLERANCE = 3
"""Grey levels a preview pixel may differ from its expected colour (canvas compositing rounds)."""
SCENE_JS = "() => document.querySelector('#display').samView.scene"
PENDING_JS = "document.querySelector('#display').samView.brush.pending.length"
"""Strokes the page draws until a scene holds them (brush.js)."""


# ---------------------------------------------------------------------------- the test's own arithmetic
def original(box: ViewBox, client: tuple[float, float]) -> list[float]:
    """The original pixel-index position under a client (CSS) position, clamped to the image's edges."""
    x = (client[0] - box.left - box.tx) / box.s - 0.5
    y = (client[1] - box.top - box.ty) / box.s - 0.5
    return [round(min(max(x, -0.5), box.W - 0.5), 3), round(min(max(y, -0.5), box.H - 0.5), 3)]


def painted(points, radius: float, hw: tuple[int, int]) -> np.ndarray:
    """Pixels within ``radius`` of the polyline, brute force in a window around it (placed in an ``hw`` frame)."""
    xy = np.asarray(points, float)
    r0, c0 = (max(0, int(np.floor(v - radius)) - 1) for v in (xy[:, 1].min(), xy[:, 0].min()))
    r1, c1 = (min(n, int(np.ceil(v + radius)) + 2) for v, n in ((xy[:, 1].max(), hw[0]), (xy[:, 0].max(), hw[1])))
    out = np.zeros(hw, bool)
    out[r0:r1, c0:c1] = brute_force(xy - [c0, r0], radius, (r1 - r0, c1 - c0))
    return out


def expected_mask(sam: tuple[np.ndarray, np.ndarray], strokes: list[dict], hw: tuple[int, int]
                  ) -> tuple[np.ndarray, np.ndarray]:
    """SAM's mask with ``strokes`` applied in order, and the pixels to compare (not unsure, or painted)."""
    mask, unsure = sam[0].copy(), sam[1].copy()
    for stroke in strokes:
        area = painted(stroke["points"], stroke["radius"], hw)
        mask = mask & ~area if stroke["erase"] else mask | area
        unsure &= ~area
    return mask, ~unsure


def assert_mask(got: np.ndarray, expected: tuple[np.ndarray, np.ndarray]) -> None:
    mask, sure = expected
    wrong = (got == 255) != mask
    assert not (wrong & sure).any(), f"{int((wrong & sure).sum())} pixels differ, e.g. at (row, col) " \
                                     f"{np.argwhere(wrong & sure)[:5].tolist()}"


def sam_part(points, labels, hw) -> tuple[np.ndarray, np.ndarray]:
    return am.pipeline_mask(points, labels, None, hw, 1)


# ---------------------------------------------------------------------------- driving the page
def track_strokes(page: DemoPage) -> list[dict]:
    """Start recording the strokes the page sends (each ``ui_stroke`` request's event data), in order."""
    names = page.page.evaluate("window.gradio_config.dependencies.map(d => d.api_name)")
    sent: list[dict] = []

    def on_request(request) -> None:
        if "/queue/join" in request.url and request.post_data:
            body = json.loads(request.post_data)
            if names[body["fn_index"]] == "ui_stroke":
                sent.append(body["event_data"])

    page.page.on("request", on_request)
    return sent


def mouse_stroke(page: DemoPage, path: list[tuple[int, int]], during=None) -> tuple[ViewBox, list[tuple[int, int]]]:
    """Press at original pixel ``path[0]``, move through the others, release; ``during()`` runs before the
    release. Returns where the view was and the client positions the pointer went through."""
    box = page.view_box()
    clients = [box.aim(*p) for p in path]
    mouse = page.page.mouse
    mouse.move(*clients[0])
    mouse.down()
    for c in clients[1:]:
        mouse.move(*c)
    if during is not None:
        during()
    before = page.drawn()
    mouse.up()
    page.wait_for_scene(before)
    return box, clients


def expect_sent(sent: list[dict], box: ViewBox, clients, size_css: float, erase: bool) -> dict:
    """The last stroke sent is the test's own polyline and radius; returns it."""
    stroke = {"points": [original(box, c) for c in clients], "radius": size_css / 2 / box.s, "erase": erase}
    got = sent[-1]
    assert got["points"] == stroke["points"] and got["erase"] == erase, (got, stroke)
    assert got["radius"] == pytest.approx(stroke["radius"], rel=1e-12)
    return stroke


def strokes_in_scene(page: DemoPage) -> int:
    scene = page.page.evaluate(SCENE_JS)
    return next(o.get("strokes", 0) for o in scene["objects"] if o.get("selected"))


def readout(page: DemoPage) -> str:
    return page.page.locator("#display .sam-brush output").inner_text()


# ---------------------------------------------------------------------------- mouse
def test_mouse_brush_and_eraser_paint_exactly_undo_per_stroke_keep_on_click_and_round_trip(desktop, pictures, tmp_path):
    base = start(desktop, pictures)
    hw = WIDE_HW
    sent = track_strokes(desktop)
    events = desktop.track_events()
    desktop.page.keyboard.press("d")
    assert desktop.checked_mode() == "brush"
    wait_for_view_mode(desktop, "brush")
    assert desktop.page.locator("#display .sam-brush").is_visible() and readout(desktop) == f"{SIZE_CSS} px"
    # an object without prompts cannot be painted: the server says so and the page stops drawing the stroke
    box = desktop.view_box()
    desktop.page.mouse.move(*box.aim(100, 100))
    desktop.page.mouse.down()
    desktop.page.mouse.move(*box.aim(140, 100))
    desktop.page.mouse.up()
    desktop.page.wait_for_function("() => [...document.querySelectorAll('[data-testid=toast-text]')]"
                                   ".some(t => t.innerText.includes('first, then paint'))")
    desktop.page.wait_for_function(f"() => {PENDING_JS} === 0")
    assert len(sent) == 1 and strokes_in_scene(desktop) == 0
    desktop.next_frame()
    left = desktop.display_pixels()[100, 120].astype(int)  # on the refused stroke: the photo again
    assert np.abs(left - base[100, 120].astype(int)).max() <= PREVIEW_TOLERANCE, (left, base[100, 120])
    del sent[:]
    desktop.page.keyboard.press("p")
    wait_for_view_mode(desktop, None)
    click(desktop, 250, 190)
    desktop.page.keyboard.press("d")
    wait_for_view_mode(desktop, "brush")

    strokes_before = events.count("ui_stroke")  # the refused stroke's

    def painting_is_shown_at_once():
        desktop.next_frame()
        pixel = desktop.display_pixels()[120, 175].astype(int)  # on the stroke, outside SAM's mask
        want = blend(base[120:121, 175:176], colour(0))[0, 0]
        assert np.abs(pixel - want).max() <= PREVIEW_TOLERANCE, (pixel, want)
        assert events.count("ui_stroke") == strokes_before, "nothing is sent while the pointer moves"
        desktop.screenshot("brush_while_dragging")

    box, clients = mouse_stroke(desktop, [(150, 100), (200, 140), (300, 120)], painting_is_shown_at_once)
    assert events.count("ui_stroke") == 2, "one event per stroke (the refused one and this one)"
    brush = expect_sent(sent, box, clients, SIZE_CSS, erase=False)
    desktop.page.keyboard.press("]")
    assert readout(desktop) == "30 px"  # 24 x 1.25

    def erasing_shows_the_photo():
        desktop.next_frame()
        pixel = desktop.display_pixels()[192, 262].astype(int)  # in SAM's mask, under the eraser, off the marker
        assert np.abs(pixel - base[192, 262].astype(int)).max() <= PREVIEW_TOLERANCE, (pixel, base[192, 262])

    desktop.page.keyboard.down("Control")  # Ctrl swaps brush and eraser for one stroke
    box, clients = mouse_stroke(desktop, [(240, 185), (285, 195)], erasing_shows_the_photo)
    desktop.page.keyboard.up("Control")
    eraser = expect_sent(sent, box, clients, 30, erase=True)
    desktop.screenshot("brush_and_eraser")
    sam = sam_part([(250, 190)], [INCLUDE], hw)
    export = desktop.export()
    assert_mask(export.mask(1), expected_mask(sam, [brush, eraser], hw))
    saved = export.session["objects"][0]["strokes"]
    assert saved == [brush, eraser], "the prompts file keeps each stroke as sent (no point to simplify away)"

    # undo takes back one stroke per press (Z), redo (Y) puts them back
    desktop.press_key("z")
    desktop.next_frame()
    pixel = desktop.display_pixels()[192, 262].astype(int)  # the page no longer draws the undone eraser stroke
    assert np.abs(pixel - blend(base[192:193, 262:263], colour(0))[0, 0]).max() <= PREVIEW_TOLERANCE, pixel
    assert_mask(desktop.export().mask(1), expected_mask(sam, [brush], hw))
    desktop.press_key("z")
    assert strokes_in_scene(desktop) == 0 and len(desktop.page.evaluate(SCENE_JS)["objects"][0]["points"]) == 1
    desktop.press_key("y")
    desktop.press_key("y")
    assert strokes_in_scene(desktop) == 2

    # a new click decodes SAM's part again and keeps the strokes
    desktop.page.keyboard.press("n")
    click(desktop, 275, 190)
    export = desktop.export()
    sam2 = sam_part([(250, 190), (275, 190)], [INCLUDE, EXCLUDE], hw)
    assert (sam2[0] != sam[0]).any(), "control: the exclude point changes SAM's part"
    expected = expected_mask(sam2, [brush, eraser], hw)
    assert_mask(export.mask(1), expected)

    # the prompts file round trip: cleared, loaded back, the same mask (the object renamed in the file, so that
    # the new export's files differ from the last one: the page lists downloads by content)
    prompts = json.loads(export.named("_prompts.json"))
    prompts["objects"][0]["name"] = "Loaded back"
    desktop.press_button("reset_btn")
    assert desktop.page.evaluate(SCENE_JS)["objects"][0]["points"] == []
    path = tmp_path / "prompts.json"
    path.write_text(json.dumps(prompts))
    before = desktop.drawn()
    desktop.page.locator("#load_btn").locator("xpath=..").locator("input[type=file]").set_input_files(str(path))
    desktop.wait_for_scene(before)
    assert strokes_in_scene(desktop) == 2 and "Loaded back" in desktop.selected_object()
    assert_mask(desktop.export().mask(1), expected)


# ---------------------------------------------------------------------------- touch
def touch(page: DemoPage, kind: str, points: list[tuple[float, float]]) -> None:
    """One touch event through Chromium's input pipeline (fingers at client CSS positions)."""
    cdp = getattr(page, "_cdp", None) or page.page.context.new_cdp_session(page.page)
    page._cdp = cdp
    cdp.send("Input.dispatchTouchEvent", {"type": kind, "touchPoints": [
        {"x": x, "y": y, "id": k} for k, (x, y) in enumerate(points)]})


def wait_for_view_mode(page: DemoPage, mode: str | None) -> None:
    """Wait until the view's input mode is ``mode`` (None: the prompt modes): brush.js follows the mode radio one
    task after its input event, so the radio can be checked before the view hands the pointer to the brush."""
    page.page.wait_for_function("mode => document.querySelector('#display').samView.mode === mode", arg=mode)


def choose_tool(page: DemoPage, mode: str) -> None:
    """Choose the brush or the eraser on the mode radio and wait until the view has switched to it: the plugin
    follows the radio one task after its input event (brush.js ``sync``), so a stroke started as soon as the radio
    is checked could still meet the previous mode (a tap at load average 8 did). Then its control names the tool."""
    page.set_mode(mode)
    wait_for_view_mode(page, mode)
    assert page.page.locator("#display .sam-brush span").text_content() == MODE_LABELS[mode]


def finger_stroke(page: DemoPage, path: list[tuple[int, int]]) -> tuple[ViewBox, list[tuple[int, int]]]:
    """One finger down at original pixel ``path[0]``, through the others, up (as :func:`mouse_stroke`)."""
    box = page.view_box()
    clients = [box.aim(*p) for p in path]
    before = page.drawn()
    touch(page, "touchStart", clients[:1])
    for c in clients[1:]:
        touch(page, "touchMove", [c])
    page.page.wait_for_timeout(FINGER_REST_MS)
    touch(page, "touchEnd", [])
    page.wait_for_scene(before)
    return box, clients


def test_touch_one_finger_paints_and_erases_two_fingers_still_zoom(phone, pictures):
    hw = WIDE_HW
    phone.upload(pictures["wide"], hw)
    tapped = phone.click_image(352, 288).reported
    sent = track_strokes(phone)
    choose_tool(phone, "brush")
    box, clients = finger_stroke(phone, [(250, 200), (300, 260), (420, 240)])
    assert box.s < 1, "control: the phone shows the picture scaled down, so CSS px are not original px"
    brush = expect_sent(sent, box, clients, SIZE_CSS, erase=False)
    choose_tool(phone, "eraser")
    box, clients = finger_stroke(phone, [(330, 280), (390, 300)])
    eraser = expect_sent(sent, box, clients, SIZE_CSS, erase=True)
    phone.screenshot("touch_strokes")
    # two fingers in eraser mode: a pinch zooms, paints nothing, sends nothing
    drawn = phone.drawn()
    cx, cy = box.aim(352, 288)
    touch(phone, "touchStart", [(cx - 20, cy), (cx + 20, cy)])
    for k in range(1, 6):
        touch(phone, "touchMove", [(cx - 20 - 10 * k, cy), (cx + 20 + 10 * k, cy)])
    phone.page.wait_for_timeout(FINGER_REST_MS)
    touch(phone, "touchEnd", [])
    phone.page.wait_for_timeout(300)
    assert phone.page.evaluate("() => document.querySelector('#display').samView.geometry.zoom") > 2
    assert len(sent) == 2 and phone.drawn() == drawn, "a pinch is no stroke"
    assert phone.page.evaluate("() => document.querySelector('#display').samView.brush.active") is None, (
        "the first finger's stroke was dropped, not left drawn")
    sam = sam_part([tapped], [INCLUDE], hw)
    assert_mask(phone.export().mask(1), expected_mask(sam, [brush, eraser], hw))


# ---------------------------------------------------------------------------- zoom and keys
def test_brush_at_2x_zoom_paints_the_original_pixels_under_it_with_the_radius_over_the_zoom(desktop, pictures):
    from tests.browser.test_view_input import zoom_to

    hw = BIG_HW
    frame = DisplayFrame.fit(hw, DEFAULT_DISPLAY_SIDE)
    desktop.upload(pictures["big"], frame.display_hw, hw)
    click_at = desktop.click_image(2000, 1500).reported
    sent = track_strokes(desktop)
    zoom_to(desktop, 2)
    desktop.page.keyboard.press("d")
    box, clients = mouse_stroke(desktop, [(1900, 1400), (1960, 1440), (2060, 1420)])
    assert box.s == pytest.approx(2 * min(box.box_w / hw[1], box.box_h / hw[0], frame.display_hw[1] / hw[1]))
    brush = expect_sent(sent, box, clients, SIZE_CSS, erase=False)
    assert brush["radius"] > SIZE_CSS, "control: an original pixel is smaller than a CSS pixel here"
    # Enter paints a dot at the keyboard cursor (the pixel pressed last), with the size set by keys
    for _ in range(3):
        desktop.page.keyboard.press("]")
    assert readout(desktop) == "48 px"  # 24 -> 30 -> 38 -> 48
    before = desktop.drawn()
    desktop.page.keyboard.press("Enter")
    desktop.wait_for_scene(before)
    cursor = box.reported(*clients[0])
    dab = {"points": [list(map(float, cursor))], "radius": 48 / 2 / box.s, "erase": False}
    assert sent[-1]["points"] == dab["points"] and sent[-1]["radius"] == pytest.approx(dab["radius"], rel=1e-12)
    desktop.screenshot("brush_at_2x")
    sam = sam_part([click_at], [INCLUDE], hw)
    assert_mask(desktop.export().mask(1), expected_mask(sam, [brush, dab], hw))
