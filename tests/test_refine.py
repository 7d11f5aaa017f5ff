"""Refining an object in a crop, in the wrapper: masks of a crop's logits, prompts in the crop, the crop rule.

The defining property: decoding on a crop's embedding gives, inside the crop, exactly the mask of the
crop decoded as an image of its own (prompts shifted into it), and nothing outside. The analytic
models (tests/analytic_models.py) then give the exact mask independently.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sam_onnx import Box, CropFrame, InvalidPromptError, Point, Prompts, refine
from sam_onnx.geometry import DisplayFrame, Geometry
from sam_onnx.postprocess import mask_crop_from_logits, mask_from_logits
from sam_onnx.prompts import encode_prompts, prompts_for_crop
from sam_onnx.types import MaskResult
from tests import analytic_models as am
from tests.conftest import make_rgb


def _paste(crop_mask: np.ndarray, crop: CropFrame) -> np.ndarray:
    out = np.zeros(crop.original_hw, bool)
    out[crop.slices] = crop_mask
    return out


# ---------------------------------------------------------------------------- masks of a crop's logits
@pytest.mark.parametrize("hw,box", [((3000, 4000), (1000, 600, 1400, 900)), ((30, 400), (10, 0, 300, 30)),
                                    ((24, 16), (3, 5, 11, 20)), ((500, 300), (0, 0, 300, 256))])
def test_a_crop_results_full_size_mask_is_its_crop_mask_pasted_in_place(hw, box):
    rng = np.random.default_rng(sum(box))
    logits = (rng.normal(size=(3, 256, 256)) - 0.5).astype(np.float32)
    crop = CropFrame(hw, box)
    result = MaskResult(logits, np.array([0.2, 0.9, 0.1], np.float32), 0.0, Geometry(hw, crop))
    for k in range(3):
        expected = _paste(mask_from_logits(logits[k], crop.crop_hw), crop)
        np.testing.assert_array_equal(result.mask(k), expected)
        np.testing.assert_array_equal(result.masks[k], expected)
        part, (r, c) = result.mask_crop(k)
        np.testing.assert_array_equal(expected[r:r + part.shape[0], c:c + part.shape[1]], part)
        assert expected.sum() == part.sum()
    x0, y0, x1, y1 = result.mask_box()
    rows, cols = np.nonzero(result.best_mask)
    assert (x0, y0, x1, y1) == (cols.min(), rows.min(), cols.max() + 1, rows.max() + 1)


@settings(max_examples=60, deadline=None)
@given(h=st.integers(1, 3000), w=st.integers(1, 3000), side=st.integers(1, 1536), seed=st.integers(0, 99),
       fx=st.floats(0, 0.9), fy=st.floats(0, 0.9), fw=st.floats(0.01, 1), fh=st.floats(0.01, 1))
def test_crop_mask_at_any_size_is_the_full_mask_where_it_can_be_true(h, w, side, seed, fx, fy, fw, fh):
    """At a display size, the cheap window of a crop result equals its full-size computation, bit for bit."""
    x0, y0 = int(fx * w), int(fy * h)
    x1, y1 = max(x0 + 1, min(w, x0 + int(fw * w))), max(y0 + 1, min(h, y0 + int(fh * h)))
    crop = CropFrame((h, w), (x0, y0, x1, y1))
    out_hw = DisplayFrame.fit((h, w), side).display_hw
    logits = (np.random.default_rng(seed).normal(size=(256, 256)) - 1.0).astype(np.float32)
    spans = crop.spans(out_hw)
    full = mask_from_logits(logits, out_hw, spans)
    part, (r, c) = mask_crop_from_logits(logits, out_hw, spans=spans)
    rebuilt = np.zeros(out_hw, bool)
    rebuilt[r:r + part.shape[0], c:c + part.shape[1]] = part
    np.testing.assert_array_equal(rebuilt, full)


def test_without_a_crop_the_spans_change_nothing():
    logits = (np.random.default_rng(3).normal(size=(256, 256))).astype(np.float32)
    for hw in [(1152, 1536), (77, 100), (1, 1)]:
        np.testing.assert_array_equal(mask_from_logits(logits, hw, Geometry(hw).spans(hw)),
                                      mask_from_logits(logits, hw))


# ---------------------------------------------------------------------------- prompts in the crop
CROP = CropFrame((1000, 1000), (100, 100, 400, 400))


def test_exclude_points_outside_the_crop_are_left_out_and_a_box_is_cut():
    prompts = Prompts((Point(200, 200), Point(50, 50, 0), Point(300, 300, 0)), Box(50, 150, 350, 500))
    assert prompts_for_crop(prompts, CROP) == Prompts((Point(200, 200), Point(300, 300, 0)), Box(100, 150, 350, 400))


def test_nothing_positive_inside_the_crop_is_refused_with_a_message():
    for prompts in [Prompts((Point(50, 50),)), Prompts((Point(200, 200, 0),)), Prompts(box=Box(500, 500, 600, 600))]:
        with pytest.raises(InvalidPromptError, match="inside its refined area"):
            prompts_for_crop(prompts, CROP)


def test_feeds_of_a_crop_are_in_the_crops_model_frame_with_the_pad_point():
    prompts = Prompts((Point(250, 175), Point(10, 10, 0)))
    (batch,) = encode_prompts([prompts], Geometry((1000, 1000), CROP))
    np.testing.assert_allclose(batch.feeds["input_points"], [[[[512, 256], [0, 0]]]])  # outside point gone, pad
    assert batch.feeds["input_labels"].tolist() == [[[1, -1]]]
    (boxed,) = encode_prompts([Prompts(box=Box(0, 0, 250, 250))], Geometry((1000, 1000), CROP))
    np.testing.assert_allclose(boxed.feeds["input_boxes"], [[[0, 0, 512, 512]]])


# ---------------------------------------------------------------------------- through onnxruntime
@pytest.mark.parametrize("hw,click,crop_box", [
    ((3000, 4000), (2100, 1400), (1900, 1250, 2400, 1560)),   # 12 MP, a 500 x 310 crop
    ((300, 500), (120, 200), (0, 100, 256, 300)),             # at the image's corner
    ((30, 400), (390, 20), (300, 0, 400, 30)),                 # very wide image
])
def test_decoding_on_a_crop_is_the_crop_decoded_as_an_image_of_its_own(predictor, hw, click, crop_box):
    rgb = make_rgb(*hw)
    crop = CropFrame(hw, crop_box)
    prompts = Prompts((Point(*click), Point(0, 0, 0)))  # the exclude point lies outside the crop
    fine = predictor.decode(predictor.encode_crop(rgb, crop), prompts)
    assert fine.best_mask.shape == hw
    x0, y0 = crop.offset_xy
    alone = predictor.decode(predictor.encode(np.ascontiguousarray(rgb[crop.slices])),
                             Prompts((Point(click[0] - x0, click[1] - y0),)))
    np.testing.assert_array_equal(fine.best_mask, _paste(alone.best_mask, crop))
    np.testing.assert_array_equal(fine.low_res_logits, alone.low_res_logits)
    # And independently of the wrapper: the analytic rule in the crop's frame, pad point included.
    am.assert_pipeline_mask(fine.best_mask[crop.slices], [(click[0] - x0, click[1] - y0)], [1], None, crop.crop_hw)
    assert not fine.best_mask[~_paste(np.ones(crop.crop_hw, bool), crop)].any()  # nothing outside the crop


def test_refining_gives_a_finer_grid_than_the_whole_image(predictor):
    """On a 12 MP image the whole-image mask moves in steps of one low-res cell (15.6 px); the crop's in
    steps of w_crop / 256 px: the analytic disc's edge is found to within that."""
    hw = (3000, 4000)
    rgb = make_rgb(*hw)
    prompts = Prompts((Point(2000.3, 1500.7),))
    coarse = predictor.decode(predictor.encode(rgb), prompts)
    crop = refine.crop_for(coarse, prompts)
    fine = predictor.decode(predictor.encode_crop(rgb, crop), prompts)
    pts = [(2000.3 - crop.offset_xy[0], 1500.7 - crop.offset_xy[1])]
    exact, unsure = am.pipeline_mask(pts, [1], None, crop.crop_hw)
    assert not ((fine.best_mask[crop.slices] != exact) & ~unsure).any()
    assert crop.crop_hw[1] / 256 < 4000 / 256 / 3


