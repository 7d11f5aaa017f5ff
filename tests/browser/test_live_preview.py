"""Live previews in the real page: the mask under the pointer before a click, computed by the page's own decoder.

The demo runs on the analytic models (their masks are known in closed form) with the page decoder on, and each
page here has the live preview turned on. A preview is checked where the user sees it: the pixels the view
draws with it minus the pixels it draws without it are exactly the closed-form mask of the object's prompts
plus the hovered point, at display resolution (on the canvas itself when it shows the display copy one to
one, else on the view's snapshot at the display size, drawn by the same renderer).
"""

from __future__ import annotations

import os

import numpy as np
import pytest
from PIL import Image

from sam_onnx import Sam2Predictor
from tests import analytic_models as am
from tests.browser import conftest as browser_conftest
from tests.browser.conftest import BIG_HW, DESKTOP, NO_WASM_ENV, NO_WASM_JS, PHONE, PHONE_PHOTO_HW, WIDE_HW
from tests.browser.pixels import gradient_rgb, grow
from tests.browser.ui import decode_data_url

pytestmark = [pytest.mark.browser,
              pytest.mark.skipif(os.environ.get(NO_WASM_ENV) == "1", reason="previews need WebAssembly")]

VIEW = "document.querySelector('#display').samView"
LIVE = f"{VIEW}.livePreview"
PREVIEW_COUNT_JS = f"() => {LIVE} ? {LIVE}.stats.previews : -1"
# Wait until the n-th preview is drawn on the canvas (two animation frames after it was handed to the view).
PREVIEWED_JS = f"""async (n) => {{
  for (let i = 0; i < 3000 && !({LIVE} && {LIVE}.stats.previews > n); i++) await new Promise((r) => setTimeout(r, 20));
  await new Promise((r) => requestAnimationFrame(() => requestAnimationFrame(r)));
  const p = {LIVE};
  return {{ previews: p.stats.previews, stale: p.stats.stale, asked: p.stats.asked,
           shown: p.shown && {{ x: p.shown.x, y: p.shown.y, prompts: p.shown.prompts }},
           overlays: [...{VIEW}.overlays.keys()] }}; }}"""
READY_JS = f"""async () => {{ for (let i = 0; i < 3000; i++) {{
    const p = {LIVE}; if (p && p.decoder && p.image) {{ await p.image.ready; return true; }}
    if (p && p.off) return p.off.reason; await new Promise((r) => setTimeout(r, 20)); }} return false; }}"""
SNAPSHOT_JS = f"() => {VIEW}.snapshot()"


def _open_live(request, browser, demo_url, screenshots, options, touch=False, init=None):
    gen = browser_conftest._open(request, browser, demo_url, screenshots, options, touch, previews=True)
    demo = next(gen)
    if init:
        demo.page.context.add_init_script(init)
    return demo, gen


@pytest.fixture
def live(request, browser, demo_url, screenshots):
    """A desktop page (1440 x 1000, mouse) with live previews on."""
    demo, gen = _open_live(request, browser, demo_url, screenshots, DESKTOP)
    yield demo
    next(gen, None)


@pytest.fixture
def live_phone(request, browser, demo_url, screenshots):
    """A 390 x 844 phone page with touch input and live previews on."""
    demo, gen = _open_live(request, browser, demo_url, screenshots, PHONE, touch=True)
    yield demo
    next(gen, None)


def _upload_ready(demo, path, display_hw, original_hw=None):
    demo.upload(path, display_hw, original_hw)
    assert demo.page.evaluate(READY_JS) is True


def _expected(points, labels, box, original_hw, display_hw):
    candidate = 1 if 1 in labels else 0  # the analytic models' best score (IOU_WITH/WITHOUT_POSITIVE)
    return am.pipeline_mask(np.asarray(points, float).reshape(-1, 2), labels, box, original_hw, candidate,
                            out_hw=display_hw)


def _pixels(demo, natural: bool):
    return demo.canvas_pixels() if natural else decode_data_url(demo.page.evaluate(SNAPSHOT_JS))


