"""Coordinate frames: original pixels <-> 1024 model frame <-> display pixels."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from sam_onnx.geometry import MODEL_SIDE, DisplayFrame, Geometry


def test_model_frame_scales_each_axis_by_its_own_side():
    # 30 high x 400 wide, as in transformers' processor tests: x scales by 1024/400, y by 1024/30.
    geo = Geometry((30, 400))
    out = geo.to_model_xy([[200, 15], [0, 0], [399, 29]])
    np.testing.assert_allclose(out, [[512, 512], [0, 0], [399 * 1024 / 400, 29 * 1024 / 30]], rtol=1e-6)
    assert out.dtype == np.float32


def test_model_frame_never_truncates_or_mutates_integer_input():
    pts = np.array([[1, 1]], dtype=np.int64)
    out = Geometry((3, 3)).to_model_xy(pts)
    assert out[0, 0] == pytest.approx(1024 / 3)
    assert pts.tolist() == [[1, 1]]


@pytest.mark.parametrize("hw", [(1, 1), (2, 3), (3000, 4000), (4000, 3000), (20000, 15000), (7, 10000)])
def test_model_frame_round_trip(hw):
    geo = Geometry(hw)
    h, w = hw
    xy = np.array([[0, 0], [w - 1, h - 1], [w / 3, h / 7]])
    np.testing.assert_allclose(geo.to_original_xy(geo.to_model_xy(xy)), xy, rtol=1e-6, atol=1e-3)


def test_geometry_rejects_empty_size():
    with pytest.raises(ValueError):
        Geometry((0, 10))


@pytest.mark.parametrize("hw,max_side,expected", [
    ((3000, 4000), 1536, (1152, 1536)),
    ((4000, 3000), 1536, (1536, 1152)),
    ((100, 200), 1536, (100, 200)),      # never upscales
    ((10000, 7), 1000, (1000, 1)),       # at least one pixel
    ((600, 800), None, (600, 800)),
])
def test_display_fit_keeps_aspect_and_bounds_long_side(hw, max_side, expected):
    frame = DisplayFrame.fit(hw, max_side)
    assert frame.display_hw == expected
    assert frame.is_identity == (expected == hw)


def test_display_identity_maps_pixels_to_themselves():
    frame = DisplayFrame.fit((300, 500), 1536)
    np.testing.assert_array_equal(frame.to_original_xy([[0, 0], [499, 299], [17, 42]]), [[0, 0], [499, 299], [17, 42]])


def test_display_pixel_centre_maps_to_original_pixel_centre():
    # 4000x3000 shown at 1000x750: display pixel i covers original pixels 4i..4i+3, centre 4i+1.5.
    frame = DisplayFrame((3000, 4000), (750, 1000))
    np.testing.assert_allclose(frame.to_original_xy([[0, 0], [10, 20], [999, 749]]),
                               [[1.5, 1.5], [41.5, 81.5], [3997.5, 2997.5]])


@given(h=st.integers(1, 20000), w=st.integers(1, 20000), max_side=st.integers(1, 4096),
       fx=st.floats(0, 1), fy=st.floats(0, 1))
def test_display_round_trip_is_exact_and_in_bounds(h, w, max_side, fx, fy):
    frame = DisplayFrame.fit((h, w), max_side)
    dh, dw = frame.display_hw
    assert max(dh, dw) <= max(max_side, 1) or frame.is_identity
    xy_display = np.array([fx * (dw - 1), fy * (dh - 1)])
    xy_px = frame.to_original_xy(xy_display)
    assert 0 <= xy_px[0] <= w - 1 and 0 <= xy_px[1] <= h - 1
    np.testing.assert_allclose(frame.to_display_xy(xy_px), xy_display, atol=1e-6 * max(h, w))


def test_click_on_display_lands_on_the_same_model_position_as_the_original_pixel():
    # A click at display pixel (250, 100) of a 4000x3000 photo shown at 1536x1152 and the same point
    # clicked on the full-size photo reach the model at the same place (within a display pixel).
    frame = DisplayFrame.fit((3000, 4000), 1536)
    geo = Geometry((3000, 4000))
    xy_px = frame.to_original_xy([250, 100])
    model = geo.to_model_xy(xy_px)
    assert model[0] == pytest.approx((250 + 0.5) / 1536 * MODEL_SIDE - 0.5 * MODEL_SIDE / 4000, abs=1e-3)
