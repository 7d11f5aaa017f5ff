"""End to end in Chromium: refine while zoomed (issue 19 item 3), with ``--zoom-encode`` on.

Zoomed to 4x and left still, the view sends what it shows (``sam_demo/static/view/zoomed.js``); the server
encodes that region in the background at the lowest priority, and a click inside it then decodes there:
the downloaded mask is the analytic model's exact mask of the view's crop (tests/analytic_models.py). A new
upload while the view's encode still waits for the encoder withdraws it: nothing is encoded for it.

One server for the module, on the analytic models wrapped to record every crop they encode.
"""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest

from sam_onnx import CropFrame
from tests import analytic_models as am
from tests.browser.conftest import BIG_HW, DESKTOP, WIDE_HW, _open
from tools.ports import free_port

pytestmark = [pytest.mark.browser, pytest.mark.slow]  # slow tier: README, Tests

DISPLAY_HW = (1152, 1536)
WAIT_S = 60.0
"""Longest wait for the server's background work (milliseconds on the analytic models; a loaded machine)."""
_VISIBLE_JS = """() => { const t = document.querySelector('#display').samView.geometry;
  const [l, top, r, b] = t.visibleCss(); const [x0, y0] = t.cssToEdge(l, top); const [x1, y1] = t.cssToEdge(r, b);
  return [Math.max(0, x0), Math.max(0, y0), Math.min(t.W, x1), Math.min(t.H, y1)]; }"""


class RecordingPredictor:
    """The analytic predictor, recording the crop of every encoder run (``None`` for a whole image)."""

    def __init__(self, inner) -> None:
        self._inner = inner
        self.encoded: list[CropFrame | None] = []

    def encode_pixels(self, pixels, geometry, **options):
        self.encoded.append(geometry.crop)
        return self._inner.encode_pixels(pixels, geometry, **options)

    def __getattr__(self, name):
        return getattr(self._inner, name)


@pytest.fixture(scope="module")
def zoom_demo(predictor):
    import app
    from sam_demo.service import SegmentationService

    recording = RecordingPredictor(predictor)
    service = SegmentationService(recording, image_cache_mb=256, encode_zoomed_views=True)
    demo = app.build_demo(service)
    _, url, _ = demo.launch(prevent_thread_lock=True, quiet=True,
                            **app.launch_kwargs("127.0.0.1", free_port(), routes=app.app_routes(service)))
    try:
        yield url, service, recording
    finally:
        demo.close()


@pytest.fixture
def page(request, browser, zoom_demo, screenshots):
    yield from _open(request, browser, zoom_demo[0], screenshots, DESKTOP, touch=False)


def _zoom(page, zoom: float) -> tuple[float, ...]:
    page.page.evaluate("z => document.querySelector('#display').samView.zoomTo(z)", zoom)
    page.page.wait_for_function("z => Math.abs(document.querySelector('#display').samView.geometry.zoom - z) < 1e-9",
                                arg=zoom)
    return tuple(page.page.evaluate(_VISIBLE_JS))


def _until(condition, what: str) -> None:
    deadline = time.monotonic() + WAIT_S
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting until {what}"
        time.sleep(0.02)


def test_a_click_in_a_zoomed_view_downloads_the_views_exact_mask(page, pictures, zoom_demo):
    _, service, recording = zoom_demo
    page.upload(pictures["big"], DISPLAY_HW, BIG_HW)
    visible = _zoom(page, 4)
    view = CropFrame.for_view(BIG_HW, visible)
    _until(lambda: view in recording.encoded, "the zoomed view is encoded")
    page.page.wait_for_timeout(300)  # the state learns that the view is ready (an ordered edit after the encode)
    x0, y0, x1, y1 = view.box
    click = ((x0 + x1) // 2, (y0 + y1) // 2)
    page.click_image(*click)
    page.screenshot("zoomed_click")
    export = page.export()
    (obj,) = export.session["objects"]
    assert obj["crop"] == list(view.box), "the click decoded in the zoomed view's crop"
    (point,) = [tuple(p[:2]) for p in obj["points"]]
    exact, unsure = am.pipeline_mask([(point[0] - x0, point[1] - y0)], [1], None, view.crop_hw)
    got = export.mask(1) > 0
    assert not ((got[view.slices] != exact) & ~unsure).any() and got.sum() == got[view.slices].sum()
    assert recording.encoded.count(view) == 1, "the click itself encoded nothing"


def test_a_new_upload_withdraws_the_zoomed_views_waiting_encode(page, pictures, zoom_demo):
    _, service, recording = zoom_demo
    page.upload(pictures["wide"], WIDE_HW)  # encoded now, so that opening it again needs no encoder run
    page.upload(pictures["big"], DISPLAY_HW, BIG_HW)
    busy, release = threading.Event(), threading.Event()

    def another_users_upload():
        with service.encoder_gate.turn("another-tab"):
            busy.set()
            release.wait(WAIT_S)

    holder = threading.Thread(target=another_users_upload, daemon=True)
    holder.start()
    try:
        assert busy.wait(WAIT_S)
        view = CropFrame.for_view(BIG_HW, _zoom(page, 3))
        _until(lambda: service.encoder_gate.waiting() == 1, "the view's encode waits for the encoder")
        page.upload(pictures["wide"], WIDE_HW)  # a new image in this tab
        _until(lambda: service.encoder_gate.waiting() == 0, "the waiting encode is withdrawn")
        page.screenshot("new_upload")
    finally:
        release.set()
        holder.join(WAIT_S)
    page.page.wait_for_timeout(300)
    assert view not in recording.encoded, "the old view was never encoded"
    assert np.asarray(page.view_box().box_w) > 0  # the page still works on the new image
