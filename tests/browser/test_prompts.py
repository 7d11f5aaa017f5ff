"""End to end in Chromium (desktop page, mouse): points, boxes, objects, undo/redo and mask candidates.

Every scenario uploads the 704x576 test picture, which the page's view draws at
its natural size (one CSS pixel per image pixel), so a click aimed at pixel
(x, y) must be recorded as exactly (x, y), and display pixels are original pixels. The
analytic models make every mask computable: the overlay shown in the page is
checked pixel class by pixel class (untouched / tinted in an object's colour),
the downloaded mask PNGs pixel by pixel (outside a one-cell boundary band).
"""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from sam_onnx.geometry import DisplayFrame
from tests.browser.conftest import WIDE_HW
from tests.browser.pixels import ObjectPrompt, check_mask_png, check_overlay
from tests.browser.ui import DemoPage, Export

pytestmark = pytest.mark.browser

FRAME = DisplayFrame(WIDE_HW, WIDE_HW)
INCLUDE, EXCLUDE = 1, 0


def start(page: DemoPage, pictures) -> np.ndarray:
    """Upload the wide picture; return the display as first shown (the base under every overlay)."""
    page.upload(pictures["wide"], WIDE_HW)
    box = page.view_box()
    box.check_fit()
    assert box.natural, f"the test picture should be shown at natural size, scale is {box.s}"
    return page.display_pixels()


def click(page: DemoPage, x: int, y: int) -> None:
    result = page.click_image(x, y)
    assert result.reported == (x, y), f"a click aimed at ({x}, {y}) lands on {result.reported}"


def objects(export) -> list[ObjectPrompt]:
    return [ObjectPrompt.from_session(o) for o in export.session["objects"] if o["points"] or o["box"]]


def check_everything(page: DemoPage, base: np.ndarray, expected: list[ObjectPrompt]) -> Export:
    """The overlay shows ``expected`` and a fresh export holds exactly these prompts and masks."""
    check_overlay(page.display_pixels(), base, expected, FRAME)
    export = page.export()
    assert objects(export) == expected
    for number, prompt in enumerate(expected, start=1):
        check_mask_png(export.mask(number), prompt, WIDE_HW)
    return export


def test_positive_click_on_non_square_image(desktop, pictures):
    base = start(desktop, pictures)
    assert "704×576" in desktop.status()
    desktop.screenshot("uploaded")
    click(desktop, 250, 190)
    desktop.screenshot("positive_click")
    expected = [ObjectPrompt(((250.0, 190.0),), (INCLUDE,))]
    check_overlay(desktop.display_pixels(), base, expected, FRAME)
    export = desktop.export()
    assert objects(export) == expected
    check_mask_png(export.mask(1), expected[0], WIDE_HW)
    # the same file through a real browser download (the link's download attribute)
    assert desktop.download("_object1_mask.png") == export.named("_object1_mask.png")


def test_negative_point_removes_a_region(desktop, pictures):
    base = start(desktop, pictures)
    click(desktop, 350, 290)
    desktop.set_mode("exclude")
    click(desktop, 380, 290)
    desktop.screenshot("negative_point")
    with_cut = ObjectPrompt(((350.0, 290.0), (380.0, 290.0)), (INCLUDE, EXCLUDE))
    only_positive = ObjectPrompt(((350.0, 290.0),), (INCLUDE,))
    removed = only_positive.mask(WIDE_HW) & ~with_cut.mask(WIDE_HW) & ~with_cut.band(WIDE_HW)
    assert removed.sum() > 1000, "test set-up: the negative point should cut a visible region"
    check_everything(desktop, base, [with_cut])


def test_box_from_two_clicks_in_reversed_corner_order(desktop, pictures):
    base = start(desktop, pictures)
    desktop.set_mode("box")
    click(desktop, 560, 470)  # bottom-right corner first
    assert "opposite corner" in desktop.status()
    desktop.screenshot("first_corner")
    click(desktop, 150, 90)  # then top-left
    desktop.screenshot("box")
    assert "opposite corner" not in desktop.status()
    check_everything(desktop, base, [ObjectPrompt(box=(150.0, 90.0, 560.0, 470.0), candidate=0)])


def test_two_objects_in_distinct_colours(desktop, pictures):
    base = start(desktop, pictures)
    click(desktop, 200, 288)
    desktop.add_object()
    click(desktop, 500, 288)
    desktop.screenshot("two_objects")
    rows = desktop.object_rows()
    assert len(rows) == 2 and all("IoU" in row for row in rows)
    first = ObjectPrompt(((200.0, 288.0),), (INCLUDE,), color_index=0)
    second = ObjectPrompt(((500.0, 288.0),), (INCLUDE,), color_index=1)
    export = check_everything(desktop, base, [first, second])  # each region in its own colour
    labels = np.asarray(Image.open(io.BytesIO(export.named("_labels.png"))))
    assert labels[288, 200] == 1 and labels[288, 500] == 2 and labels[20, 350] == 0


def test_undo_and_redo(desktop, pictures):
    base = start(desktop, pictures)
    assert not desktop.page.locator("#undo_btn").is_enabled()
    click(desktop, 220, 180)
    click(desktop, 480, 400)
    both = ObjectPrompt(((220.0, 180.0), (480.0, 400.0)), (INCLUDE, INCLUDE))
    first = ObjectPrompt(((220.0, 180.0),), (INCLUDE,))
    check_overlay(desktop.display_pixels(), base, [both], FRAME)
    desktop.press_button("undo_btn")
    desktop.screenshot("undone")
    assert desktop.page.locator("#redo_btn").is_enabled()
    check_everything(desktop, base, [first])
    desktop.press_button("redo_btn")
    desktop.screenshot("redone")
    assert not desktop.page.locator("#redo_btn").is_enabled()
    check_everything(desktop, base, [both])


def test_second_candidate_is_shown_and_downloaded(desktop, pictures):
    """A positive click shows candidate 2 (best score); pick 1, then 2: overlay and download follow each choice.

    A point prompt (no box outline on the mask edge) keeps the 3 candidates apart beyond the drawn outlines,
    so the overlay check can tell them apart: checking against the previous choice must fail.
    """
    base = start(desktop, pictures)
    click(desktop, 350, 290)
    desktop.wait_for_chosen_candidate(2)
    assert [c.split(":")[0] for c in desktop.candidate_captions()] == ["1", "✓ 2", "3"]
    point = ((350.0, 290.0),)
    shown = {k: ObjectPrompt(point, (INCLUDE,), candidate=k) for k in (0, 1)}
    desktop.choose_candidate(1)
    desktop.screenshot("first_candidate")
    overlay = desktop.display_pixels()
    check_overlay(overlay, base, [shown[0]], FRAME)
    with pytest.raises(AssertionError, match="wrong tint"):
        check_overlay(overlay, base, [shown[1]], FRAME)
    export = desktop.export()
    assert export.session["objects"][0]["candidate"] == 0 and export.coco["annotations"][0]["candidate"] == 0
    check_mask_png(export.mask(1), shown[0], WIDE_HW)

    desktop.choose_candidate(2)
    desktop.screenshot("second_candidate")
    overlay = desktop.display_pixels()
    check_overlay(overlay, base, [shown[1]], FRAME)
    with pytest.raises(AssertionError, match="wrong tint"):
        check_overlay(overlay, base, [shown[0]], FRAME)
    export = desktop.export()
    assert export.session["objects"][0]["candidate"] == 1 and export.coco["annotations"][0]["candidate"] == 1
    check_mask_png(export.mask(1), shown[1], WIDE_HW)
