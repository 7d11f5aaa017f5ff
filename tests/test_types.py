"""Prompt values validate themselves; results are immutable and fixed-rank."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from sam_onnx import MAX_POINTS_PER_OBJECT, Box, Geometry, InvalidPromptError, MaskResult, Point, Prompts


@pytest.mark.parametrize("x", [math.nan, math.inf, -math.inf, "abc", None, [1, 2]])
def test_point_rejects_non_finite_or_non_numeric(x):
    with pytest.raises(InvalidPromptError, match="number"):
        Point(x, 5)


@pytest.mark.parametrize("label", [2, 3, -1, -10, 7, 0.5, True, "1"])
def test_point_accepts_only_labels_0_and_1(label):
    with pytest.raises(InvalidPromptError, match="label"):
        Point(1, 2, label)


def test_point_label_from_numpy_int_is_plain_int():
    p = Point(np.float32(3.5), np.int64(4), np.int64(0))
    assert (p.x, p.y, p.label) == (3.5, 4.0, 0) and type(p.label) is int and not p.positive


def test_points_must_lie_on_a_pixel():
    Point(0, 0).check_inside((10, 20))
    Point(19.9, 9.9).check_inside((10, 20))
    for x, y in [(-0.1, 0), (20, 5), (5, 10), (1e12, 1)]:
        with pytest.raises(InvalidPromptError, match="outside the 20×10 image"):
            Point(x, y).check_inside((10, 20))


def test_box_sorts_corners_given_in_any_order():
    assert Box(90, 80, 10, 20).xyxy == (10, 20, 90, 80)
    assert Box.from_corners((90, 20), (10, 80)).xyxy == (10, 20, 90, 80)


@pytest.mark.parametrize("corners", [(5, 5, 5, 9), (1, 7, 9, 7), (3, 3, 3, 3)])
def test_box_without_area_is_rejected(corners):
    with pytest.raises(InvalidPromptError, match="no area"):
        Box(*corners)


def test_box_may_touch_the_far_edges_but_not_cross_them():
    Box(0, 0, 640, 480).check_inside((480, 640))
    with pytest.raises(InvalidPromptError, match="outside"):
        Box(0, 0, 641, 480).check_inside((480, 640))
    with pytest.raises(InvalidPromptError, match="outside"):
        Box(-1, 0, 10, 10).check_inside((480, 640))


def test_prompts_cap_point_count():
    many = tuple(Point(i, i) for i in range(MAX_POINTS_PER_OBJECT))
    assert len(Prompts(many).points) == MAX_POINTS_PER_OBJECT
    with pytest.raises(InvalidPromptError, match=f"At most {MAX_POINTS_PER_OBJECT} points"):
        Prompts(many + (Point(0, 0),))


def test_prompts_helpers_return_new_values():
    empty = Prompts()
    one = empty.with_point(Point(1, 2))
    boxed = one.with_box(Box(0, 0, 5, 5))
    assert empty.is_empty and not one.is_empty and one.points == (Point(1, 2),)
    assert boxed.box == Box(0, 0, 5, 5) and one.box is None
    assert boxed.with_box(None) == one


def test_prompts_reject_foreign_objects():
    with pytest.raises(InvalidPromptError):
        Prompts(((1, 2),))
    with pytest.raises(InvalidPromptError):
        Prompts((), (0, 0, 1, 1))


def test_prompts_dict_round_trip():
    prompts = Prompts((Point(1.5, 2, 1), Point(3, 4, 0)), Box(0, 0, 10, 8))
    assert Prompts.from_dict(prompts.to_dict()) == prompts
    assert Prompts.from_dict({"points": [[1, 2]]}) == Prompts((Point(1, 2),))


@pytest.mark.parametrize("bad", [[], "x", {"points": "abc"}, {"points": [[1]]}, {"box": [1, 2, 3]},
                                 {"points": [[1, 2, 5]]}, {"box": [1, 1, 1, 1]}])
def test_prompts_from_malformed_dict(bad):
    with pytest.raises(InvalidPromptError):
        Prompts.from_dict(bad)


@given(st.floats(allow_nan=True, allow_infinity=True), st.floats(allow_nan=True, allow_infinity=True),
       st.integers(-20, 20), st.integers(1, 5000), st.integers(1, 5000))
def test_point_either_valid_inside_or_a_clear_error(x, y, label, h, w):
    try:
        p = Point(x, y, label)
        p.check_inside((h, w))
    except InvalidPromptError as exc:
        assert str(exc)
    else:
        assert math.isfinite(p.x) and 0 <= p.x < w and 0 <= p.y < h and p.label in (0, 1)


@given(st.lists(st.floats(-1e6, 1e6), min_size=4, max_size=4))
def test_box_sorting_is_idempotent(values):
    try:
        box = Box(*values)
    except InvalidPromptError:
        return
    assert Box(*box.xyxy) == box and box.x0 < box.x1 and box.y0 < box.y1


def _result(scores=(0.2, 0.9, 0.5)):
    logits = np.full((3, 256, 256), -5.0, np.float32)
    logits[1, :128, :] = 5.0  # candidate 1: the top half of the image
    return MaskResult(logits, np.array(scores, np.float32), 0.0, Geometry((100, 60)))


def test_result_masks_are_original_size_fixed_rank_and_read_only():
    res = _result()
    assert res.best_index == 1 and res.masks.shape == (3, 100, 60) and res.best_mask.shape == (100, 60)
    assert res.best_mask[:50].all() and not res.best_mask[50:].any()
    assert res.mask(1, hw=(10, 6)).shape == (10, 6)
    with pytest.raises(ValueError):
        res.low_res_logits[0, 0, 0] = 1.0
    with pytest.raises(ValueError):
        res.masks[0, 0, 0] = True
    with pytest.raises(IndexError):
        res.mask(3)


def test_result_object_score_is_a_probability():
    assert _result().object_score == pytest.approx(0.5)
    big = MaskResult(np.zeros((3, 256, 256), np.float32), np.zeros(3, np.float32), 1e9, Geometry((4, 4)))
    assert big.object_score == pytest.approx(1.0)
