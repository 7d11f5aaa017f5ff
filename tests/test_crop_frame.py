"""The crop frame of a refinement: original <-> crop <-> the crop's 1024 model frame, and the crop rule.

Every coordinate change of a refinement goes through ``sam_onnx.geometry.CropFrame`` (and a
``Geometry`` carrying it); these tests pin the conversions on non-square, tiny, huge and
EXIF-rotated images, and the documented rule that picks a crop (mask box + 20 %, clamped, at
least 256 px, at most 2:1).
"""

from __future__ import annotations

import io

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from PIL import Image

from sam_onnx.geometry import (
    CROP_MARGIN,
    MAX_CROP_ASPECT,
    MIN_CROP_SIDE,
    MODEL_SIDE,
    CropFrame,
    DisplayFrame,
    Geometry,
)
from sam_onnx.image import load_image
from sam_onnx.preprocess import preprocess_crop, preprocess_image

SIZES = [(3000, 4000), (4000, 3000), (30, 400), (24, 16), (1, 1), (20000, 15000)]


@pytest.mark.parametrize("hw", SIZES)
def test_original_crop_model_round_trip(hw):
    h, w = hw
    crop = CropFrame(hw, (w // 4, h // 3, max(w // 4 + 1, 3 * w // 4), max(h // 3 + 1, h - 1)))
    geometry = Geometry(hw, crop)
    x0, y0 = crop.offset_xy
    ch, cw = crop.crop_hw
    xy = np.array([[x0, y0], [x0 + cw - 1, y0 + ch - 1], [x0 + cw / 3, y0 + ch / 7]], np.float64)
    np.testing.assert_array_equal(crop.to_original_xy(crop.to_crop_xy(xy)), xy)
    np.testing.assert_allclose(geometry.to_original_xy(geometry.to_model_xy(xy)), xy, rtol=1e-6, atol=1e-3)
    # The crop's model frame is the crop treated as an image of its own: (x - x0) * 1024 / w_crop.
    np.testing.assert_allclose(geometry.to_model_xy(xy), Geometry(crop.crop_hw).to_model_xy(xy - (x0, y0)),
                               rtol=1e-6)
    assert geometry.input_hw == crop.crop_hw


def test_the_crops_corner_pixel_is_the_model_frames_origin_and_its_far_edge_is_1024():
    crop = CropFrame((3000, 4000), (1000, 500, 1512, 756))  # 512 x 256
    geometry = Geometry((3000, 4000), crop)
    np.testing.assert_array_equal(geometry.to_model_xy([[1000, 500], [1512, 756], [1256, 628]]),
                                  [[0, 0], [MODEL_SIDE, MODEL_SIDE], [512, 512]])


def test_a_geometry_without_a_crop_is_unchanged():
    geometry = Geometry((300, 500))
    np.testing.assert_allclose(geometry.to_model_xy([[250, 150]]), [[512, 512]])
    assert geometry.spans((300, 500)) == ((0.0, 300.0), (0.0, 500.0))


def test_a_crop_must_be_whole_pixels_inside_its_image():
    for box in [(0, 0, 0, 5), (3, 3, 2, 9), (-1, 0, 5, 5), (0, 0, 11, 5), (0.5, 0, 5, 5), ("a", 0, 5, 5)]:
        with pytest.raises(ValueError):
            CropFrame((10, 10), box)
    with pytest.raises(ValueError, match="crop is of a"):
        Geometry((10, 20), CropFrame((10, 10), (0, 0, 5, 5)))


def test_points_inside_follow_the_point_rule_and_boxes_are_cut():
    crop = CropFrame((100, 100), (10, 20, 30, 40))
    inside = crop.contains_xy([[10, 20], [29.99, 39.99], [9.99, 25], [30, 25], [15, 40]])
    assert inside.tolist() == [True, True, False, False, False]
    assert crop.clip_box((0, 0, 15, 100)) == (10, 20, 15, 40)
    assert crop.clip_box((30, 0, 50, 50)) is None  # touches the edge only: no area inside


def test_spans_place_the_crop_in_original_and_display_pixels():
    crop = CropFrame((3000, 4000), (1000, 600, 1400, 900))
    assert crop.spans((3000, 4000)) == ((600, 900), (1000, 1400))
    display = DisplayFrame.fit((3000, 4000), 1536)
    (r0, r1), (c0, c1) = crop.spans(display.display_hw)
    assert (r0, r1, c0, c1) == pytest.approx((600 * 0.384, 900 * 0.384, 1000 * 0.384, 1400 * 0.384))


# ---------------------------------------------------------------------------- the crop rule
def test_crop_is_the_extent_plus_20_percent_on_each_side():
    crop = CropFrame.around((3000, 4000), (1000, 1000, 1500, 1400))  # 500 x 400 object
    assert crop.box == (900, 920, 1600, 1480)
    assert CROP_MARGIN == 0.2


def test_crop_is_clamped_to_the_image():
    crop = CropFrame.around((3000, 4000), (3600, 2700, 4000, 3000))
    assert crop.box == (3520, 2640, 4000, 3000)


def test_small_objects_get_the_minimum_side_centred_and_shifted_inside():
    crop = CropFrame.around((3000, 4000), (2000, 1500, 2040, 1540))  # a 40 px disc
    assert crop.crop_hw == (MIN_CROP_SIDE, MIN_CROP_SIDE)
    assert crop.box == (1892, 1392, 2148, 1648)
    corner = CropFrame.around((3000, 4000), (0, 0, 40, 40))
    assert corner.box == (0, 0, MIN_CROP_SIDE, MIN_CROP_SIDE)


def test_a_long_thin_object_gets_at_most_a_2_to_1_crop():
    crop = CropFrame.around((3000, 4000), (1000, 1500, 3000, 1505))  # a 2000 x 5 px line
    h, w = crop.crop_hw
    assert w == 2800 and h == 1400 and MAX_CROP_ASPECT == 2.0


def test_an_image_smaller_than_the_minimum_gives_its_whole_side():
    crop = CropFrame.around((24, 16), (5, 5, 8, 8))
    assert crop.is_whole_image


@given(h=st.integers(1, 20000), w=st.integers(1, 20000), fx=st.floats(0, 1), fy=st.floats(0, 1),
       fw=st.floats(0.0001, 1), fh=st.floats(0.0001, 1))
def test_crop_rule_properties(h, w, fx, fy, fw, fh):
    x0, y0 = fx * w, fy * h
    x1, y1 = min(w, x0 + max(fw * w, 1e-3)), min(h, y0 + max(fh * h, 1e-3))
    if x1 <= x0 or y1 <= y0:
        return
    crop = CropFrame.around((h, w), (x0, y0, x1, y1))
    cx0, cy0, cx1, cy1 = crop.box
    assert 0 <= cx0 and cx1 <= w and 0 <= cy0 and cy1 <= h  # inside the image
    assert cx0 <= np.floor(x0) and cx1 >= np.ceil(x1) - 0 and cy0 <= np.floor(y0) and cy1 >= np.ceil(y1)  # holds it
    ch, cw = crop.crop_hw
    assert ch >= min(MIN_CROP_SIDE, h) and cw >= min(MIN_CROP_SIDE, w)
    # At most 2:1, unless the image itself is too narrow to widen the short side.
    assert max(ch, cw) <= MAX_CROP_ASPECT * min(ch, cw) + 1 or ch == h or cw == w


# ---------------------------------------------------------------------------- pixels
def test_the_encoder_sees_the_crop_squashed_like_a_whole_image(rgb_image):
    rgb = rgb_image(300, 500)
    crop = CropFrame((300, 500), (100, 50, 400, 250))
    pixels, geometry = preprocess_crop(rgb, crop)
    expected, _ = preprocess_image(np.ascontiguousarray(rgb[50:250, 100:400]))
    np.testing.assert_array_equal(pixels, expected)
    assert geometry == Geometry((300, 500), crop)


def test_exif_rotated_photo_crop_holds_the_upright_pixels():
    """A phone photo stored landscape with orientation 6 (shown turned 90° clockwise): the crop frame is in
    upright pixels, so the marker the user sees at upright (x, y) is at crop pixel (x - x0, y - y0)."""
    stored = np.full((300, 400, 3), 200, np.uint8)  # stored landscape 400 x 300
    stored[40:60, 300:330] = (200, 30, 30)          # red marker at stored x 300..329, y 40..59
    exif = Image.Exif()
    exif[0x0112] = 6
    buffer = io.BytesIO()
    Image.fromarray(stored).save(buffer, format="PNG", exif=exif)
    upright = load_image(buffer.getvalue()).rgb
    assert upright.shape[:2] == (400, 300)
    # Rotating 90° clockwise: stored (x, y) -> upright (H_stored - 1 - y, x).
    marker_xy = np.array([300 - 1 - 50, 315])  # centre of the marker, upright pixels
    crop = CropFrame.around(upright.shape[:2], (marker_xy[0] - 10, marker_xy[1] - 15, marker_xy[0] + 10,
                                                marker_xy[1] + 15))
    u, v = crop.to_crop_xy(marker_xy).astype(int)
    assert tuple(upright[crop.slices][v, u]) == (200, 30, 30)
    np.testing.assert_array_equal(crop.to_original_xy((u, v)), marker_xy)
