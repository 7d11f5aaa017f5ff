"""mask_crop_from_logits: the same mask as a full upsample, computed only where it can be True."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sam_onnx.postprocess import mask_crop_from_logits, mask_from_logits, upsample_logits

SIZES = [(1152, 1536), (3000, 2000), (100, 77), (77, 100), (256, 256), (255, 257), (1, 1), (1, 5), (7, 1)]


def pasted(crop: np.ndarray, offset: tuple[int, int], hw: tuple[int, int]) -> np.ndarray:
    full = np.zeros(hw, dtype=bool)
    r, c = offset
    full[r : r + crop.shape[0], c : c + crop.shape[1]] = crop
    return full


def assert_same_as_full(logits: np.ndarray, hw: tuple[int, int], **kwargs) -> tuple[np.ndarray, tuple[int, int]]:
    crop, offset = mask_crop_from_logits(logits, hw, **kwargs)
    threshold = kwargs.get("threshold", 0.0)
    expected = mask_from_logits(logits, hw) if threshold == 0.0 else upsample_logits(logits, hw) > threshold
    assert crop.dtype == bool
    r, c = offset
    assert r >= 0 and c >= 0 and r + crop.shape[0] <= hw[0] and c + crop.shape[1] <= hw[1]
    np.testing.assert_array_equal(pasted(crop, offset, hw), expected)
    return crop, offset


def blob(cells: list[tuple[int, int]], shape=(256, 256), inside=4.0, outside=-6.0) -> np.ndarray:
    logits = np.full(shape, outside, np.float32)
    for r, c in cells:
        logits[r, c] = inside
    return logits


@pytest.mark.parametrize("hw", SIZES)
def test_random_logits_match_the_full_upsample_exactly(hw):
    rng = np.random.default_rng(hw[0] * 7 + hw[1])
    # Mostly negative with scattered positives, like a decoder output with speckles.
    logits = (rng.normal(size=(256, 256)) - 1.5).astype(np.float32)
    assert_same_as_full(logits, hw)


@pytest.mark.parametrize("hw", SIZES)
@pytest.mark.parametrize("cell", [(0, 0), (0, 255), (255, 0), (255, 255), (0, 128), (255, 128), (128, 0),
                                  (128, 255), (128, 128), (1, 254)])
def test_single_cell_blobs_anywhere_including_every_border(hw, cell):
    crop, _ = assert_same_as_full(blob([cell]), hw)
    if max(hw) >= 1024:  # upscaling: one positive cell becomes a visible few-pixel blob
        assert crop.any()


@pytest.mark.parametrize("hw", [(1152, 1536), (100, 77), (30, 500)])
def test_blobs_touching_all_four_borders_at_once(hw):
    logits = blob([(0, c) for c in range(40, 60)] + [(255, c) for c in range(100, 130)]
                  + [(r, 0) for r in range(10, 20)] + [(r, 255) for r in range(200, 256)])
    crop, offset = assert_same_as_full(logits, hw)
    assert offset == (0, 0) and crop.shape == hw


@pytest.mark.parametrize("in_hw", [(256, 256), (64, 48), (5, 9), (1, 1)])
@pytest.mark.parametrize("hw", [(1000, 600), (13, 11), (2, 3)])
def test_other_low_res_sizes(in_hw, hw):
    rng = np.random.default_rng(in_hw[0] + hw[1])
    assert_same_as_full((rng.normal(size=in_hw) - 0.8).astype(np.float32), hw)


@pytest.mark.parametrize("threshold", [0.5, -1.0, 3.0])
def test_other_thresholds_match_too(threshold):
    rng = np.random.default_rng(3)
    logits = (rng.normal(size=(256, 256)) * 2 - 2).astype(np.float32)
    assert_same_as_full(logits, (1152, 1536), threshold=threshold)
    assert_same_as_full(logits, (90, 70), threshold=threshold)


@pytest.mark.parametrize("margin", [0, 1, 3])
def test_margin_changes_the_window_not_the_mask(margin):
    logits = blob([(r, c) for r in range(100, 120) for c in range(60, 90)])
    crop, offset = assert_same_as_full(logits, (1152, 1536), margin_cells=margin)
    if margin >= 1:  # a False border on every side, for contour drawing
        assert not crop[0].any() and not crop[-1].any() and not crop[:, 0].any() and not crop[:, -1].any()


def test_small_object_gives_a_small_crop():
    crop, offset = assert_same_as_full(blob([(r, c) for r in range(100, 110) for c in range(120, 135)]), (3000, 4000))
    assert crop.shape[0] < 200 and crop.shape[1] < 300
    # The crop sits where the object is: cells 100..109 of 256 rows -> rows ~1170..1290 of 3000.
    assert 1100 < offset[0] < 1200 and 1800 < offset[1] < 1900


def test_nothing_above_threshold_gives_an_empty_crop():
    crop, offset = mask_crop_from_logits(np.full((256, 256), -3.0, np.float32), (480, 640))
    assert crop.shape == (0, 0) and crop.dtype == bool and offset == (0, 0)
    crop, _ = mask_crop_from_logits(np.zeros((256, 256), np.float32), (480, 640))  # exactly 0 is outside
    assert crop.shape == (0, 0)


def test_everything_inside_gives_the_whole_image():
    crop, offset = mask_crop_from_logits(np.full((256, 256), 2.0, np.float32), (480, 640))
    assert offset == (0, 0) and crop.shape == (480, 640) and crop.all()


@pytest.mark.filterwarnings("ignore::RuntimeWarning")
def test_extreme_and_non_finite_values_still_match():
    logits = blob([(50, 60), (51, 60)], inside=3e38, outside=-3e38)
    assert_same_as_full(logits, (700, 900))
    logits = blob([(50, 60)])
    logits[52, 60] = np.nan
    logits[10, 10] = -np.inf
    assert_same_as_full(logits, (700, 900))
    assert_same_as_full(logits, (700, 900), threshold=0.5)


def test_input_is_not_modified_and_may_be_read_only():
    logits = blob([(10, 10)])
    logits.setflags(write=False)
    before = logits.copy()
    mask_crop_from_logits(logits, (500, 500))
    np.testing.assert_array_equal(logits, before)


@pytest.mark.parametrize("bad", [dict(logits=np.zeros((3, 256, 256), np.float32)), dict(out_hw=(0, 5)),
                                 dict(margin_cells=-1)])
def test_rejects_bad_arguments(bad):
    kwargs = dict(logits=np.zeros((256, 256), np.float32), out_hw=(10, 10)) | bad
    with pytest.raises(ValueError):
        mask_crop_from_logits(**kwargs)


@settings(max_examples=150, deadline=None)
@given(
    in_h=st.integers(1, 40), in_w=st.integers(1, 40), out_h=st.integers(1, 150), out_w=st.integers(1, 150),
    seed=st.integers(0, 2**32 - 1), shift=st.floats(-3, 1), margin=st.integers(0, 2),
)
def test_property_exact_for_any_sizes(in_h, in_w, out_h, out_w, seed, shift, margin):
    logits = (np.random.default_rng(seed).normal(size=(in_h, in_w)) + shift).astype(np.float32)
    assert_same_as_full(logits, (out_h, out_w), margin_cells=margin)
