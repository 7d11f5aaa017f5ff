"""End to end in Chromium (desktop page): pictures as they come from people.

An EXIF-rotated phone JPEG, a 4000x3000 photo shown downscaled, an example from
the gallery, and a file that is not a picture. Each checks that a click lands
on the original pixel the user pointed at (in the saved prompts), the overlay
shown in the page and the downloaded mask PNGs.
"""

from __future__ import annotations

import base64
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from sam_demo.service import DEFAULT_DISPLAY_SIDE
from sam_onnx.geometry import DisplayFrame
from sam_onnx.image import Note
from tests.browser.conftest import BIG_HW, PHONE_PHOTO_HW, WIDE_HW
from tests.browser.pixels import ObjectPrompt, check_mask_png, check_overlay, gradient_rgb
from tests.browser.test_prompts import FRAME as WIDE_FRAME
from tests.browser.test_prompts import INCLUDE, click, objects, start
from tests.browser.ui import TOAST_TEXT, UPLOAD_INPUT, DemoPage

pytestmark = pytest.mark.browser

ASSETS = Path(__file__).resolve().parents[2] / "assets"
PHOTO_NOISE = 0.001
"""Share of overlay pixels of a real (textured) photo that JPEG ringing may push nearer the wrong class."""
UPRIGHT_TOLERANCE = 8
"""Mean absolute difference (0-255) allowed between the shown photo and its upright pixels (two JPEG passes)."""


def test_exif_rotated_phone_jpeg(desktop, pictures):
    """Stored sideways with EXIF orientation 6: shown upright, and a click hits the pixel the user sees."""
    hw = PHONE_PHOTO_HW  # upright (H, W): portrait
    desktop.upload(pictures["exif"], hw)
    assert Note.ROTATED in desktop.status()
    base = desktop.display_pixels()
    upright = gradient_rgb(*hw, seed=1)
    assert np.abs(base.astype(int) - upright).mean() < UPRIGHT_TOLERANCE, "the display is not the upright photo"
    desktop.screenshot("uploaded")
    # a box over the lower left, where the user sees it (a point's mask is hidden under its marker at this size)
    desktop.set_mode("box")
    for corner in ((30, 190), (150, 300)):
        result = desktop.click_image(*corner)
        assert result.box.natural and result.reported == corner
    desktop.screenshot("clicked")
    expected = ObjectPrompt(box=(30.0, 190.0, 150.0, 300.0), candidate=0)
    frame = DisplayFrame(hw, hw)
    check_overlay(desktop.display_pixels(), base, [expected], frame)
    export = desktop.export()
    assert objects(export) == [expected]
    check_mask_png(export.mask(1), expected, hw)  # (320, 240): upright coordinates


def test_big_photo_shown_downscaled(desktop, pictures):
    """A 4000x3000 photo is shown as 1536x1152 and scaled again by the browser; clicks map to original pixels."""
    frame = DisplayFrame.fit(BIG_HW, DEFAULT_DISPLAY_SIDE)
    assert frame.display_hw == (1152, 1536)
    desktop.upload(pictures["big"], frame.display_hw, BIG_HW)
    assert "shown at 1536×1152" in desktop.status()
    base = desktop.display_pixels()
    desktop.screenshot("uploaded")
    targets = [(2900, 700), (150, 2850)]  # original pixels the user points at
    clicks = []
    for target in targets:
        result = desktop.click_image(*target)
        assert result.box.s * BIG_HW[1] < frame.display_hw[1] * 0.6, "the view should scale the display copy down"
        off = np.abs(np.subtract(result.reported, target)).max()
        assert off <= result.box.tolerance, f"aimed at {target}, the pointer was over {result.reported}"
        clicks.append(result)
    desktop.screenshot("clicked")
    export = desktop.export()
    recorded = export.session["objects"][0]["points"]
    for (x, y, label), result in zip(recorded, clicks):
        assert label == INCLUDE
        assert (x, y) == tuple(map(float, result.reported)), "the page sends the original pixel under the pointer"
    expected = ObjectPrompt(tuple((x, y) for x, y, _ in recorded), (INCLUDE, INCLUDE))
    check_overlay(desktop.display_pixels(), base, [expected], frame)
    check_mask_png(export.mask(1), expected, BIG_HW)


def test_example_from_the_gallery(desktop):
    name = "chelsea_cat.jpg"
    with Image.open(ASSETS / name) as im:
        hw = (im.height, im.width)
    desktop.pick_example(name, hw)
    base = desktop.display_pixels()
    desktop.screenshot("example")
    click(desktop, 225, 150)
    desktop.screenshot("clicked")
    expected = ObjectPrompt(((225.0, 150.0),), (INCLUDE,))
    check_overlay(desktop.display_pixels(), base, [expected], DisplayFrame(hw, hw), max_wrong_fraction=PHOTO_NOISE)
    export = desktop.export()
    assert all(file.startswith("chelsea_cat_") for file in export.files)
    assert objects(export) == [expected]
    check_mask_png(export.mask(1), expected, hw)


