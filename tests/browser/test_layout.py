"""End to end in Chromium: the work area fits the screen, on a laptop and on a phone, however many objects.

Positions are read from the page (CSS pixels of the viewport, page not
scrolled): after an upload the picture, the prompt modes, undo/redo and the
status line must all lie inside the first screen of a 1366x900 laptop page, and
the picture inside the first screen of a 390x844 phone. The object list keeps
a bounded height with 256 objects (segment everything), its rows select their
object, and on a phone a tap on the picture's top-right corner is a click on
the picture (no button sits on it).
"""

from __future__ import annotations

import pytest

from sam_demo.service import DEFAULT_DISPLAY_SIDE
from sam_onnx.geometry import DisplayFrame
from tests.browser.conftest import BIG_HW, WIDE_HW
from tests.browser.pixels import ObjectPrompt, check_overlay
from tests.browser.test_prompts import FRAME, INCLUDE, click, objects, start
from tests.browser.ui import SELECTED_ROW, DemoPage

pytestmark = pytest.mark.browser

_RECT_JS = "e => { const r = e.getBoundingClientRect(); return [r.left, r.top, r.right, r.bottom]; }"
WORK_AREA = ("#mode", "#undo_btn", "#redo_btn", "#clear_btn", "#reset_btn", "#status")
"""What must be on the first screen with the picture: the prompt modes, the history buttons, the status line."""
MIN_PICTURE_SHARE = 0.55
"""On a laptop the picture gets at least this share of the window's height (4:3 photo in the work column)."""
HALO_RINGING = 1e-4
"""Share of checked overlay pixels that JPEG ringing beside a two-point object's selection halo may tip over."""
CORNER_INSET = 20
"""Pixels from the picture's top-right corner (10 CSS px on the phone), where Gradio's fullscreen button was."""
OBJECT_LIST_MAX_PX = 360
"""sam_demo/page.py's OBJECT_LIST_MAX_HEIGHT on these screens: min(40vh, 360px)."""


def rect(page: DemoPage, selector: str) -> tuple[float, float, float, float]:
    """``(left, top, right, bottom)`` of the first match, in CSS px of the viewport (the page is not scrolled)."""
    return tuple(page.page.locator(selector).first.evaluate(_RECT_JS))


def picture(page: DemoPage) -> tuple[float, float, float, float]:
    """Where the view draws the picture itself (CSS px of the viewport, not scrolling)."""
    box = page.view_box()
    box.check_fit()
    left, top = box.left + box.tx, box.top + box.ty
    return left, top, left + box.W * box.s, top + box.H * box.s


def on_first_screen(page: DemoPage, selectors: tuple[str, ...], *, with_picture: bool = True) -> dict:
    """Assert the page is not scrolled and every element (and the drawn picture) lies inside the viewport."""
    assert page.page.evaluate("window.scrollY") == 0, "the page scrolled by itself"
    size = page.page.viewport_size
    found = {s: rect(page, s) for s in selectors}
    if with_picture:
        found["picture"] = picture(page)
    outside = {s: r for s, r in found.items()
               if r[0] < 0 or r[1] < 0 or r[2] > size["width"] or r[3] > size["height"]}
    assert not outside, f"not on the first {size['width']}x{size['height']} screen: {outside}"
    return found


def test_laptop_work_area_fits_after_upload(laptop: DemoPage, pictures):
    frame = DisplayFrame.fit(BIG_HW, DEFAULT_DISPLAY_SIDE)
    laptop.upload(pictures["big"], frame.display_hw, BIG_HW)
    laptop.screenshot("uploaded")
    found = on_first_screen(laptop, WORK_AREA)
    left, top, right, bottom = found["picture"]
    assert bottom - top >= MIN_PICTURE_SHARE * laptop.page.viewport_size["height"], f"picture drawn small: {found}"
    assert found["#mode"][3] <= top and found["#undo_btn"][3] <= top, "the tools sit above the picture"
    assert found["#status"][1] >= bottom, "the status line sits under the picture"


