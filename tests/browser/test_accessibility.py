"""Keyboard and screen reader, the parts around the image view (issue 22, item 2), in Chromium.

The view's own keyboard cursor, description and live region are tested in ``test_view_input.py``; here,
one keyboard-only session checks what Chromium's accessibility tree says about the other controls and that
the steps around the image are announced in the view's polite live region:

* the example buttons are named after their files; reaching one with Tab and pressing Enter opens it;
* the three prompt modes are ONE radio group named "Prompt mode": one Tab stop, the arrow keys choose
  (and the app uses the mode chosen so: the next Enter on the image places an exclude point), a focus
  ring is drawn on the focused choice;
* points and a box placed with the keyboard, a candidate chosen with its key, the export started with
  Enter on its button: each step is announced ("... mask updated", "Export ready: N files ...");
* each download link is named by its file name (not its size), and the list is emptied by the next edit.
"""

from __future__ import annotations

import pytest

from sam_demo.page import MODE_GROUP_LABEL
from tests.browser.test_view_input import EXAMPLE, EXAMPLE_HW, VIEW, announced, tab_to
from tests.browser.ui import DOWNLOAD_LINKS, EXAMPLE_BUTTON, DemoPage

pytestmark = pytest.mark.browser

RADIOS = "#mode input[type=radio]"


def ax_nodes(page: DemoPage) -> list[dict]:
    """Chromium's accessibility tree (not ignored nodes), as ``{"role", "name", "node"}``."""
    cdp = page.page.context.new_cdp_session(page.page)
    nodes = cdp.send("Accessibility.getFullAXTree")["nodes"]
    return [{"role": n.get("role", {}).get("value"), "name": n.get("name", {}).get("value", ""), "node": n}
            for n in nodes if not n.get("ignored")]


def focus_outline(page: DemoPage) -> str:
    """The outline drawn for the focused element: its own, or its label's (the mode radios are drawn by labels)."""
    return page.page.evaluate("""() => { const a = document.activeElement;
      const drawn = a.matches('#mode input') ? a.closest('label') : a;
      const s = getComputedStyle(drawn); return s.outlineStyle + ' ' + s.outlineWidth; }""")


def test_keyboard_only_session_with_names_roles_and_announcements(desktop: DemoPage):
    page, keys = desktop.page, desktop.page.keyboard
    nodes = ax_nodes(desktop)
    examples = sorted(n["name"] for n in nodes if n["role"] == "button" and n["name"].startswith("Example: "))
    assert examples == ["Example: astronaut.jpg", "Example: chelsea_cat.jpg", "Example: coffee.jpg",
                        "Example: rocket.jpg"], "every example button is named after its picture"
    assert not [n for n in nodes if n["role"] == "button" and not n["name"].strip()], "no button without a name"
    groups = [n for n in nodes if n["role"] == "radiogroup"]
    assert [g["name"] for g in groups] == [MODE_GROUP_LABEL]
    radios = [n["name"] for n in nodes if n["role"] == "radio"]
    assert radios[:3] == ["+ Include", "− Exclude", "▭ Box"], radios  # then the brush's modes, if any

    desktop.focus_page()
    tab_to(desktop, EXAMPLE_BUTTON.format(name=EXAMPLE))
    keys.press("Enter")
    desktop.wait_for_display(EXAMPLE_HW, EXAMPLE_HW)
    announced(desktop, f"Image {EXAMPLE_HW[1]} by {EXAMPLE_HW[0]} pixels open")
    page.wait_for_timeout(300)  # the upload's second scene (encoder done) must not talk over it
    announced(desktop, f"Image {EXAMPLE_HW[1]} by {EXAMPLE_HW[0]} pixels open")

    # the mode choice: one Tab stop, arrows choose, a visible focus ring
    tab_to(desktop, RADIOS)
    assert page.evaluate("() => document.activeElement.checked"), "Tab lands on the chosen mode"
    assert focus_outline(desktop).startswith("solid"), "the focused mode is outlined"
    keys.press("ArrowRight")
    assert desktop.checked_mode() == "exclude"
    keys.press("Tab")
    assert not page.evaluate("s => document.activeElement.matches(s)", RADIOS), "one Tab stop for the three modes"
    keys.press("Shift+Tab")
    keys.press("ArrowLeft")
    assert desktop.checked_mode() == "include"
    desktop.screenshot("mode_focus")

    tab_to(desktop, VIEW)
    assert focus_outline(desktop).startswith("solid")
    before = desktop.drawn()
    keys.press("Enter")                          # include at the centre (300, 200)
    desktop.wait_for_scene(before)
    announced(desktop, "Object 1: mask updated")
    tab_to(desktop, RADIOS)                      # the arrow-chosen mode is the app's mode
    keys.press("ArrowRight")
    assert desktop.checked_mode() == "exclude"
    tab_to(desktop, VIEW)
    before = desktop.drawn()
    keys.press("Shift+ArrowRight")               # (364, 200)
    keys.press("Enter")
    desktop.wait_for_scene(before)
    keys.press("a")                              # a new object, its box: two Enters
    desktop.wait_for_objects(2)
    keys.press("b")
    for corner in (["Shift+ArrowDown"], ["Shift+ArrowRight", "Shift+ArrowDown"]):  # (364, 264), (428, 328)
        before = desktop.drawn()
        for key in corner:
            keys.press(key)
        keys.press("Enter")
        desktop.wait_for_scene(before)
    announced(desktop, "Object 2: mask updated")
    before = desktop.drawn()
    keys.press("3")                              # candidate 3
    desktop.wait_for_scene(before)
    desktop.wait_for_chosen_candidate(3)
    announced(desktop, "Object 2: mask updated")

    tab_to(desktop, "#export_btn")
    assert focus_outline(desktop) != "none 0px"
    keys.press("Enter")
    page.wait_for_function("s => [...document.querySelectorAll(s)].some(a => a.download.endsWith('_prompts.json'))",
                           arg=DOWNLOAD_LINKS)
    announced(desktop, "Export ready:")
    desktop.screenshot("exported")
    files = page.evaluate("s => [...document.querySelectorAll(s)].map(a => a.download)", DOWNLOAD_LINKS)
    links = sorted(n["name"] for n in ax_nodes(desktop) if n["role"] == "link" and n["name"] in files)
    assert links == sorted(files) and len(files) >= 5, f"each download is named by its file: {links} / {files}"
    session = desktop.listed_files().session["objects"]
    assert session[0]["points"] == [[300.0, 200.0, 1], [364.0, 200.0, 0]], "the arrow-chosen mode was used"
    assert session[1]["box"] == [364.0, 264.0, 428.0, 328.0]
    assert session[1]["candidate"] == 2

    tab_to(desktop, VIEW)                        # a further edit: the export is out of date and goes
    keys.press("p")                              # include (in box mode a first corner changes no mask)
    before = desktop.drawn()
    keys.press("ArrowUp")
    keys.press("Enter")
    desktop.wait_for_scene(before)
    page.wait_for_function("s => document.querySelectorAll(s).length === 0", arg=DOWNLOAD_LINKS)