def upload_bad_file(page: DemoPage, pictures) -> str:
    """Upload a text file named .png; return the toast's message."""
    page.page.locator(UPLOAD_INPUT).set_input_files(str(pictures["bad"]))
    toast = page.page.locator(TOAST_TEXT, has_text="Could not read this image").first
    toast.wait_for()
    page.page.wait_for_function(  # slid in and fully opaque, for the screenshot
        "() => [...document.querySelectorAll('[data-testid=toast-body]')]"
        ".some(t => getComputedStyle(t).opacity === '1')")
    return toast.inner_text()


def test_bad_file_shows_a_readable_message(desktop: DemoPage, pictures):
    start(desktop, pictures)
    click(desktop, 250, 290)
    before = desktop.drawn(), desktop.display_pixels()
    message = upload_bad_file(desktop, pictures)
    desktop.screenshot("error_toast")
    assert "PNG, JPEG or WebP" in message and "Traceback" not in message
    assert desktop.drawn() == before[0] and np.array_equal(desktop.display_pixels(), before[1]), (
        "the previous picture must stay")
    assert "704×576" in desktop.status()
    export = desktop.export()  # the session still holds the previous image and its masks
    expected = ObjectPrompt(((250.0, 290.0),), (INCLUDE,))
    assert all(file.startswith("wide_") for file in export.files)
    assert objects(export) == [expected]
    check_mask_png(export.mask(1), expected, WIDE_HW)


def test_bad_file_leaves_the_previous_image_usable(desktop: DemoPage, pictures):
    base = start(desktop, pictures)
    click(desktop, 250, 290)
    upload_bad_file(desktop, pictures)
    tracker = desktop.page.locator("#display [data-testid=status-tracker]").first
    assert "Error" not in tracker.inner_text(), "the display is covered by an 'Error' box"
    click(desktop, 450, 290)  # and editing goes on, on the previous image
    expected = ObjectPrompt(((250.0, 290.0), (450.0, 290.0)), (INCLUDE, INCLUDE))
    check_overlay(desktop.display_pixels(), base, [expected], WIDE_FRAME)
    export = desktop.export()
    assert objects(export) == [expected]
    check_mask_png(export.mask(1), expected, WIDE_HW)


QUIET_MS = 1500
"""How long the page is watched for a repeated event or message after an upload has been answered."""


def test_rejected_upload_shows_one_message(desktop: DemoPage, pictures):
    """Uploading over an image already shown used to run the upload twice: "Error (2)", the same line twice."""
    start(desktop, pictures)
    sent = desktop.track_events()
    message = upload_bad_file(desktop, pictures)
    desktop.page.wait_for_timeout(QUIET_MS)
    desktop.screenshot("one_message")
    assert desktop.toasts() == [message], "one rejected upload, one message"
    assert sent.count("ui_open_image") == 1, f"the upload was sent {sent.count('ui_open_image')} times"


def test_each_upload_and_example_is_loaded_once(desktop: DemoPage, pictures):
    start(desktop, pictures)
    sent = desktop.track_events()
    desktop.upload(pictures["exif"], PHONE_PHOTO_HW)  # over the image already shown
    desktop.page.wait_for_timeout(QUIET_MS)
    assert sent.count("ui_open_image") == 1, sent
    name = "chelsea_cat.jpg"
    with Image.open(ASSETS / name) as im:
        hw = (im.height, im.width)
    desktop.pick_example(name, hw)
    desktop.page.wait_for_timeout(QUIET_MS)
    opened = [e for e in sent if e.startswith("ui_open_")]
    assert opened == ["ui_open_image", "ui_open_example"], opened
    assert desktop.toasts() == []


_CLIPBOARD_JS = """async b64 => { const bytes = Uint8Array.from(atob(b64), c => c.charCodeAt(0));
  await navigator.clipboard.write([new ClipboardItem({'image/png': new Blob([bytes], {type: 'image/png'})})]); }"""


def test_pasted_image_is_loaded_once(desktop: DemoPage, pictures):
    """Paste from the clipboard (the upload box's paste button) loads the image, once."""
    desktop.page.context.grant_permissions(["clipboard-read", "clipboard-write"])
    sent = desktop.track_events()
    desktop.page.evaluate(_CLIPBOARD_JS, base64.b64encode(pictures["wide"].read_bytes()).decode())
    desktop.tap_or_click(desktop.page.locator("#input_image button[aria-label='Paste from clipboard']"))
    desktop.wait_for_display(WIDE_HW, WIDE_HW)
    desktop.page.wait_for_timeout(QUIET_MS)
    assert sent.count("ui_open_image") == 1, sent
    assert np.abs(desktop.display_pixels().astype(int) - gradient_rgb(*WIDE_HW)).mean() < UPRIGHT_TOLERANCE