def test_phone_picture_on_first_screen_after_upload(phone: DemoPage, pictures):
    frame = DisplayFrame.fit(BIG_HW, DEFAULT_DISPLAY_SIDE)
    phone.upload(pictures["big"], frame.display_hw, BIG_HW)
    phone.screenshot("uploaded")
    found = on_first_screen(phone, ("#mode", "#undo_btn"))
    left, top, right, bottom = found["picture"]
    assert right - left >= 0.8 * phone.page.viewport_size["width"], f"the picture should fill the width: {found}"


def test_phone_tap_on_the_picture_corner_is_a_click(phone: DemoPage, pictures):
    """The fullscreen button used to sit on the picture's top-right corner and take the tap."""
    phone.upload(pictures["wide"], WIDE_HW)
    base = phone.display_pixels()
    corner = (WIDE_HW[1] - CORNER_INSET, CORNER_INSET)
    client = phone.view_box().aim(*corner)
    on_top = phone.page.evaluate("([x, y]) => document.elementFromPoint(x, y).outerHTML.slice(0, 80)", list(client))
    assert on_top.startswith("<canvas"), f"something sits on the picture's corner: {on_top}"
    result = phone.click_image(*corner)  # waits for the new scene: a tap something else took never gets one
    recorded = phone.export().session["objects"][0]["points"]
    assert recorded == [[*map(float, result.reported), INCLUDE]]
    check_overlay(phone.display_pixels(), base, [ObjectPrompt(((recorded[0][0], recorded[0][1]),), (INCLUDE,))],
                  FRAME)


def test_a_click_on_an_object_row_selects_it(desktop: DemoPage, pictures):
    base = start(desktop, pictures)
    click(desktop, 200, 288)
    desktop.add_object()
    click(desktop, 500, 288)
    assert "Object 2" in desktop.selected_object()
    desktop.select_object("Object 1")
    assert desktop.page.locator("#object_name input, #object_name textarea").first.input_value() == "Object 1"
    click(desktop, 230, 300)  # goes to the selected object
    desktop.screenshot("row_selected")
    first = ObjectPrompt(((200.0, 288.0), (230.0, 300.0)), (INCLUDE, INCLUDE), color_index=0)
    second = ObjectPrompt(((500.0, 288.0),), (INCLUDE,), color_index=1)
    check_overlay(desktop.display_pixels(), base, [first, second], FRAME, max_wrong_fraction=HALO_RINGING)
    assert objects(desktop.export()) == [first, second]
    assert not desktop.page.locator("#object_select").is_visible(), "the rows select; no second list of names"


def test_many_objects_keep_the_list_bounded(laptop: DemoPage, pictures):
    """Segment everything adds 255 objects here (the analytic model finds a mask at every grid point)."""
    laptop.upload(pictures["wide"], WIDE_HW)
    laptop.page.locator("#everything").get_by_text("Segment everything").first.click()
    laptop.tap_or_click(laptop.page.locator("#everything_preset label", has_text="balanced"))
    laptop.page.locator("#everything_btn").click()
    laptop.page.wait_for_function("() => document.querySelectorAll('#objects .obj-row').length > 200")
    laptop.page.evaluate("window.scrollTo(0, 0)")
    laptop.screenshot("many_objects")
    count = len(laptop.object_rows())
    listed = rect(laptop, "#object-list")
    assert listed[3] - listed[1] <= OBJECT_LIST_MAX_PX + 1, f"{count} objects make the list {listed} tall"
    page_height = laptop.page.evaluate("document.documentElement.scrollHeight")
    assert page_height <= 2 * laptop.page.viewport_size["height"], f"the page is {page_height} px tall"
    on_first_screen(laptop, WORK_AREA)
    # the selected (last added) row is scrolled into the list's view
    selected = rect(laptop, SELECTED_ROW)
    assert listed[1] <= selected[1] and selected[3] <= listed[3], (selected, listed)
    laptop.select_object("Auto 100")
    assert "Auto 100" in laptop.selected_object()
    laptop.screenshot("row_100_selected")