def _changed_by_preview(demo, before_leave) -> np.ndarray:
    """Display-frame pixels the preview changes: the picture with it minus the picture after it was cleared."""
    box = demo.view_box()
    natural = box.natural
    with_preview = _pixels(demo, natural)
    before_leave()
    demo.next_frame()
    assert demo.page.evaluate(f"() => [...{VIEW}.overlays.keys()]") == []
    without = _pixels(demo, natural)
    changed = (with_preview.astype(int) != without.astype(int)).any(axis=2)
    if natural:  # the canvas: the image's rectangle on it is the display frame, one pixel each
        return changed[int(box.ty):int(box.ty) + box.dh, int(box.tx):int(box.tx) + box.dw]
    return changed


MARK_RADIUS = 14
"""Display px around a drawn point marker (8 CSS px + rim) or a pending corner's crosshair (12 CSS px arms) left
out of a pixel comparison: markers are drawn over the preview, so their pixels do not change with it."""


def _marks(points, original_hw, display_hw) -> np.ndarray:
    """Bool (display) discs of MARK_RADIUS around the display positions of original-pixel ``points``."""
    (h, w), (dh, dw) = original_hw, display_hw
    yy, xx = np.mgrid[0:dh, 0:dw]
    out = np.zeros((dh, dw), bool)
    for x, y in points:
        cx, cy = (x + 0.5) * dw / w - 0.5, (y + 0.5) * dh / h - 0.5
        out |= np.hypot(xx - cx, yy - cy) <= MARK_RADIUS
    return out


OUTLINE_PX = 3
"""Display px on either side of the selected object's mask edge left out of a pixel comparison: its outline
(white ring, dark rim) is drawn over the preview."""


def _outline(mask: np.ndarray) -> np.ndarray:
    """Pixels within OUTLINE_PX of a mask's edge."""
    return grow(mask, OUTLINE_PX) & grow(~mask, OUTLINE_PX)


def _assert_is_mask(changed, expected, unsure, what):
    wrong = (changed != expected) & ~unsure
    assert not wrong.any(), f"{what}: {int(wrong.sum())} pixels differ (first at {np.argwhere(wrong)[0].tolist()})"


def _hover(demo, x, y, count_before):
    """Move the pointer over original pixel (x, y) and wait until its preview is drawn."""
    box = demo.view_box()
    client = box.aim(x, y)
    demo.page.mouse.move(*client)
    demo.page.wait_for_function(f"([x, y]) => {LIVE}.shown && {LIVE}.shown.x === x && {LIVE}.shown.y === y",
                                arg=list(box.reported(*client)))
    return demo.page.evaluate(PREVIEWED_JS, count_before)


# ---------------------------------------------------------------------------- preview pixels
@pytest.mark.parametrize("picture", ["wide", "big", "exif"])
def test_the_preview_is_the_closed_form_mask_at_the_right_pixels(live, pictures, picture):
    """Desktop: a 704x576 picture shown one to one, a 4000x3000 photo shown downscaled to 1536x1152, and a phone
    photo stored sideways (EXIF orientation 6) shown upright."""
    original_hw = {"wide": WIDE_HW, "big": BIG_HW, "exif": PHONE_PHOTO_HW}[picture]
    display_hw = (1152, 1536) if picture == "big" else original_hw
    _upload_ready(live, pictures[picture], display_hw, original_hw)
    h, w = original_hw
    first = (int(w * 0.3), int(h * 0.35))
    live.click_image(*first)
    x, y = int(w * 0.62), int(h * 0.58)
    state = _hover(live, x, y, live.page.evaluate(PREVIEW_COUNT_JS))
    box = live.view_box()
    hovered = box.reported(*box.aim(x, y))
    assert state["shown"]["prompts"]["points"][-1] == [*hovered, 1]
    expected, unsure = _expected([first, hovered], [1, 1], None, original_hw, display_hw)
    changed = _changed_by_preview(live, lambda: live.page.mouse.move(2, 2))  # leave the image
    drawn, _ = _expected([first], [1], None, original_hw, display_hw)  # the object as the server drew it
    ignore = unsure | _marks([first], original_hw, display_hw) | _outline(drawn)
    _assert_is_mask(changed, expected, ignore, f"preview on {picture}")