def test_crop_for_follows_the_documented_rule(predictor):
    hw = (1500, 2000)
    rgb = make_rgb(*hw)
    rgb[1300:1500, 1800:2000] = am.KEY_RGB  # pure blue: the analytic decoder never puts it in a mask
    embedding = predictor.encode(rgb)
    prompts = Prompts((Point(1000, 750),))
    result = predictor.decode(embedding, prompts)
    x0, y0, x1, y1 = result.mask_box()
    crop = refine.crop_for(result, prompts)
    assert crop == CropFrame.around(hw, (x0, y0, x1, y1))
    # A far include point the mask does not reach is held by the crop too.
    far = Prompts((Point(1000, 750), Point(1900, 1400)))
    far_result = predictor.decode(embedding, far)
    assert not far_result.best_mask[1350:1450, 1850:1950].any()  # the point itself is not in the mask
    crop = refine.crop_for(far_result, far)
    assert crop.contains_xy((1900, 1400))
    # A loose box is not: it is cut to the crop, which follows the mask.
    boxed = Prompts((Point(1000, 750),), Box(500, 300, 1700, 1200))
    boxed_result = predictor.decode(embedding, boxed)
    crop = refine.crop_for(boxed_result, boxed)
    assert crop == CropFrame.around(hw, boxed_result.mask_box()) and crop.clip_box(boxed.box.xyxy) != boxed.box.xyxy


def test_refine_refuses_an_empty_mask_no_prompts_and_the_whole_image(predictor):
    embedding = predictor.encode(make_rgb(300, 500))
    negative = Prompts((Point(100, 100, 0),))  # the analytic model gives an empty mask
    with pytest.raises(InvalidPromptError, match="mask is empty"):
        refine.crop_for(predictor.decode(embedding, negative), negative)
    with pytest.raises(InvalidPromptError, match="no prompts"):
        refine.crop_for(predictor.decode(embedding, Prompts((Point(1, 1),))), Prompts())
    tiny = predictor.encode(make_rgb(24, 16))
    whole = Prompts((Point(8, 12),))
    with pytest.raises(InvalidPromptError, match="whole image"):
        refine.crop_for(predictor.decode(tiny, whole), whole)


def test_a_crop_of_another_image_size_is_refused(predictor):
    with pytest.raises(ValueError, match="crop is of a"):
        predictor.encode_crop(make_rgb(300, 500), CropFrame((500, 300), (0, 0, 10, 10)))


def test_segment_everything_refuses_a_crops_embedding(predictor):
    from sam_onnx import amg

    rgb = make_rgb(300, 500)
    crop_embedding = predictor.encode_crop(rgb, CropFrame((300, 500), (0, 0, 256, 256)))
    with pytest.raises(ValueError, match="not a crop's"):
        amg.generate(predictor, crop_embedding, amg.PRESETS["fast"])
