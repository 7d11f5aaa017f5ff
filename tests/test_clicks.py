"""The click simulator and its metrics (sam_onnx.clicks); the benchmark around it: tests/test_bench_clicks.py.

The simulator is RITM's: first click at the deepest interior pixel, then at the deepest pixel of the larger
error (positive for a miss, negative for an extra), every click kept, up to 20; NoC counts a miss as 20.
"""

from __future__ import annotations

import numpy as np
import pytest

from sam_onnx import clicks
from sam_onnx.clicks import Click, Trial, iou, next_click, simulate, summarise


def disc(hw, cx, cy, r):
    yy, xx = np.mgrid[0:hw[0], 0:hw[1]]
    return (xx - cx) ** 2 + (yy - cy) ** 2 <= r * r


def rect(hw, x0, y0, x1, y1):
    """Pixels x0..x1-1, y0..y1-1."""
    mask = np.zeros(hw, bool)
    mask[y0:y1, x0:x1] = True
    return mask


HW = (120, 160)


# ---------------------------------------------------------------------------- where the clicks go
def test_first_click_is_the_deepest_interior_pixel():
    assert next_click(disc(HW, 70, 50, 20), None) == Click(70, 50, True)
    # an odd-sized square has one deepest pixel; a long rectangle a row of them, the first one wins
    assert next_click(rect(HW, 10, 20, 21, 31), None) == Click(15, 25, True)
    assert next_click(rect(HW, 10, 20, 41, 31), None) == Click(15, 25, True)


def test_the_image_border_counts_as_boundary():
    """A band along the top edge: its deepest pixel is in the middle of the band, not on the edge row."""
    band = rect(HW, 0, 0, 160, 9)  # rows 0..8
    click = next_click(band, None)
    assert click.y == 4 and click.positive
    # pixels at depth 5 in row 4 start at x = 4 (distance 5 to the left border); the first in row-major order
    assert click.x == 4


def test_ties_go_to_the_first_pixel_in_row_major_order():
    two = disc(HW, 40, 60, 15) | disc(HW, 120, 60, 15)  # same row, same depth
    assert next_click(two, None) == Click(40, 60, True)
    stacked = disc(HW, 120, 30, 15) | disc(HW, 40, 90, 15)
    assert next_click(stacked, None) == Click(120, 30, True)


def test_a_missed_region_gets_a_positive_click_an_extra_one_a_negative_click():
    gt = disc(HW, 50, 60, 25)
    missed = gt & ~disc(HW, 62, 60, 6)  # a hole of radius 6 missing, nothing extra
    assert next_click(gt, missed) == Click(62, 60, True)
    extra = gt | disc(HW, 120, 30, 10)  # everything found plus a blob of radius 10
    assert next_click(gt, extra) == Click(120, 30, False)


def test_the_deeper_error_wins_and_a_tie_goes_to_the_extra_region():
    gt = disc(HW, 40, 60, 25)
    pred = (gt & ~disc(HW, 40, 60, 8)) | disc(HW, 120, 60, 12)  # missed radius 8, extra radius 12
    assert next_click(gt, pred) == Click(120, 60, False)
    pred = (gt & ~disc(HW, 40, 60, 12)) | disc(HW, 120, 60, 8)
    assert next_click(gt, pred) == Click(40, 60, True)
    tie = (gt & ~disc(HW, 40, 60, 10)) | disc(HW, 120, 60, 10)
    assert next_click(gt, tie) == Click(120, 60, False)


def test_a_clicked_pixel_is_never_clicked_again_and_a_perfect_mask_gets_no_click():
    gt = disc(HW, 70, 50, 20)
    first = next_click(gt, None)
    second = next_click(gt, None, clicked=[first])
    assert second != first and second.positive
    assert abs(second.x - first.x) + abs(second.y - first.y) == 1  # the next deepest, right beside it
    assert next_click(gt, gt) is None


def test_ignored_pixels_count_nowhere_and_are_never_clicked():
    gt = disc(HW, 70, 50, 20)
    band = disc(HW, 70, 50, 23) & ~disc(HW, 70, 50, 17)  # the uncertain band around the outline
    pred = disc(HW, 70, 50, 22)  # 2 px too large: all of the extra is inside the band
    assert iou(gt, pred, ignore=band) == 1.0
    assert iou(gt, pred) < 1.0
    assert next_click(gt, pred, ignore=band) is None
    # an object that is nothing but the band cannot be clicked in it
    inner = gt & ~band
    click = next_click(gt, None, ignore=band)
    assert inner[click.y, click.x]


def test_bad_masks_are_refused_with_a_message():
    gt = disc(HW, 70, 50, 20)
    with pytest.raises(ValueError, match="bool"):
        next_click(gt.astype(np.uint8), None)
    with pytest.raises(ValueError, match="shape"):
        next_click(gt, gt[:-1])
    with pytest.raises(ValueError, match="empty"):
        simulate(np.zeros(HW, bool), lambda c: np.zeros(HW, bool))
    with pytest.raises(ValueError, match="expected bool"):
        simulate(gt, lambda c: np.zeros((3, 3), bool))


