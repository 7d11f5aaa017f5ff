"""End to end in Chromium: refine an object in a crop (issue 19) and download the sharper mask.

The 4000 x 3000 test photo is shown at 1536 x 1152. A click selects the analytic disc (64 model units
of the whole image, so 250 x 188 px); the `R` key refines it: the crop around that disc (mask box plus
20 %) is encoded and the same click decoded there, which gives the analytic disc of the crop, computed
here independently (tests/analytic_models.py). The downloaded PNG must be exactly that mask; undo must
bring back the whole image's mask; the prompts file must carry the crop and load it back.
"""

from __future__ import annotations

import numpy as np
import pytest

from sam_onnx import CropFrame
from tests import analytic_models as am
from tests.browser.conftest import BIG_HW
from tests.browser.ui import DemoPage

pytestmark = pytest.mark.browser

DISPLAY_HW = (1152, 1536)
CLICK = (1822, 1302)
"""Original pixels of the click (display pixel (700, 500))."""


def _exact(mask: np.ndarray, points, crop: CropFrame | None) -> None:
    """``mask`` (uint8 PNG, original size) is the analytic model's exact mask for one include click, decoded on
    the whole image (``crop`` None) or on ``crop`` (then empty outside it)."""
    assert mask.shape == BIG_HW
    got = mask > 0
    if crop is None:
        exact, unsure = am.pipeline_mask(points, [1], None, BIG_HW)
    else:
        x0, y0 = crop.offset_xy
        inner, inner_unsure = am.pipeline_mask([(x - x0, y - y0) for x, y in points], [1], None, crop.crop_hw)
        exact, unsure = np.zeros(BIG_HW, bool), np.zeros(BIG_HW, bool)
        exact[crop.slices], unsure[crop.slices] = inner, inner_unsure
    wrong = (got != exact) & ~unsure
    assert exact.any() and not wrong.any(), f"{int(wrong.sum())} pixels differ from the exact mask"


def _refine_by_key(page: DemoPage) -> None:
    before = page.drawn()
    page.focus_page()
    page.page.keyboard.press("r")
    page.page.wait_for_function("() => document.querySelector('#status').innerText.includes('refined in')")
    page.wait_for_scene(before)


def test_refine_downloads_the_sharper_mask_undo_takes_it_back_and_the_prompts_file_keeps_it(desktop, pictures,
                                                                                             tmp_path):
    desktop.upload(pictures["big"], DISPLAY_HW, BIG_HW)
    desktop.click_image(*CLICK)
    _refine_by_key(desktop)
    desktop.screenshot("refined")
    status = desktop.status()
    assert "refined in" in status and "finer" in status and "refined" in desktop.selected_object()
    refined = desktop.export()
    (obj,) = refined.session["objects"]
    points = [tuple(p[:2]) for p in obj["points"]]
    crop = CropFrame(BIG_HW, tuple(obj["crop"]))
    _exact(refined.mask(1), points, crop)
    assert crop.crop_hw[1] < BIG_HW[1] / 3, "the crop is much smaller than the photo: a finer grid"

    desktop.press_button("undo_btn")
    undone = desktop.export()
    assert undone.session["objects"][0]["crop"] is None
    _exact(undone.mask(1), points, None)  # the whole image's mask again
    assert (refined.mask(1) != undone.mask(1)).sum() > 1000, "the refined mask was a different, finer one"

    # The prompts file saved with the refinement loads back refined (no new crop chosen, same mask).
    saved = tmp_path / "refined_prompts.json"
    saved.write_bytes(refined.named("_prompts.json"))
    before = desktop.drawn()
    desktop.page.locator("#load_btn").locator("xpath=..").locator("input[type=file]").set_input_files(str(saved))
    desktop.wait_for_scene(before)
    loaded = desktop.export()
    assert loaded.session["objects"][0]["crop"] == list(crop.box)
    np.testing.assert_array_equal(loaded.mask(1), refined.mask(1))


def test_refine_without_prompts_says_so_and_changes_nothing(desktop, pictures):
    desktop.upload(pictures["wide"], (576, 704))
    before = desktop.drawn()
    desktop.page.locator("#refine_btn").click()
    desktop.page.wait_for_function("() => [...document.querySelectorAll('[data-testid=toast-text]')]"
                                   ".some(t => t.innerText.includes('no prompts'))")
    assert desktop.drawn() == before and "refined" not in desktop.status()