def test_touch_and_hold_shows_the_preview_and_release_adds_the_point(live_phone, pictures):
    demo = live_phone
    _upload_ready(demo, pictures["wide"], WIDE_HW)
    h, w = WIDE_HW
    box = demo.view_box()
    client = box.aim(int(w * 0.5), int(h * 0.4))
    x, y = box.reported(*client)
    cdp = demo.page.context.new_cdp_session(demo.page)
    before = demo.drawn()
    cdp.send("Input.dispatchTouchEvent", {"type": "touchStart", "touchPoints": [{"x": client[0], "y": client[1]}]})
    state = demo.page.evaluate(PREVIEWED_JS, 0)
    assert state["shown"]["prompts"]["points"] == [[x, y, 1]]  # held: the preview, nothing sent yet
    assert demo.drawn() == before
    expected, unsure = _expected([(x, y)], [1], None, WIDE_HW, WIDE_HW)
    shown = decode_data_url(demo.page.evaluate(SNAPSHOT_JS))
    cdp.send("Input.dispatchTouchEvent", {"type": "touchEnd", "touchPoints": []})
    demo.wait_for_scene(before)
    scene = demo.page.evaluate(f"() => {VIEW}.scene")
    assert scene["objects"][0]["points"] == [[x, y, 1]]  # the release committed exactly that point
    demo.page.evaluate(f"() => {LIVE}.onLeave()")
    demo.next_frame()
    assert demo.page.evaluate(f"() => [...{VIEW}.overlays.keys()]") == []
    # the held preview's pixels were the closed-form mask (snapshot: the phone's canvas is at 2 device px per CSS px)
    plain = _without_objects(demo)
    changed = (shown.astype(int) != plain.astype(int)).any(axis=2)
    _assert_is_mask(changed, expected, unsure, "touch-and-hold preview")


def _without_objects(demo):
    """The display copy as the view draws it with no object and no overlay (the scene's objects hidden)."""
    return decode_data_url(demo.page.evaluate(f"""() => {{ const v = {VIEW}; const s = v.scene;
        v.scene = {{...s, objects: [], pending: null}}; const url = v.snapshot(); v.scene = s; return url; }}"""))


# ---------------------------------------------------------------------------- behaviour
def test_stale_moves_are_dropped_and_the_last_position_is_previewed(live, pictures):
    _upload_ready(live, pictures["wide"], WIDE_HW)
    h, w = WIDE_HW
    box = live.view_box()
    positions = [(int(w * (0.15 + 0.012 * k)), int(h * (0.3 + 0.008 * k))) for k in range(50)]
    for x, y in positions:
        live.page.mouse.move(*box.aim(x, y))  # 50 moves as fast as Playwright sends them
    last = box.reported(*box.aim(*positions[-1]))
    live.page.wait_for_function(f"([x, y]) => {LIVE}.shown && {LIVE}.shown.x === x && {LIVE}.shown.y === y",
                                arg=list(last))
    state = live.page.evaluate(PREVIEWED_JS, 0)
    assert [state["shown"]["x"], state["shown"]["y"]] == list(last)
    assert state["asked"] == 50
    assert state["previews"] < 50 and state["stale"] > 0, state  # never more than one decode waits


def test_box_mode_preview_follows_the_second_corner(live, pictures):
    _upload_ready(live, pictures["wide"], WIDE_HW)
    h, w = WIDE_HW
    live.set_mode("box")
    live.page.mouse.move(2, 2)
    assert live.page.evaluate(PREVIEW_COUNT_JS) == 0  # no corner yet: no preview
    corner = (int(w * 0.2), int(h * 0.25))
    live.click_image(*corner)
    count = live.page.evaluate(PREVIEW_COUNT_JS)
    for frac in (0.6, 0.8):
        x, y = int(w * frac), int(h * frac)
        state = _hover(live, x, y, count)
        count = state["previews"]
        box = live.view_box()
        hovered = box.reported(*box.aim(x, y))
        assert state["shown"]["prompts"] == {"points": [], "box": [*corner, *hovered]}
    expected, unsure = _expected([], [], [*corner, *hovered], WIDE_HW, WIDE_HW)
    changed = _changed_by_preview(live, lambda: live.page.mouse.move(2, 2))
    _assert_is_mask(changed, expected, unsure | _marks([corner], WIDE_HW, WIDE_HW), "box preview")


