"""The exported SVG outlines, rendered by Chromium, cover the mask they came from (sam_onnx.vector.svg_document).

Every test shape goes into one SVG as the export writes it; the page shows one object at a time, filled opaque
black without its outline and without anti-aliasing (``shape-rendering: crispEdges``, which samples pixel
centres), at 1:1 on a white page, and the screenshot is compared with the mask: exact at tolerance 0 (the
outline is on pixel edges), IoU ≥ 0.99 at the default tolerance (pixel centres on a simplified edge may fall
either way).
"""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from sam_onnx import vector
from tools.vector_shapes import HW, SHAPES

pytestmark = pytest.mark.browser

SOLID = ("<style>path{fill:#000;fill-opacity:1;stroke:none;shape-rendering:crispEdges;display:none}"
         "path.shown{display:inline}</style>")


@pytest.fixture(scope="module")
def page(browser):
    context = browser.new_context(viewport={"width": HW[1], "height": HW[0]}, device_scale_factor=1)
    yield context.new_page()
    context.close()


def _rendered(page, svg: str, index: int) -> np.ndarray:
    """The page's pixels with object ``index`` (1-based) shown alone: ``(H, W)`` bool, True where black."""
    page.evaluate("i => { document.querySelectorAll('path').forEach(p => p.classList.toggle('shown', "
                  "p.id === 'object-' + i)); }", index)
    shot = page.screenshot(clip={"x": 0, "y": 0, "width": HW[1], "height": HW[0]})
    grey = np.asarray(Image.open(io.BytesIO(shot)).convert("L"))
    assert grey.shape == HW
    return grey < 128


@pytest.mark.parametrize("tolerance", [0, vector.DEFAULT_TOLERANCE])
def test_chromium_draws_each_object_of_the_svg_as_its_mask(page, tolerance):
    masks = {name: make() for name, make in SHAPES.items()}
    objects = [vector.VectorObject(name, vector.mask_polygons(m, tolerance=tolerance), (200, 30, 30))
               for name, m in masks.items()]
    svg = vector.svg_document(objects, HW, title="shapes")
    styled = svg.replace(">", ">" + SOLID, 1)  # after the opening <svg ...> tag
    page.set_content(f'<html><body style="margin:0;background:#fff">{styled}</body></html>')
    for index, (name, mask) in enumerate(masks.items(), start=1):
        drawn = _rendered(page, svg, index)
        if tolerance == 0:
            assert np.array_equal(drawn, mask), f"{name}: {np.count_nonzero(drawn != mask)} pixels differ"
        else:
            assert vector.iou(drawn, mask) >= 0.99, name
