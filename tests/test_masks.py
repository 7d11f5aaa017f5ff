"""Mask utilities (sam_onnx.masks): connected components, holes and specks, stability, box NMS."""

from __future__ import annotations

import numpy as np
import pytest

from sam_onnx import masks


def _flood_labels(mask, connectivity):
    """Reference labelling by breadth-first flood fill in raster order (slow, obvious)."""
    h, w = mask.shape
    labels = np.zeros((h, w), np.int32)
    steps = [(-1, 0), (1, 0), (0, -1), (0, 1)]
    if connectivity == 8:
        steps += [(-1, -1), (-1, 1), (1, -1), (1, 1)]
    current = 0
    for y in range(h):
        for x in range(w):
            if mask[y, x] and not labels[y, x]:
                current += 1
                labels[y, x] = current
                queue = [(y, x)]
                while queue:
                    cy, cx = queue.pop()
                    for dy, dx in steps:
                        ny, nx = cy + dy, cx + dx
                        if 0 <= ny < h and 0 <= nx < w and mask[ny, nx] and not labels[ny, nx]:
                            labels[ny, nx] = current
                            queue.append((ny, nx))
    return labels


def test_components_diagonal_touch_counts_only_with_8_connectivity():
    mask = np.array([[1, 0, 0],
                     [0, 1, 0],
                     [0, 0, 0]], bool)
    labels8, areas8 = masks.label_components(mask)
    labels4, areas4 = masks.label_components(mask, connectivity=4)
    assert labels8.max() == 1 and areas8.tolist() == [7, 2]
    assert labels4.tolist() == [[1, 0, 0], [0, 2, 0], [0, 0, 0]] and areas4.tolist() == [7, 1, 1]


def test_components_merge_branches_that_join_lower_down():
    # A "U" and a "W": runs that start separate and meet in a later row are one component.
    mask = np.array([[1, 0, 1, 0, 1, 0, 1],
                     [1, 0, 1, 0, 1, 0, 1],
                     [1, 1, 1, 0, 1, 1, 1],
                     [0, 0, 0, 0, 0, 1, 0]], bool)
    labels, areas = masks.label_components(mask, connectivity=4)
    assert labels.max() == 2
    assert areas.tolist() == [28 - 15, 7, 8]  # U: 3 + 3 + 1 cells; W: 3 + 3 + 1 + 1
    assert (labels[mask] > 0).all() and (labels[~mask] == 0).all()


def test_components_of_a_ring_and_its_hole():
    mask = np.zeros((7, 7), bool)
    mask[1:6, 1:6] = True
    mask[3, 3] = False
    labels, areas = masks.label_components(mask)
    assert labels.max() == 1 and areas[1] == 24
    holes, hole_areas = masks.label_components(~mask, connectivity=4)
    assert holes.max() == 2 and sorted(hole_areas[1:].tolist()) == [1, 24]  # the hole and the outside


def test_stacked_masks_never_connect_to_each_other():
    stack = np.zeros((2, 3, 3), bool)
    stack[0, 2, :] = True  # last row of mask 0
    stack[1, 0, :] = True  # first row of mask 1
    labels, areas = masks.label_components(stack)
    assert labels.max() == 2 and areas[1:].tolist() == [3, 3]
    assert set(np.unique(labels[0])) == {0, 1} and set(np.unique(labels[1])) == {0, 2}


@pytest.mark.parametrize("connectivity", [4, 8])
@pytest.mark.parametrize("seed", range(6))
def test_components_agree_with_a_flood_fill(connectivity, seed):
    rng = np.random.default_rng(seed)
    mask = rng.random((23, 31)) < (0.3 + 0.08 * seed)
    labels, areas = masks.label_components(mask, connectivity=connectivity)
    expected = _flood_labels(mask, connectivity)
    np.testing.assert_array_equal(labels, expected)  # same numbering: raster order of first pixel
    np.testing.assert_array_equal(areas, np.bincount(expected.ravel(), minlength=expected.max() + 1))


def test_empty_and_full_masks():
    labels, areas = masks.label_components(np.zeros((4, 5), bool))
    assert labels.max() == 0 and areas.tolist() == [20]
    labels, areas = masks.label_components(np.ones((4, 5), bool))
    assert (labels == 1).all() and areas.tolist() == [0, 20]


