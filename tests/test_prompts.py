"""Prompts -> decoder feeds: layouts, padding point, grouping of objects into calls."""

from __future__ import annotations

import numpy as np
import pytest

from sam_onnx import Box, Geometry, InvalidPromptError, Point, Prompts
from sam_onnx.prompts import LABEL_NOT_A_POINT, encode_prompts

GEO = Geometry((300, 500))  # 300 high, 500 wide: x * 1024/500, y * 1024/300


def _one(prompts, geometry=GEO):
    (batch,) = encode_prompts([prompts], geometry)
    return batch.feeds


def test_points_only_get_the_padding_point_and_an_empty_box_tensor():
    feeds = _one(Prompts((Point(250, 150), Point(100, 30, 0))))
    np.testing.assert_allclose(feeds["input_points"], [[[[512, 512], [204.8, 102.4], [0, 0]]]], rtol=1e-6)
    assert feeds["input_labels"].tolist() == [[[1, 0, LABEL_NOT_A_POINT]]]
    assert feeds["input_boxes"].shape == (1, 0, 4)
    assert feeds["input_points"].dtype == np.float32 and feeds["input_labels"].dtype == np.int64


def test_box_only_layout():
    feeds = _one(Prompts(box=Box(400, 240, 100, 30)))
    assert feeds["input_points"].shape == (1, 1, 0, 2)
    assert feeds["input_labels"].shape == (1, 1, 0) and feeds["input_labels"].dtype == np.int64
    np.testing.assert_allclose(feeds["input_boxes"], [[[204.8, 102.4, 819.2, 819.2]]], rtol=1e-6)


def test_box_with_points_has_no_padding_point():
    feeds = _one(Prompts((Point(250, 150),), Box(0, 0, 500, 300)))
    assert feeds["input_points"].shape == (1, 1, 1, 2) and feeds["input_labels"].tolist() == [[[1]]]
    np.testing.assert_allclose(feeds["input_boxes"], [[[0, 0, 1024, 1024]]])


def test_objects_are_grouped_by_layout_and_point_count():
    objects = [
        Prompts((Point(1, 1),)),                       # points, 1
        Prompts(box=Box(0, 0, 10, 10)),                # box
        Prompts((Point(2, 2),)),                       # points, 1
        Prompts((Point(3, 3), Point(4, 4, 0))),        # points, 2
        Prompts(box=Box(5, 5, 20, 30)),                # box
        Prompts((Point(6, 6),), Box(0, 0, 50, 50)),    # box+points, 1
    ]
    batches = encode_prompts(objects, GEO)
    by_indices = {b.object_indices: b.feeds for b in batches}
    assert sorted(by_indices) == [(0, 2), (1, 4), (3,), (5,)]
    assert by_indices[(0, 2)]["input_points"].shape == (1, 2, 2, 2)
    assert by_indices[(1, 4)]["input_boxes"].shape == (1, 2, 4)
    assert by_indices[(1, 4)]["input_labels"].shape == (1, 2, 0)
    assert by_indices[(3,)]["input_labels"].tolist() == [[[1, 0, -1]]]
    assert by_indices[(5,)]["input_boxes"].shape == (1, 1, 4)


def test_max_batch_splits_large_groups():
    objects = [Prompts((Point(i, i),)) for i in range(10)]
    batches = encode_prompts(objects, GEO, max_batch=4)
    assert [b.object_indices for b in batches] == [(0, 1, 2, 3), (4, 5, 6, 7), (8, 9)]
    assert sum(b.feeds["input_points"].shape[1] for b in batches) == 10


def test_empty_and_outside_prompts_are_rejected_with_the_object_number():
    with pytest.raises(InvalidPromptError, match="Add a point or a box"):
        encode_prompts([Prompts()], GEO)
    with pytest.raises(InvalidPromptError, match="Object 2: Point .* outside the 500×300 image"):
        encode_prompts([Prompts((Point(1, 1),)), Prompts((Point(500, 1),))], GEO)
    with pytest.raises(InvalidPromptError, match="outside"):
        encode_prompts([Prompts(box=Box(0, 0, 10, 301))], GEO)


def test_feeds_do_not_alias_between_calls():
    a = _one(Prompts((Point(1, 1),)))
    b = _one(Prompts((Point(2, 2),)))
    assert not np.shares_memory(a["input_points"], b["input_points"])