def test_a_hundred_hovers_cost_the_server_nothing(live, pictures, monkeypatch):
    _upload_ready(live, pictures["wide"], WIDE_HW)
    calls = []
    original = Sam2Predictor.decode_many
    monkeypatch.setattr(Sam2Predictor, "decode_many", lambda self, *a, **k: calls.append(1) or original(self, *a, **k))
    requests = []
    live.page.context.on("request", lambda r: requests.append(r.url))
    events = live.track_events()
    h, w = WIDE_HW
    box = live.view_box()
    for k in range(100):
        live.page.mouse.move(*box.aim(int(w * (0.1 + 0.008 * k)), int(h * (0.2 + 0.005 * k))))
    state = live.page.evaluate(PREVIEWED_JS, 0)
    live.page.wait_for_timeout(300)
    assert state["asked"] == 100 and state["previews"] >= 1
    assert requests == [] and events == [] and calls == []


def test_a_click_is_painted_by_the_page_first_and_replaced_by_the_servers_scene(live, pictures):
    """With 1.5 s of network latency the page paints the click's mask at once, drawn as the server's layers are
    (fill and outline, in place of the object's layer); the server's scene then replaces it, and the picture
    does not change but for the new point's marker."""
    _upload_ready(live, pictures["wide"], WIDE_HW)
    h, w = WIDE_HW
    first = (int(w * 0.3), int(h * 0.35))
    live.click_image(*first)
    live.slow_network(1500)
    x, y = int(w * 0.4), int(h * 0.5)
    _hover(live, x, y, live.page.evaluate(PREVIEW_COUNT_JS))
    before = live.drawn()
    box = live.view_box()
    live.page.mouse.click(*box.aim(x, y))
    painted = live.page.evaluate(f"() => [{VIEW}.layerOverrides.size, [...{VIEW}.overlays.keys()]]")
    assert painted == [1, []] and live.drawn() == before  # painted before the server answered
    live.next_frame()
    instant = live.canvas_pixels()
    live.wait_for_scene(before)
    live.page.mouse.move(2, 2)  # away: no preview for a next click
    live.next_frame()
    assert live.page.evaluate(f"() => [{VIEW}.layerOverrides.size, [...{VIEW}.overlays.keys()]]") == [0, []]
    server = live.canvas_pixels()
    assert live.page.evaluate(f"() => {LIVE}.stats.instantFromPreview") == 1
    clicked = box.reported(*box.aim(x, y))
    _, unsure = _expected([first, clicked], [1, 1], None, WIDE_HW, WIDE_HW)
    differs = (instant.astype(int) != server.astype(int)).any(axis=2)
    differs = differs[int(box.ty):int(box.ty) + box.dh, int(box.tx):int(box.tx) + box.dw]
    assert not (differs & ~(_marks([clicked], WIDE_HW, WIDE_HW) | grow(unsure, OUTLINE_PX))).any()


