"""The page's picture after a random walk of edits, against two independent references (issue 21 item 1).

A seeded walk through the UI (objects added at well-apart spots, include and exclude clicks, candidates
chosen, objects hidden and shown, renamed, recoloured with the colour control, deleted, undo/redo, opacity and
outline changed in the page). Afterwards:

* the canvas equals the one a fresh page draws from the final scene alone (no layer, colour or outline
  cache carried over from the walk), pixel for pixel;
* the fills match ``pixels.py``'s own expectation for the exported prompts: every visible object's
  analytic mask tinted in its Okabe-Ito colour, or the colour the walk chose for it, at the page's opacity,
  hidden objects not drawn.
"""

from __future__ import annotations

import random

import numpy as np
import pytest

from tests.browser.conftest import DESKTOP, TIMEOUT_MS
from tests.browser.pixels import ObjectPrompt, check_overlay
from tests.browser.test_prompts import FRAME, start
from tests.browser.ui import DemoPage, decode_data_url

pytestmark = pytest.mark.browser

SPOTS = [(120, 130), (350, 130), (580, 130), (120, 440), (350, 440), (580, 440)]
"""One spot per object, far enough apart that their masks never meet (masks are ~44 x 36 px ellipses)."""
STEPS = 28
SEED = 7
DOUBLE_CLICK_MS = 450
"""More than the view's DOUBLE_CLICK_MS (400): a second click at the same spot within it adds nothing."""
CHOSEN = ("#d62728", "#7f3fbf", "#ff66cc", "#202060")
"""Colours the walk gives objects with the colour control: far from every Okabe-Ito colour and from each other,
so each object's tint stays its own class in ``check_overlay`` (an object is never given a colour another one
shows)."""
COLOUR_INPUT = "#object_color input[type=color]"

_SCENE_JS = "() => document.querySelector('#display').samView.props.value"
_SET_OPTIONS_JS = """([opacity, outline]) => {
  const r = document.querySelector('#opacity input[type=range]');
  r.value = String(opacity); r.dispatchEvent(new Event('input', {bubbles: true}));
  const c = document.querySelector('#contour input[type=checkbox]');
  if (c.checked !== outline) c.click();
}"""
_OPTIONS_JS = """() => [Number(document.querySelector('#opacity input[type=range]').value),
  document.querySelector('#contour input[type=checkbox]').checked]"""


def recolour(page: DemoPage, rng: random.Random, scene: dict) -> None:
    """Give the selected object one of :data:`CHOSEN` that no object shows, with the colour control."""
    free = [c for c in CHOSEN if c not in {o["color"] for o in scene["objects"]}]
    before = page.drawn()
    page.page.locator(COLOUR_INPUT).fill(rng.choice(free))  # as the browser's picker closing: one 'change'
    page.wait_for_scene(before)


