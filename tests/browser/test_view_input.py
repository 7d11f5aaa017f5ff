"""End to end in Chromium: the view's gestures, zoom, keyboard and screen-reader access, and its plugin API.

* a drag draws a box in any mode (with a rubber band while dragging), a double-click adds one point;
* zoomed to 2x and 8x (buttons, keys, wheel; a phone pinch) a click still lands on the original pixel under
  the pointer, computed by this suite's own arithmetic from the view's reported transform, on a 4000x3000
  photo and an EXIF-rotated one; past the display copy's resolution the full-resolution copy is drawn;
* the keyboard alone: reach the view with Tab, move the cursor, Enter places points and (twice) a box,
  Escape cancels a half box, a candidate is chosen and the masks exported; every step is announced in the
  polite live region; Chromium's accessibility tree names the view and describes its state;
* segment everything draws no markers for automatic objects (only the selected one's);
* the plugin API (``element.samView``): a layer drawn by a plugin at original pixels, an input mode that
  takes drags as strokes instead of boxes.
"""

from __future__ import annotations

import pytest

from sam_demo.service import DEFAULT_DISPLAY_SIDE
from sam_onnx.geometry import DisplayFrame
from tests.browser.conftest import BIG_HW, PHONE_PHOTO_HW, WIDE_HW
from tests.browser.pixels import ObjectPrompt, check_overlay
from tests.browser.test_prompts import FRAME, INCLUDE, objects, start
from tests.browser.ui import EXAMPLE_BUTTON, FINGER_REST_MS, UPLOAD_INPUT, DemoPage

pytestmark = pytest.mark.browser

VIEW = "#display .sam-view"


def drag(page: DemoPage, a: tuple[int, int], b: tuple[int, int], steps: int = 8) -> None:
    """Press at original pixel ``a``, move to ``b`` in ``steps``, release (mouse)."""
    box = page.view_box()
    (ax, ay), (bx, by) = box.aim(*a), box.aim(*b)
    page.page.mouse.move(ax, ay)
    page.page.mouse.down()
    for k in range(1, steps + 1):
        page.page.mouse.move(ax + (bx - ax) * k / steps, ay + (by - ay) * k / steps)
    band = page.page.evaluate("() => document.querySelector('#display').samView.band")
    assert band == [list(a), list(b)], f"the rubber band follows the drag: {band}"
    page.screenshot("rubber_band")
    page.page.mouse.up()


def test_a_drag_draws_a_box_in_any_mode_and_a_double_click_adds_one_point(desktop, pictures):
    base = start(desktop, pictures)
    assert desktop.checked_mode() == "include"
    before = desktop.drawn()
    drag(desktop, (560, 470), (150, 90))
    desktop.wait_for_scene(before)
    desktop.screenshot("dragged_box")
    box_only = ObjectPrompt(box=(150.0, 90.0, 560.0, 470.0), candidate=0)
    check_overlay(desktop.display_pixels(), base, [box_only], FRAME)
    desktop.add_object()
    sent = desktop.track_events()
    box = desktop.view_box()
    before = desktop.drawn()
    desktop.page.mouse.dblclick(*box.aim(250, 300))
    desktop.wait_for_scene(before)
    desktop.page.wait_for_timeout(500)  # a second point would have been sent by now
    assert sent.count("ui_click") == 1, f"a double-click sent {sent.count('ui_click')} points"
    assert objects(desktop.export()) == [box_only, ObjectPrompt(((250.0, 300.0),), (INCLUDE,), color_index=1)]


def zoom_to(page: DemoPage, zoom: float) -> None:
    """Reset, then press the + button until the view shows ``zoom`` (1.5 per press: 2.25 ~ '2', 8 needs keys)."""
    page.page.locator("#display .sam-zoombar button[aria-label^='Reset zoom']").click()
    page.page.evaluate("z => document.querySelector('#display').samView.zoomTo(z)", zoom)
    page.page.wait_for_function("z => Math.abs(document.querySelector('#display').samView.geometry.zoom - z) < 1e-9",
                                arg=zoom)


