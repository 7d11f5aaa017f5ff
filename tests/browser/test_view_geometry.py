"""The page's one place for frames (``sam_demo/static/view/geometry.js``), run in Chromium, against Python's.

``geometry.js`` mirrors ``sam_onnx.geometry``: the same numbers for original <-> model and display <->
original mappings on non-square, downscaled frames; and its view transform (CSS <-> original pixels) is
checked against this test's own arithmetic: a CSS point maps to the original pixel whose area holds it,
and a pixel's centre maps back onto it, at fit and at 2x and 8x zoom around any point.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from sam_onnx.geometry import DisplayFrame, Geometry

pytestmark = pytest.mark.browser

FRAMES = [((3000, 4000), 1536), ((576, 704), None), ((4032, 3024), 1536), ((7, 1000), 100)]
"""(original (H, W), display long side): landscape and portrait 12 MP, natural size, extreme aspect."""

_EVAL_JS = """async ([points, frames]) => {
  const g = await import(new URL('view/static/geometry.js', window.gradio_config.root.replace(/\\/?$/, '/')).href);
  const out = [];
  for (const [[H, W], [h, w]] of frames) {
    out.push({
      model: points.map(([x, y]) => g.toModel(x, y, W, H)),
      back: points.map(([x, y]) => g.fromModel(...g.toModel(x, y, W, H), W, H)),
      toOriginal: points.map(([x, y]) => g.displayToOriginal(x, y, W, H, w, h)),
      toDisplay: points.map(([x, y]) => g.originalToDisplay(x, y, W, H, w, h)),
    });
  }
  return out;
}"""

_VIEW_JS = """async ([W, H, w, h, boxW, boxH, zoom, cx, cy, probes]) => {
  const g = await import(new URL('view/static/geometry.js', window.gradio_config.root.replace(/\\/?$/, '/')).href);
  let t = new g.ViewTransform(W, H, w, h, boxW, boxH);
  if (zoom !== 1) t = t.zoomedAt(zoom, cx, cy);
  return {s: t.s, tx: t.tx, ty: t.ty, zoom: t.zoom,
          pixels: probes.map(([x, y]) => t.cssToPixel(x, y)),
          centres: probes.map(([x, y]) => { const p = t.cssToPixel(x, y); return p && t.originalToCss(p[0], p[1]); }),
          fixed: t.cssToOriginal(cx, cy), before: new g.ViewTransform(W, H, w, h, boxW, boxH).cssToOriginal(cx, cy)};
}"""


def test_frame_mappings_match_sam_onnx_geometry(desktop):
    rng = np.random.default_rng(0)
    frames = [DisplayFrame.fit(hw, side) for hw, side in FRAMES]
    points = rng.uniform(-0.5, 4000, (40, 2)).tolist() + [[0, 0], [-0.5, -0.5], [3999, 2999], [1535.7, 0.25]]
    got = desktop.page.evaluate(_EVAL_JS, [points, [[f.original_hw, f.display_hw] for f in frames]])
    for frame, js in zip(frames, got):
        geometry = Geometry(frame.original_hw)
        np.testing.assert_allclose(js["model"], geometry.to_model_xy(points), rtol=1e-6)
        np.testing.assert_allclose(js["back"], points, rtol=1e-9, atol=1e-9)
        np.testing.assert_allclose(js["toOriginal"], frame.to_original_xy(points), rtol=1e-12, atol=1e-9)
        np.testing.assert_allclose(js["toDisplay"], frame.to_display_xy(points), rtol=1e-12, atol=1e-9)


@pytest.mark.parametrize("zoom", [1, 2, 8])
def test_the_view_transform_maps_css_to_the_pixel_under_it_and_back(desktop, zoom):
    W, H = 4000, 3000
    frame = DisplayFrame.fit((H, W), 1536)
    box_w, box_h = 720.0, 540.0
    cx, cy = 301.0, 187.0  # zoomed around this CSS point
    rng = np.random.default_rng(zoom)
    probes = rng.uniform(0, [box_w, box_h], (200, 2)).tolist()
    js = desktop.page.evaluate(_VIEW_JS, [W, H, frame.display_hw[1], frame.display_hw[0], box_w, box_h, zoom, cx, cy,
                                          probes])
    fit = min(box_w / W, box_h / H, frame.display_hw[1] / W)
    assert js["s"] == pytest.approx(fit * zoom) and js["zoom"] == zoom
    np.testing.assert_allclose(js["fixed"], js["before"], atol=1e-9)  # the point under the pointer stays put
    for (x, y), pixel, centre in zip(probes, js["pixels"], js["centres"]):
        ex, ey = (x - js["tx"]) / js["s"], (y - js["ty"]) / js["s"]  # this test's own inverse
        if not (0 <= ex < W and 0 <= ey < H):
            assert pixel is None
            continue
        assert pixel == [math.floor(ex), math.floor(ey)], (x, y)
        assert centre == pytest.approx([js["tx"] + (pixel[0] + 0.5) * js["s"], js["ty"] + (pixel[1] + 0.5) * js["s"]])
        assert abs(centre[0] - x) <= js["s"] / 2 + 1e-9 and abs(centre[1] - y) <= js["s"] / 2 + 1e-9