def test_small_holes_are_filled_and_specks_removed_on_the_logits():
    logits = np.full((20, 20), -5.0, np.float32)
    logits[2:12, 2:12] = 5.0
    logits[5:7, 5:7] = -5.0    # a 2 x 2 hole (4 cells)
    logits[16, 16] = 3.0       # a 1-cell speck
    logits[15:18, 2:5] = 2.0   # a 3 x 3 blob (9 cells)
    out = masks.remove_small_regions(logits, 4)
    assert (out[5:7, 5:7] == masks.HOLE_FILL_LOGIT).all()
    assert out[16, 16] == masks.SPECK_LOGIT
    assert (out[15:18, 2:5] == 2.0).all()                    # 9 cells > 4: kept
    untouched = np.ones((20, 20), bool)
    untouched[5:7, 5:7] = untouched[16, 16] = False
    np.testing.assert_array_equal(out[untouched], logits[untouched])
    kept_hole = masks.remove_small_regions(logits, 3)           # the hole has 4 > 3 cells
    assert (kept_hole[5:7, 5:7] == -5.0).all() and kept_hole[16, 16] == masks.SPECK_LOGIT
    assert (masks.remove_small_regions(logits, 9)[15:18, 2:5] == masks.SPECK_LOGIT).all()  # "at most": 9 <= 9
    np.testing.assert_array_equal(masks.remove_small_regions(logits, 0), logits)
    assert logits[16, 16] == 3.0  # the input is not modified


def test_specks_are_measured_on_the_logits_as_given_like_sam2():
    """SAM 2 takes both component maps from the original mask: a 22-cell speck with a 2-cell hole is a speck
    at max_area 23, although filling its hole first would make it 24 cells and save it."""
    logits = np.full((16, 16), -5.0, np.float32)
    logits[3:8, 3:8] = 5.0     # 25 cells, less a corner (outer background) and a 2-cell hole: 22 cells
    logits[3, 3] = -5.0
    logits[5, 5] = logits[5, 6] = -5.0
    assert np.count_nonzero(logits > 0) == 22
    logits[10, 10:12] = 5.0    # 2 more cells, 8-connected to nothing: a separate speck
    out = masks.remove_small_regions(logits, 23)
    blob = np.zeros((16, 16), bool)
    blob[3:8, 3:8] = True
    blob[3, 3] = blob[5, 5] = blob[5, 6] = False
    assert (out[blob] == masks.SPECK_LOGIT).all(), "the speck was measured after its hole was filled"
    assert out[5, 5] == out[5, 6] == masks.HOLE_FILL_LOGIT  # SAM 2 fills the hole all the same
    assert (out[10, 10:12] == masks.SPECK_LOGIT).all()


def test_a_mask_of_only_specks_becomes_empty_and_is_dropped():
    logits = np.full((1, 16, 16), -4.0, np.float32)
    logits[0, 3, 3] = logits[0, 9, 9] = 2.0
    out = masks.remove_small_regions(logits, 2)
    assert not (out > 0).any()
    assert masks.stability_scores(out, 1.0).tolist() == [0.0]



def test_box_nms_keeps_the_best_and_drops_overlaps_above_the_threshold():
    boxes = np.array([[0, 0, 10, 10], [1, 0, 11, 10], [20, 20, 30, 30], [0, 0, 10, 10.0]])
    # IoU(0, 1) = 9/11 = 0.818; box 3 equals box 0.
    np.testing.assert_array_equal(masks.box_nms(boxes, [0.5, 0.9, 0.1, 0.5], 0.7), [1, 2])
    np.testing.assert_array_equal(masks.box_nms(boxes, [0.5, 0.9, 0.1, 0.5], 0.85), [1, 0, 2])  # 0 and 3 tie: 0 first
    np.testing.assert_array_equal(masks.box_nms(boxes, [0.5, 0.5, 0.5, 0.5], 1.0), [0, 1, 2, 3])
    assert masks.box_nms(np.zeros((0, 4)), [], 0.5).size == 0
