"""End to end in Chromium: the keyboard shortcuts of the page (app.HEAD), on the 704x576 test picture."""

from __future__ import annotations

import pytest

from tests.browser.conftest import WIDE_HW
from tests.browser.pixels import ObjectPrompt, check_mask_png, check_overlay
from tests.browser.test_prompts import EXCLUDE, FRAME, INCLUDE, click, start

pytestmark = pytest.mark.browser


def test_keyboard_shortcuts(desktop, pictures):
    base = start(desktop, pictures)
    desktop.focus_page()
    for key, mode in (("b", "box"), ("n", "exclude"), ("p", "include")):
        desktop.page.keyboard.press(key)
        assert desktop.checked_mode() == mode, f"key {key!r} should choose {mode}"
    click(desktop, 250, 290)
    desktop.page.keyboard.press("n")
    assert desktop.checked_mode() == "exclude"
    click(desktop, 280, 290)
    both = ObjectPrompt(((250.0, 290.0), (280.0, 290.0)), (INCLUDE, EXCLUDE))
    include_only = ObjectPrompt(((250.0, 290.0),), (INCLUDE,))

    desktop.press_key("z")  # undo
    check_overlay(desktop.display_pixels(), base, [include_only], FRAME)
    desktop.press_key("y")  # redo
    check_overlay(desktop.display_pixels(), base, [both], FRAME)
    desktop.press_key("z")
    desktop.press_key("Shift+Z")  # redo, the other way
    check_overlay(desktop.display_pixels(), base, [both], FRAME)

    desktop.press_key("3")
    desktop.wait_for_chosen_candidate(3)
    desktop.press_key("1")
    desktop.wait_for_chosen_candidate(1)
    chosen = ObjectPrompt(both.points, both.labels, candidate=0)
    check_overlay(desktop.display_pixels(), base, [chosen], FRAME)
    desktop.screenshot("candidate_1_by_key")

    desktop.press_key("Escape")  # clear the object: nothing tinted any more
    check_overlay(desktop.display_pixels(), base, [], FRAME)
    desktop.press_key("z")  # and back
    check_overlay(desktop.display_pixels(), base, [chosen], FRAME)

    desktop.page.keyboard.press("a")  # a new, empty object, selected
    desktop.wait_for_objects(2)
    assert "Object 2" in desktop.selected_object()

    # letters typed into a text field are text, not shortcuts
    drawn = desktop.drawn()
    name = desktop.page.locator("#object_name textarea, #object_name input").first
    name.click()
    name.press_sequentially("bnz1a")
    assert desktop.checked_mode() == "exclude" and len(desktop.object_rows()) == 2
    assert desktop.drawn() == drawn
    desktop.screenshot("after_typing")

    export = desktop.export()
    session = export.session["objects"]
    assert [o["points"] for o in session] == [[[250.0, 290.0, 1], [280.0, 290.0, 0]], []]
    assert session[0]["candidate"] == 0
    check_mask_png(export.mask(1), chosen, WIDE_HW)


SHORT_WAIT_MS = 3000
"""The analytic models answer in milliseconds: a shortcut that did nothing after 3 s did nothing."""


def test_shortcuts_still_work_after_choosing_a_mode_with_the_mouse(desktop, pictures):
    """Clicking a mode radio leaves the focus on that <input type=radio>; the next shortcut must still work."""
    start(desktop, pictures)
    click(desktop, 250, 290)
    click(desktop, 400, 290)
    desktop.set_mode("exclude")  # focus is now on the radio input
    desktop.press_key("z", timeout_ms=SHORT_WAIT_MS)
    export = desktop.export()
    assert export.session["objects"][0]["points"] == [[250.0, 290.0, 1]]