# ---------------------------------------------------------------------------- sessions and metrics
def right_after(gt: np.ndarray, n: int, seen: list | None = None):
    """A model that returns the true mask from the n-th click on, and a wrong one before."""
    wrong = np.zeros_like(gt)

    def segment(so_far):
        if seen is not None:
            seen.append(tuple(so_far))
        return gt.copy() if len(so_far) >= n else wrong
    return segment


@pytest.mark.parametrize("n", [1, 2, 3, 7, 20])
def test_noc_is_n_for_a_model_that_is_right_after_n_clicks(n):
    gt = disc(HW, 70, 50, 20)
    trial = simulate(gt, right_after(gt, n))
    assert trial.noc(0.85) == trial.noc(0.90) == n
    assert trial.ious[-1] == 1.0 and trial.ended == "target" and len(trial.clicks) == n
    assert trial.reached(0.9)


def test_a_model_that_never_gets_there_counts_as_the_budget_and_as_missed():
    gt = disc(HW, 70, 50, 20)
    trial = simulate(gt, right_after(gt, 21))
    assert len(trial.clicks) == clicks.MAX_CLICKS == 20 and trial.ended == "budget"
    assert trial.noc(0.85) == 20 and not trial.reached(0.85)
    assert len(set(trial.clicks)) == 20  # 20 different pixels
    summary = summarise([trial, simulate(gt, right_after(gt, 2))])
    assert summary.noc == {0.85: 11.0, 0.90: 11.0} and summary.missed == {0.85: 1, 0.90: 1}
    assert summary.miou[1] == 0.0 and summary.miou[3] == 0.5


def test_every_click_is_kept_and_sent_in_order():
    gt = disc(HW, 70, 50, 20)
    seen: list = []
    simulate(gt, right_after(gt, 4), targets=())
    simulate(gt, right_after(gt, 4, seen))
    assert [len(s) for s in seen] == [1, 2, 3, 4]
    for shorter, longer in zip(seen, seen[1:]):
        assert longer[:len(shorter)] == shorter


def test_a_model_off_by_one_pixel_is_scored_exactly():
    """A 40 x 30 box predicted one pixel to the right: 39 x 30 overlap, 41 x 30 union."""
    gt = rect(HW, 20, 30, 60, 60)
    shifted = rect(HW, 21, 30, 61, 60)
    assert iou(gt, shifted) == pytest.approx(39 / 41, abs=1e-12)
    trial = simulate(gt, lambda so_far: shifted)
    assert trial.ious[0] == pytest.approx(39 / 41) and trial.noc(0.90) == 1 and trial.noc(0.85) == 1
    # a 10 x 6 box one pixel off reaches neither target (9/11 = 0.82); the next click lands in a 1-px error
    # strip, on the extra side (both strips are 1 px deep: the tie goes to the extra region)
    small, small_shifted = rect(HW, 20, 30, 30, 36), rect(HW, 21, 30, 31, 36)
    trial = simulate(small, lambda so_far: small_shifted)
    assert trial.ious[0] == pytest.approx(9 / 11) and trial.noc(0.85) == 20
    second = trial.clicks[1]
    assert (second.x, second.positive) == (30, False) and 30 <= second.y < 36


def test_iou_after_k_repeats_the_last_when_the_session_stopped():
    trial = Trial((Click(1, 1, True), Click(2, 2, True)), (0.5, 0.95), ended="target")
    assert [trial.iou_at(k) for k in (1, 2, 3, 5)] == [0.5, 0.95, 0.95, 0.95]
    assert summarise([trial]).to_dict()["mIoU@5"] == 0.95
    with pytest.raises(ValueError):
        trial.iou_at(0)
    with pytest.raises(ValueError):
        summarise([])


def test_whole_budget_when_asked():
    gt = disc(HW, 70, 50, 20)
    trial = simulate(gt, right_after(gt, 1), targets=(), max_clicks=6)
    assert trial.ended in ("perfect", "budget") and trial.ious[0] == 1.0
    # a perfect mask leaves nothing to click: the session ends there
    assert trial.ended == "perfect" and len(trial.clicks) == 1


def test_depth_on_the_bounding_box_equals_depth_on_the_whole_image():
    """_depth computes the distance transform on the region's bounding box only; it must equal the transform of
    the whole padded image, including regions touching the border and several separate parts."""
    from scipy.ndimage import distance_transform_edt

    rng = np.random.default_rng(3)
    for _ in range(20):
        region = np.zeros(HW, bool)
        for _ in range(rng.integers(1, 4)):
            x0, y0 = rng.integers(-10, 150), rng.integers(-10, 110)
            region[max(0, y0):y0 + rng.integers(1, 40), max(0, x0):x0 + rng.integers(1, 60)] = True
        whole = distance_transform_edt(np.pad(region, 1))[1:-1, 1:-1]
        assert np.array_equal(clicks._depth(region), whole)
    assert not clicks._depth(np.zeros(HW, bool)).any()
