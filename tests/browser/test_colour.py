"""End to end in Chromium: the object panel's colour control (``sam_demo/static/view/colour.js``).

It is one Tab stop after the name box, named in Chromium's accessibility tree, and shows the selected object's
colour; a colour chosen (Playwright's ``fill`` sets a colour input's value and sends ``input`` and ``change``,
as the browser's picker does when it closes) recolours the object's fill on the canvas and its swatch in the
object list in one undoable step; Undo brings the palette colour back to both and to the control.
"""

from __future__ import annotations

import pytest

from tests.browser.pixels import ObjectPrompt, check_overlay
from tests.browser.test_prompts import FRAME, INCLUDE, click, start
from tests.browser.test_view_input import tab_to

pytestmark = pytest.mark.browser

CONTROL = "#object_color input[type=color]"
NAME = "Colour of the selected object"
_SWATCH_JS = "() => getComputedStyle(document.querySelector('#objects .obj-row.selected .swatch')).backgroundColor"


def test_the_colour_control_is_named_reached_by_tab_and_recolours_the_selected_object_undoably(desktop, pictures):
    base = start(desktop, pictures)
    control = desktop.page.locator(CONTROL)
    assert control.is_disabled() is False and control.input_value() == "#e69f00"  # object 1 is selected
    click(desktop, 250, 290)
    cdp = desktop.page.context.new_cdp_session(desktop.page)
    named = [n for n in cdp.send("Accessibility.getFullAXTree")["nodes"]
             if n.get("name", {}).get("value") == NAME and not n.get("ignored")]
    assert len(named) == 1, f"one accessible control named {NAME!r}"
    desktop.page.locator("#object_name input, #object_name textarea").first.focus()
    tab_to(desktop, CONTROL, limit=3)  # the next stops after the name box

    before = desktop.drawn()
    control.fill("#7f3fbf")
    desktop.wait_for_scene(before)
    point = ObjectPrompt(((250.0, 290.0),), (INCLUDE,))
    check_overlay(desktop.display_pixels(), base, [ObjectPrompt(point.points, point.labels, color=(127, 63, 191))],
                  FRAME)
    assert desktop.page.evaluate(_SWATCH_JS) == "rgb(127, 63, 191)"

    desktop.press_button("undo_btn")  # one step: the click's mask stays, the colour goes back
    check_overlay(desktop.display_pixels(), base, [point], FRAME)
    assert desktop.page.evaluate(_SWATCH_JS) == "rgb(230, 159, 0)" and control.input_value() == "#e69f00"