@pytest.mark.parametrize("picture, hw", [("big", BIG_HW), ("exif", PHONE_PHOTO_HW)], ids=["4000x3000", "exif"])
def test_clicks_land_on_the_pixel_under_the_pointer_at_1x_2x_and_8x(desktop, pictures, picture, hw):
    frame = DisplayFrame.fit(hw, DEFAULT_DISPLAY_SIDE)
    desktop.upload(pictures[picture], frame.display_hw, hw)
    H, W = hw
    targets = {1: (W // 3, H // 4), 2: (W // 2 + 7, H // 2 - 5), 8: (W // 2 + 3, H // 2 + 2)}
    recorded = []
    for zoom, target in targets.items():
        if zoom == 1:
            desktop.view_box().check_fit()
        else:
            zoom_to(desktop, zoom)
        level = desktop.page.locator("#display .sam-zoom-level").inner_text()
        assert level == f"{zoom}×", level
        result = desktop.click_image(*target)
        assert abs(result.box.s - zoom * min(result.box.box_w / W, result.box.box_h / H, frame.display_hw[1] / W)) \
            < 1e-9
        assert max(abs(result.reported[0] - target[0]), abs(result.reported[1] - target[1])) <= result.box.tolerance
        if result.box.s >= 1:
            assert result.reported == target, "one original pixel spans a CSS pixel or more: exact"
        recorded.append(result.reported)
        desktop.screenshot(f"zoom_{zoom}")
    points = desktop.export().session["objects"][0]["points"]
    assert [tuple(p[:2]) for p in points] == [tuple(map(float, r)) for r in recorded]
    if frame.display_hw != hw:  # zoomed past the display copy: the full-resolution copy is drawn
        desktop.page.wait_for_function("() => { const v = document.querySelector('#display').samView;"
                                       " return !!v.full && v.full.ready; }")


def test_zoom_by_wheel_keys_and_buttons_keeps_the_point_under_the_pointer(desktop, pictures):
    start(desktop, pictures)
    box = desktop.view_box()
    cx, cy = box.aim(300, 200)
    desktop.page.mouse.move(cx, cy)
    desktop.page.mouse.wheel(0, -300)
    desktop.page.wait_for_function("() => document.querySelector('#display').samView.geometry.zoom > 1.5")
    zoomed = desktop.view_box()
    assert zoomed.reported(cx, cy) == (300, 200), "the pixel under the pointer stays under it"
    desktop.page.locator(VIEW).focus()
    desktop.page.keyboard.press("0")
    assert desktop.page.evaluate("() => document.querySelector('#display').samView.geometry.zoom") == 1
    desktop.page.keyboard.press("+")
    desktop.page.locator("#display .sam-zoombar button[aria-label^='Zoom in']").click()
    assert desktop.page.evaluate("() => document.querySelector('#display').samView.geometry.zoom") == pytest.approx(
        2.25)
    desktop.page.locator("#display .sam-zoombar button[aria-label^='Zoom out']").click()
    assert desktop.page.locator("#display .sam-zoom-level").inner_text() == "1.5×"


def test_phone_pinch_zooms_and_a_tap_still_lands_exactly(phone, pictures):
    phone.upload(pictures["wide"], WIDE_HW)
    box = phone.view_box()
    cx, cy = box.aim(352, 288)
    cdp = phone.page.context.new_cdp_session(phone.page)

    def touch(kind: str, points: list[tuple[float, float]]) -> None:
        cdp.send("Input.dispatchTouchEvent", {"type": kind, "touchPoints": [
            {"x": x, "y": y, "id": k} for k, (x, y) in enumerate(points)]})

    touch("touchStart", [(cx - 20, cy), (cx + 20, cy)])
    for k in range(1, 9):
        touch("touchMove", [(cx - 20 - 10 * k, cy), (cx + 20 + 10 * k, cy)])
    phone.page.wait_for_timeout(FINGER_REST_MS)  # lifted at rest: a lift while moving is a fling, and the next tap stops it
    touch("touchEnd", [])
    zoom = phone.page.evaluate("() => document.querySelector('#display').samView.geometry.zoom")
    assert zoom == pytest.approx(5.0, rel=0.05), f"spreading two fingers from 40 to 200 px zooms 5x, got {zoom}"
    sent = phone.page.evaluate("() => document.querySelector('#display').samView.scene.objects"
                               ".map(o => [o.points || [], o.box || null])")
    assert sent == [[[], None]], f"a pinch sends no prompt: {sent}"  # (not the scene count: the upload may draw a second)
    result = phone.click_image(352, 288)
    assert result.box.s * box.dpr > 1 and result.reported == (352, 288)
    assert phone.export().session["objects"][0]["points"] == [[352.0, 288.0, INCLUDE]]


# ---------------------------------------------------------------------------- keyboard and screen reader
def announced(page: DemoPage, text: str) -> None:
    page.page.wait_for_function(
        "t => document.querySelector('#display [role=status]').textContent.includes(t)", arg=text)


def ax_view_node(page: DemoPage) -> dict:
    cdp = page.page.context.new_cdp_session(page.page)
    tree = cdp.send("Accessibility.getFullAXTree")["nodes"]
    found = [n for n in tree if n.get("name", {}).get("value", "").startswith("Image ")
             and n.get("role", {}).get("value") == "application"]
    assert len(found) == 1, "one accessible image view"
    return found[0]


def tab_to(page: DemoPage, selector: str, limit: int = 60) -> None:
    for _ in range(limit):
        page.page.keyboard.press("Tab")
        if page.page.evaluate("s => document.activeElement && document.activeElement.matches(s)", selector):
            return
    raise AssertionError(f"{selector} cannot be reached with Tab")


EXAMPLE = "coffee.jpg"
EXAMPLE_HW = (400, 600)


def test_keyboard_only_points_box_candidate_and_export_with_announcements(desktop):
    desktop.focus_page()
    tab_to(desktop, EXAMPLE_BUTTON.format(name=EXAMPLE))
    desktop.page.keyboard.press("Enter")
    desktop.wait_for_display(EXAMPLE_HW, EXAMPLE_HW)
    tab_to(desktop, VIEW)
    node = ax_view_node(desktop)
    assert node["name"]["value"] == "Image 600 by 400 pixels, 0 masks shown"
    assert "Arrow keys move the cursor" in node.get("description", {}).get("value", "")
    assert desktop.page.evaluate("() => getComputedStyle(document.activeElement).outlineStyle") != "none"
    keys = desktop.page.keyboard
    assert desktop.view_box().natural
    # the cursor starts at the centre (300, 200); 8 CSS px per arrow press at scale 1, x8 with Shift
    before = desktop.drawn()
    keys.press("Shift+ArrowLeft")          # (236, 200)
    keys.press("Enter")
    desktop.wait_for_scene(before)
    announced(desktop, "Object 1: mask updated")
    keys.press("n")                          # exclude (the page's shortcut; focus stays on the view)
    assert desktop.checked_mode() == "exclude"
    before = desktop.drawn()
    keys.press("ArrowRight")
    keys.press("ArrowRight")                 # (252, 200)
    keys.press("Enter")
    desktop.wait_for_scene(before)
    keys.press("a")                          # a new object
    desktop.wait_for_objects(2)
    keys.press("b")                          # box mode: two Enters
    before = desktop.drawn()
    for _ in range(3):
        keys.press("ArrowDown")              # (252, 224)
    keys.press("Enter")
    desktop.wait_for_scene(before)
    announced(desktop, "First corner placed")
    before = desktop.drawn()
    keys.press("Escape")                     # cancels the half box
    desktop.wait_for_scene(before)
    announced(desktop, "Box cancelled")
    before = desktop.drawn()
    keys.press("Enter")
    desktop.wait_for_scene(before)
    before = desktop.drawn()
    keys.press("Shift+ArrowRight")
    keys.press("Shift+ArrowDown")            # (316, 288)
    keys.press("Enter")
    desktop.wait_for_scene(before)
    announced(desktop, "Object 2: mask updated")
    before = desktop.drawn()
    keys.press("1")                          # candidate 1
    desktop.wait_for_scene(before)
    desktop.wait_for_chosen_candidate(1)
    node = ax_view_node(desktop)
    assert node["name"]["value"] == "Image 600 by 400 pixels, 2 masks shown"
    assert "Object 2 selected: 0 points and a box" in node["description"]["value"]
    desktop.screenshot("keyboard_only")
    tab_to(desktop, "#export_btn")
    keys.press("Enter")
    desktop.page.wait_for_function("() => [...document.querySelectorAll('#downloads a')].some(a => "
                                   "a.href.endsWith('_prompts.json'))")
    export = desktop.listed_files()
    saved = export.session["objects"]
    assert saved[0]["points"] == [[236.0, 200.0, 1], [252.0, 200.0, 0]]
    assert saved[1]["box"] == [252.0, 224.0, 316.0, 288.0] and saved[1]["candidate"] == 0


# ---------------------------------------------------------------------------- results you can read
def test_segment_everything_draws_no_markers_for_automatic_objects(laptop: DemoPage, pictures):
    laptop.upload(pictures["wide"], WIDE_HW)
    laptop.page.locator("#everything").get_by_text("Segment everything").first.click()
    laptop.tap_or_click(laptop.page.locator("#everything_preset label", has_text="fast"))
    before = laptop.drawn()
    laptop.page.locator("#everything_btn").click()
    laptop.page.wait_for_function("() => document.querySelectorAll('#objects .obj-row').length > 30")
    laptop.wait_for_scene(before)
    laptop.page.evaluate("window.scrollTo(0, 0)")
    laptop.screenshot("segment_everything")
    scene = laptop.page.evaluate("() => document.querySelector('#display').samView.scene")
    autos = [o for o in scene["objects"] if o.get("auto")]
    assert len(autos) > 30 and all(("points" in o) == bool(o.get("selected")) for o in autos)
    # on the canvas: a marker's white glyph sits on its point; none for the automatic objects but the selected one
    pixels = laptop.display_pixels().astype(int)
    session = laptop.export().session["objects"]
    white = {}
    for obj in session:
        if obj["points"]:
            x, y = (round(v) for v in obj["points"][0][:2])
            white[obj["id"]] = bool((pixels[y, x] > 235).all())
    selected = next(o["id"] for o in scene["objects"] if o.get("selected"))
    assert white[selected], "control: the selected object's marker is drawn"
    assert not any(w for i, w in white.items() if i != selected), "an automatic object draws a marker"


# ---------------------------------------------------------------------------- plugin API
PLUGIN_JS = """() => {
  const view = document.querySelector('#display').samView;
  window.__plugin = {strokes: [], hovers: 0, commits: []};
  view.addLayer('test-square', (g, frame) => {   // a red square over original pixels [100, 140) x [50, 90)
    const [x0, y0] = frame.t.edgeToCss(100, 50), [x1, y1] = frame.t.edgeToCss(140, 90);
    g.fillStyle = 'rgb(255, 0, 0)'; g.fillRect(x0, y0, x1 - x0, y1 - y0);
  });
  view.on('hover', () => { window.__plugin.hovers += 1; });
  view.on('commit', (d) => window.__plugin.commits.push(d));
  let stroke = null;
  view.registerMode('test-brush', {
    cursor: 'cell',
    onDown: (p) => { stroke = [[p.x, p.y]]; },
    onMove: (p) => { if (stroke) stroke.push([p.x, p.y]); },
    onUp: (p) => { window.__plugin.strokes.push(stroke); stroke = null; },
  });
  view.setMode('test-brush');
  view.redraw();
}"""


def test_a_plugin_adds_a_layer_and_an_input_mode_without_touching_the_view(desktop, pictures):
    start(desktop, pictures)
    desktop.page.evaluate(PLUGIN_JS)
    desktop.next_frame()  # the redraw runs on the next animation frame
    pixels = desktop.display_pixels()
    assert pixels[70, 120].tolist() == [255, 0, 0] and pixels[95, 120].tolist() != [255, 0, 0]
    sent = desktop.track_events()
    box = desktop.view_box()
    desktop.page.mouse.move(*box.aim(200, 200))
    desktop.page.mouse.down()
    desktop.page.mouse.move(*box.aim(260, 230))
    desktop.page.mouse.up()
    plugin = desktop.page.evaluate("() => window.__plugin")
    assert plugin["strokes"] and plugin["strokes"][0][0] == [200, 200] and plugin["strokes"][0][-1] == [260, 230]
    assert plugin["hovers"] > 0
    desktop.page.wait_for_timeout(300)
    assert "ui_click" not in sent and not plugin["commits"], "a drag in the plugin's mode is the plugin's"
    desktop.page.evaluate("() => document.querySelector('#display').samView.setMode(null)")
    desktop.click_image(300, 200)
    assert desktop.page.evaluate("() => window.__plugin.commits") == [{"kind": "click", "x": 300, "y": 200}]


def test_clicks_while_a_new_image_opens_are_refused_with_a_visible_message(desktop, pictures):
    start(desktop, pictures)
    desktop.slow_network(400)  # the new upload takes a while to arrive: time to click on the old image
    sent = desktop.track_events()
    box = desktop.view_box()
    desktop.page.locator(UPLOAD_INPUT).set_input_files(str(pictures["exif"]))
    desktop.page.mouse.click(*box.aim(300, 300))
    note = desktop.page.locator("#display .sam-busy")
    note.wait_for(state="visible")
    assert "Your click was not used" in note.inner_text()
    desktop.screenshot("click_refused_while_opening")
    desktop.wait_for_display(PHONE_PHOTO_HW, PHONE_PHOTO_HW)
    note.wait_for(state="hidden")
    assert "ui_click" not in sent, "the click was not sent to the old image"
    scene = desktop.page.evaluate("() => document.querySelector('#display').samView.scene")
    assert scene["image"]["w"] == PHONE_PHOTO_HW[1] and scene["objects"][0]["points"] == []