def test_the_toggle_turns_previews_off_and_is_remembered_in_this_browser(live, pictures):
    _upload_ready(live, pictures["wide"], WIDE_HW)
    toggle = live.page.locator("#live-preview input[type=checkbox]")
    assert toggle.is_checked()
    toggle.uncheck()
    h, w = WIDE_HW
    box = live.view_box()
    live.page.mouse.move(*box.aim(w // 2, h // 2))
    live.page.wait_for_timeout(300)
    assert live.page.evaluate(PREVIEW_COUNT_JS) == 0
    live.page.reload()
    live.page.wait_for_selector("#live-preview input[type=checkbox]", state="attached")
    assert not live.page.locator("#live-preview input[type=checkbox]").is_checked()
    assert live.page.evaluate("localStorage.getItem('sam-live-preview')") == "off"


# ---------------------------------------------------------------------------- fallback
@pytest.fixture
def no_wasm(request, browser, demo_url, screenshots):
    """A desktop page without WebAssembly (removed by an init script), live previews on."""
    demo, gen = _open_live(request, browser, demo_url, screenshots, DESKTOP, init=NO_WASM_JS)
    demo.page.reload()  # the init script applies from the next document on
    demo.open()
    yield demo
    next(gen, None)


def test_without_webassembly_clicks_boxes_and_undo_work_and_one_notice_says_why(no_wasm, pictures):
    demo = no_wasm
    assert demo.page.evaluate("typeof WebAssembly") == "undefined"
    demo.upload(pictures["wide"], WIDE_HW)
    h, w = WIDE_HW
    demo.click_image(int(w * 0.4), int(h * 0.5))
    demo.set_mode("box")
    demo.click_image(int(w * 0.1), int(h * 0.1))
    demo.click_image(int(w * 0.7), int(h * 0.8))
    demo.press_button("undo_btn")
    scene = demo.page.evaluate(f"() => {VIEW}.scene")
    assert scene["objects"][0]["points"] == [[int(w * 0.4), int(h * 0.5), 1]] and scene["objects"][0]["box"] is None
    notice = demo.page.locator("#live-preview .sam-live-preview-notice")
    assert notice.inner_text() == ("Live previews are off: this browser has no WebAssembly. Clicks work as usual "
                                   "(the server draws every mask).")
    assert demo.page.locator("#live-preview").count() == 1
    assert not demo.page.locator("#live-preview input").is_checked()


# ---------------------------------------------------------------------------- bytes and access
BYTES_JS = f"() => {LIVE}.decoder.bytesFetched"
EMBEDDINGS_JS = f"() => {VIEW}.scene.image.embeddings"
FETCH_JS = """async (url) => { const r = await fetch(url, {cache: 'no-store'});
  return [r.status, (await r.arrayBuffer()).byteLength]; }"""


def test_what_the_page_downloads_and_that_a_second_visit_downloads_nothing(live, pictures):
    requests = []
    live.page.context.on("request", lambda r: requests.append(r.url))
    _upload_ready(live, pictures["wide"], WIDE_HW)
    fetched = live.page.evaluate(BYTES_JS)
    assert 8_388_608 < fetched <= 8.5e6  # the three float16 levels and a small header, once
    first = [u for u in requests if "/sam-page/" in u]
    assert any("/sam-page/decoder/" in u for u in first) and any(u.endswith(".wasm") for u in first)
    requests.clear()
    live.page.reload()  # a second visit in the same browser: the same image again
    live.page.wait_for_selector("#live-preview", state="attached")
    _upload_ready(live, pictures["wide"], WIDE_HW)
    assert live.page.evaluate(BYTES_JS) == 0  # the embeddings came from this browser's Cache Storage
    again = [u for u in requests if "/sam-page/" in u]
    assert not [u for u in again if "/decoder/" in u or "/embeddings/" in u or u.endswith(".wasm")], again


def test_a_second_session_cannot_fetch_the_first_sessions_embeddings(live, browser, demo_url, pictures, tmp_path):
    _upload_ready(live, pictures["wide"], WIDE_HW)
    mine = live.page.evaluate(EMBEDDINGS_JS)
    assert live.page.evaluate(FETCH_JS, mine["url"])[0] == 200
    other = browser.new_context()
    try:
        page = other.new_page()
        page.goto(demo_url)
        tag = mine["url"].split("/")[-2]
        for url in (mine["cacheUrl"], f"sam-page/embeddings/{tag}/{mine['key']}",
                    f"sam-page/embeddings/{tag}/{mine['key'][:22]}", f"sam-page/embeddings/{tag}/"):
            status, size = page.evaluate(FETCH_JS, url)
            assert status == 404 and size < 100, url  # "Not found", nothing of the image
        # a session that opens another image gets a grant for that image only
        other_picture = tmp_path / "other.png"
        Image.fromarray(gradient_rgb(200, 300, seed=9)).save(other_picture)
        from tests.browser.ui import DemoPage

        demo = DemoPage(page, demo_url, live.shots, live.name + "_other").open()
        demo.upload(other_picture, (200, 300))
        page.wait_for_function(f"() => {VIEW}.scene && {VIEW}.scene.image.embeddings")
        theirs = page.evaluate(EMBEDDINGS_JS)
        assert theirs["key"] != mine["key"]
        status, size = page.evaluate(FETCH_JS, theirs["url"])
        assert status == 200 and size > 8_388_608
    finally:
        other.close()
