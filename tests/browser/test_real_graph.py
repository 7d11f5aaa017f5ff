"""End to end in Chromium on the reduced real-architecture model: a click exports PyTorch's mask.

The other browser scenarios run on the analytic models; this one serves tests/fixtures/sam2_tiny (a
transformers Sam2 with random weights, plain-trace export) and checks the downloaded mask against the
mask transformers' own pipeline made for the same click. A page-to-file error that the analytic models
could not express (the channel order, the pad point, the prompt mapping, the Concat repair) shows here.
"""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from tests.browser.pixels import ObjectPrompt
from tests.browser.test_prompts import INCLUDE, objects
from tests.test_reference_fixture import FIXTURE, MAX_FLIPS_PER_MASK, reference_click_mask

pytestmark = pytest.mark.browser


def test_click_on_the_real_graph_downloads_pytorchs_mask(real_graph_desktop):
    page = real_graph_desktop
    (x, y), expected = reference_click_mask()
    with Image.open(FIXTURE / "image.png") as im:
        hw = (im.height, im.width)
    page.upload(FIXTURE / "image.png", hw)
    result = page.click_image(int(x), int(y))
    assert result.box.natural and result.reported == (x, y), result
    page.screenshot("clicked")
    export = page.export()
    assert objects(export) == [ObjectPrompt(((x, y),), (INCLUDE,), candidate=export.session["objects"][0]["candidate"])]
    mask = export.mask(1) == 255
    differ = int(np.count_nonzero(mask != expected))
    # PyTorch and onnxruntime round a handful of |logit| < 3e-5 pixels differently (test_reference_fixture.py).
    assert differ <= MAX_FLIPS_PER_MASK, f"{differ} of {mask.size} pixels differ from PyTorch's mask"