def walk(page: DemoPage, rng: random.Random) -> int:
    """The walk; returns how many colour changes it made. Its last step recolours a drawn object (selecting it
    first if need be), so the page has to redraw a layer it has drawn before in a new colour."""
    spot_of = {1: SPOTS[0]}  # object id -> its spot
    selected = 1
    next_id = 2
    recoloured = 0
    scene = page.page.evaluate("() => document.querySelector('#display').samView.scene")
    for _ in range(STEPS):
        op = rng.choice(["click"] * 4 + ["exclude"] + ["add"] * 2 + ["choose", "hide", "rename", "colour", "undo",
                                                                  "redo", "delete", "opacity"])
        if op in ("click", "exclude") and selected in spot_of:
            page.set_mode("include" if op == "click" else "exclude")
            x, y = spot_of[selected]
            dx, dy = (rng.randint(-6, 6), rng.randint(-5, 5)) if op == "click" else (rng.choice([-14, 14]), 0)
            page.page.wait_for_timeout(DOUBLE_CLICK_MS)  # two clicks at one spot would be one double-click
            page.click_image(x + dx, y + dy)
        elif op == "add" and len(spot_of) < len(SPOTS):
            page.add_object()
            spot_of[next_id] = SPOTS[len(spot_of)]
            selected, next_id = next_id, next_id + 1
        elif op == "choose" and len(page.candidate_captions()) == 3:
            page.choose_candidate(rng.randint(1, 3))
        elif op == "hide":
            page.press_button("hide_btn")
        elif op == "rename":
            name = page.page.locator("#object_name input, #object_name textarea").first
            name.fill(f"thing {rng.randint(0, 99)}")
            before = page.drawn()
            name.press("Enter")
            page.wait_for_scene(before)
        elif op == "colour" and page.page.locator(COLOUR_INPUT).is_enabled():
            recolour(page, rng, scene)
            recoloured += 1
        elif op in ("undo", "redo") and page.page.locator(f"#{op}_btn").is_enabled():
            page.press_button(f"{op}_btn")
        elif op == "delete" and len(page.object_rows()) > 1:
            page.press_button("delete_btn")
        elif op == "opacity":
            page.page.evaluate(_SET_OPTIONS_JS, [rng.choice([0.35, 0.5, 0.65]), rng.random() < 0.7])
        # the selected object after the op, as the page says
        scene = page.page.evaluate("() => document.querySelector('#display').samView.scene")
        selected = next((o["id"] for o in scene["objects"] if o.get("selected")), None)
        ids = {o["id"] for o in scene["objects"]}
        for object_id in ids - set(spot_of):  # brought back by undo/redo: it had its spot before
            spot_of[object_id] = SPOTS[min(object_id - 1, len(SPOTS) - 1)]
    drawn = [o for o in scene["objects"] if o.get("visible", True) and o["layer"]]
    if drawn:
        target = next((o for o in drawn if o.get("selected")), drawn[-1])
        if not target.get("selected"):
            page.select_object(target["name"])
            scene = page.page.evaluate("() => document.querySelector('#display').samView.scene")
        recolour(page, rng, scene)
        recoloured += 1
    return recoloured


@pytest.mark.timeout(300)  # 28 edits through the UI, each waiting for its scene, and a second page: ~60 s idle
def test_after_a_random_walk_the_canvas_equals_a_fresh_page_and_the_fills_match_pixels_py(desktop, browser,
                                                                                          demo_url, pictures):
    base = start(desktop, pictures)
    recoloured = walk(desktop, random.Random(SEED))
    desktop.next_frame()  # a last page-only redraw (opacity) runs on the next animation frame
    desktop.screenshot("after_walk")
    walked = desktop.canvas_pixels()
    options = desktop.page.evaluate(_OPTIONS_JS)
    scene_json = desktop.page.evaluate(_SCENE_JS)

    context = browser.new_context(**DESKTOP)
    context.set_default_timeout(TIMEOUT_MS)
    try:
        fresh = DemoPage(context.new_page(), demo_url, desktop.shots, desktop.name + "_fresh").open()
        fresh.page.evaluate(_SET_OPTIONS_JS, options)
        fresh.page.evaluate("s => document.querySelector('#display').samView.receive(JSON.parse(s))", scene_json)
        fresh.page.wait_for_function("() => document.querySelector('#display .sam-view').dataset.drawn === '1'")
        fresh.next_frame()
        drawn = decode_data_url(fresh.page.evaluate(
            "() => document.querySelector('#display').samView.canvas.toDataURL('image/png')"))
    finally:
        context.close()
    assert drawn.shape == walked.shape
    differ = np.abs(drawn.astype(int) - walked.astype(int)).max(axis=-1) > 0
    assert not differ.any(), f"{int(differ.sum())} canvas pixels differ from a fresh page's drawing of the same scene"

    session = desktop.export().session["objects"]
    scene = desktop.page.evaluate("() => document.querySelector('#display').samView.scene")
    selected = next((o["id"] for o in scene["objects"] if o.get("selected")), None)
    shown = [o for o in session if o["visible"] and (o["points"] or o["box"])]
    shown.sort(key=lambda o: o["id"] == selected)  # the selected object is drawn on top
    expected = [ObjectPrompt.from_session(o, CHOSEN) for o in shown]
    expected = [p for p in expected if p.mask(FRAME.display_hw, FRAME).any()]  # an all-exclude object draws nothing
    assert len(expected) >= 2, "test set-up: the walk should leave at least two drawn objects"
    assert any(not o["visible"] for o in session), "test set-up: the walk should leave a hidden object"
    assert recoloured >= 2 and any(p.color for p in expected), "test set-up: the walk should leave a recoloured object"
    check_overlay(desktop.display_pixels(), base, expected, FRAME, opacity=options[0])
