"""Segment everything (sam_onnx.amg) with the analytic models, whose grid answers are known.

Every positive click of the analytic decoder yields three candidate masks: discs of
radius 48, 64 and 80 model units around it (ellipses in original pixels for a
non-square image), with predicted IoUs 0.80, 0.95 and 0.60, and logits
``radius - distance`` (slope 1 per model unit). So for a grid of points we know
which candidates pass each filter, what their stability scores are, which boxes
overlap, and where each mask must lie.
"""

from __future__ import annotations

import math
from dataclasses import replace

import numpy as np
import pytest

from sam_onnx import Point, Prompts, amg
from sam_onnx.export import decode_rle
from tests import analytic_models as am
from tests.conftest import make_rgb

RADII = (48.0, 64.0, 80.0)
"""Model-unit radius of candidates 0, 1, 2 (POS_RADIUS + MASK_OFFSETS)."""

# Filters off unless a test turns one on: every candidate that the IoU filter passes survives.
OPEN = amg.EverythingSettings(points_per_side=1, pred_iou_thresh=0.0, stability_score_thresh=0.0,
                              box_nms_thresh=1.0, min_mask_region_area=0)
ONLY_BEST = replace(OPEN, pred_iou_thresh=0.9)  # 0.95 passes, 0.80 and 0.60 do not: candidate 1 only


def _run(predictor, hw, settings, seed=0, **kwargs):
    return amg.generate(predictor, make_rgb(*hw, seed=seed), settings, **kwargs)


def _assert_disc(mask, point_xy, hw, candidate, offset_xy=(0, 0), full_hw=None):
    """``mask`` (full image) is the analytic disc of ``point_xy`` in a frame of size ``hw`` placed at ``offset_xy``."""
    full_hw = full_hw or hw
    local = (point_xy[0] - offset_xy[0], point_xy[1] - offset_xy[1])
    expected = np.zeros(full_hw, bool)
    band = np.ones(full_hw, bool)
    x0, y0 = offset_xy
    expected[y0:y0 + hw[0], x0:x0 + hw[1]] = am.expected_mask_original([local], [1], None, hw, candidate)
    band[y0:y0 + hw[0], x0:x0 + hw[1]] = am.boundary_band([local], [1], None, hw, candidate)
    outside = np.ones(full_hw, bool)
    outside[y0:y0 + hw[0], x0:x0 + hw[1]] = False
    assert not mask[outside].any(), "mask leaks out of its crop"
    inside = ~outside & ~band
    assert (mask[inside] == expected[inside]).all()
    assert expected[inside].any()


# ---------------------------------------------------------------- the grid
def test_grid_points_are_cell_centres_in_original_pixels_x_fastest():
    plan = amg.make_plan(amg.EverythingSettings(points_per_side=4), (300, 500))
    (crop,) = plan.crops
    xs, ys = (62.5, 187.5, 312.5, 437.5), (37.5, 112.5, 187.5, 262.5)
    np.testing.assert_allclose(crop.points_xy, [(x, y) for y in ys for x in xs])
    assert crop.box == (0, 0, 500, 300) and crop.layer == 0
    assert (plan.points, plan.decoder_calls, plan.encoder_runs) == (16, 2, 1)  # batches of 8


def test_every_grid_point_yields_its_disc(predictor):
    hw = (300, 500)
    masks = _run(predictor, hw, replace(ONLY_BEST, points_per_side=4))
    expected_points = {tuple(p) for p in amg.make_plan(replace(ONLY_BEST, points_per_side=4), hw).crops[0].points_xy}
    assert {m.point_xy for m in masks} == expected_points and len(masks) == 16
    for m in masks:
        assert m.candidate == 1 and m.predicted_iou == pytest.approx(0.95)
        assert m.crop_box == (0, 0, 500, 300)
        full = m.mask
        _assert_disc(full, m.point_xy, hw, 1)
        x, y, w, h = m.bbox
        assert m.area == int(full.sum()) == int(m.window.sum())
        rows, cols = np.flatnonzero(full.any(axis=1)), np.flatnonzero(full.any(axis=0))
        assert (x, y, w, h) == (cols[0], rows[0], cols[-1] - cols[0] + 1, rows[-1] - rows[0] + 1)


def test_mask_is_exactly_what_a_click_on_its_point_gives(predictor):
    """An everything mask turned into an interactive object starts as the same mask (the analytic discs have no
    holes or specks; tests/test_everything_app.py checks masks that have them, through the app's exports)."""
    hw = (300, 500)
    rgb = make_rgb(*hw)
    embedding = predictor.encode(rgb)
    settings = replace(OPEN, pred_iou_thresh=0.5, points_per_side=2)
    masks = amg.generate(predictor, rgb, settings, embedding=embedding)
    assert len(masks) == 12
    for m in masks:
        assert m.prompts == Prompts((Point(*m.point_xy),))
        result = predictor.decode(embedding, m.prompts)
        np.testing.assert_array_equal(m.mask, result.masks[m.candidate])


def test_embedding_alone_gives_the_same_masks_and_crops_need_the_image(predictor):
    hw = (200, 260)
    rgb = make_rgb(*hw)
    embedding = predictor.encode(rgb)
    settings = replace(ONLY_BEST, points_per_side=3)
    a = amg.generate(predictor, rgb, settings)
    b = amg.generate(predictor, embedding, settings)
    assert [(m.point_xy, m.bbox, m.area) for m in a] == [(m.point_xy, m.bbox, m.area) for m in b]
    with pytest.raises(ValueError, match="crop layers need the image"):
        amg.generate(predictor, embedding, replace(settings, crop_n_layers=1))
    with pytest.raises(ValueError, match="embedding is of a"):
        amg.generate(predictor, make_rgb(100, 100), settings, embedding=embedding)


# ---------------------------------------------------------------- filters
@pytest.mark.parametrize("threshold,expected", [
    (0.5, {0, 1, 2}), (0.7, {0, 1}), (0.85, {1}), (0.96, set()),
])
def test_predicted_iou_filter_keeps_candidates_scoring_above_the_threshold(predictor, threshold, expected):
    masks = _run(predictor, (256, 256), replace(OPEN, pred_iou_thresh=threshold))
    assert {m.candidate for m in masks} == expected
    assert all(m.predicted_iou > threshold for m in masks)


def test_candidates_per_point_keeps_the_best_scoring_ones(predictor):
    masks = _run(predictor, (256, 256), replace(OPEN, candidates_per_point=2))
    assert {m.candidate for m in masks} == {0, 1}  # scores 0.95 and 0.80 beat 0.60


def _lattice_stability(centre_model, radius, offset):
    """Stability of the analytic disc on the 256 x 256 cell-centre lattice (exact count)."""
    c = am.cell_centres()
    d = np.hypot(c[None, :] - centre_model[0], c[:, None] - centre_model[1])
    return np.count_nonzero(d < radius - offset) / np.count_nonzero(d < radius + offset)


def test_stability_score_is_the_disc_area_ratio_at_plus_minus_offset(predictor):
    offset = 4.0
    masks = _run(predictor, (512, 512), replace(OPEN, pred_iou_thresh=0.5, stability_score_offset=offset))
    by_candidate = {m.candidate: m for m in masks}
    assert set(by_candidate) == {0, 1, 2}
    centre = (256 * 2 + am.PIXEL_CENTRE_SHIFT,) * 2  # the one grid point, in the model frame
    for k, radius in enumerate(RADII):
        closed_form = ((radius - offset) / (radius + offset)) ** 2  # area ratio of two discs
        score = by_candidate[k].stability_score
        assert score == pytest.approx(_lattice_stability(centre, radius, offset), abs=1e-12)
        assert score == pytest.approx(closed_form, abs=0.01)


@pytest.mark.parametrize("threshold,expected", [(0.8, {2}), (0.75, {1, 2}), (0.7, {0, 1, 2}), (0.9, set())])
def test_stability_filter_drops_the_less_stable_smaller_discs(predictor, threshold, expected):
    # Closed form with offset 4: 0.716 (r=48), 0.779 (r=64), 0.819 (r=80).
    settings = replace(OPEN, pred_iou_thresh=0.5, stability_score_offset=4.0, stability_score_thresh=threshold)
    assert {m.candidate for m in _run(predictor, (512, 512), settings)} == expected


def test_min_region_area_removes_masks_made_only_of_small_regions(predictor):
    # Disc areas in low-res cells: r=12 cells ≈ 452, r=16 ≈ 804, r=20 ≈ 1257.
    settings = replace(OPEN, pred_iou_thresh=0.5)
    assert {m.candidate for m in _run(predictor, (512, 512), settings)} == {0, 1, 2}
    small_removed = _run(predictor, (512, 512), replace(settings, min_mask_region_area=1000))
    assert {m.candidate for m in small_removed} == {2}
    # A clean disc has no hole or speck: the default clean-up leaves it exactly as it was.
    cleaned = _run(predictor, (512, 512), replace(settings, min_mask_region_area=25))
    plain = _run(predictor, (512, 512), settings)
    for a, b in zip(cleaned, plain):
        np.testing.assert_array_equal(a.mask, b.mask)


# ---------------------------------------------------------------- NMS
def test_overlapping_neighbour_discs_are_suppressed_in_a_checkerboard(predictor):
    """16 x 16 points 64 model units apart, discs 128 wide: box IoU 0.33-0.4 with a
    horizontal or vertical neighbour, at most 0.19 with a diagonal one, 0 further away.
    With threshold 0.25 and equal scores (ties go to the earlier point, raster order),
    greedy NMS keeps exactly the points with even i + j."""
    settings = replace(ONLY_BEST, points_per_side=16)
    hw = (512, 512)
    assert len(_run(predictor, hw, settings)) == 256
    masks = _run(predictor, hw, replace(settings, box_nms_thresh=0.25))
    grid = amg.make_plan(settings, hw).crops[0].points_xy.reshape(16, 16, 2)
    expected = {tuple(grid[i, j]) for i in range(16) for j in range(16) if (i + j) % 2 == 0}
    assert {m.point_xy for m in masks} == expected


# ---------------------------------------------------------------- crop layers
def test_crop_boxes_follow_sam():
    boxes = amg.crop_boxes((256, 384), 1, 512 / 1500)
    # overlap = int(512/1500 * 256) = 87; crop = ceil((87 + 384) / 2) x ceil((87 + 256) / 2) = 236 x 172
    assert boxes == [((0, 0, 384, 256), 0), ((0, 0, 236, 172), 1), ((0, 85, 236, 256), 1),
                     ((149, 0, 384, 172), 1), ((149, 85, 384, 256), 1)]
    plan = amg.make_plan(amg.EverythingSettings(points_per_side=8, crop_n_layers=2,
                                               crop_n_points_downscale_factor=2), (256, 384))
    assert [len(c.points_xy) for c in plan.crops] == [64] + [16] * 4 + [4] * 16
    assert plan.encoder_runs == 21 and plan.decoder_calls == 8 + 4 * 2 + 16 * 1


def test_crop_masks_map_back_to_the_original_frame_and_crop_edge_masks_are_dropped(predictor):
    hw = (256, 384)
    settings = replace(ONLY_BEST, points_per_side=4, crop_n_layers=1, crop_nms_thresh=1.0)
    masks = _run(predictor, hw, settings)
    plan = amg.make_plan(settings, hw)
    from_crops = [m for m in masks if m.crop_box != (0, 0, 384, 256)]
    # Each 236 x 172 crop has discs of 14.75 x 10.75 px around 4 x 4 points; the row and the
    # column of points next to an inner crop side touch it (within 20 px) and are dropped.
    assert len(masks) - len(from_crops) == 16 and len(from_crops) == 4 * 9
    for crop in plan.crops[1:]:
        x0, y0, x1, y1 = crop.box
        rx, ry = (am.POS_RADIUS / am.MODEL_SIZE * side for side in (x1 - x0, y1 - y0))
        expected = set()
        for px, py in crop.points_xy:
            disc = (max(x0, px - rx), max(y0, py - ry), min(x1, px + rx), min(y1, py + ry))
            touches = [abs(d - c) < amg.CROP_EDGE_TOLERANCE_PX and abs(d - i) >= amg.CROP_EDGE_TOLERANCE_PX
                       for d, c, i in zip(disc, crop.box, (0, 0, 384, 256))]
            assert all(abs(abs(d - c) - amg.CROP_EDGE_TOLERANCE_PX) > 3 for d, c in zip(disc, crop.box))  # no near-tie
            if not any(touches):
                expected.add((px, py))
        found = {m.point_xy for m in from_crops if m.crop_box == crop.xywh}
        assert found == expected and len(expected) == 9
    for m in from_crops:
        x, y, w, h = m.crop_box
        _assert_disc(m.mask, m.point_xy, (h, w), 1, offset_xy=(x, y), full_hw=hw)


@pytest.mark.parametrize("crop_nms_thresh,expected_full,expected_crop", [(0.2, 0, 4), (0.3, 4, 4)])
def test_across_crops_nms_prefers_the_smaller_crops_mask(predictor, crop_nms_thresh, expected_full, expected_crop):
    """With no overlap, each quadrant crop's single point is exactly a 2 x 2 grid point of the
    whole image; its disc is half as wide, so the two boxes are concentric with IoU 1/4."""
    hw = (320, 480)
    settings = replace(ONLY_BEST, points_per_side=2, crop_n_layers=1, crop_overlap_ratio=0.0,
                       crop_n_points_downscale_factor=2, crop_nms_thresh=crop_nms_thresh)
    masks = _run(predictor, hw, settings)
    full = [m for m in masks if m.crop_box == (0, 0, 480, 320)]
    crops = [m for m in masks if m.crop_box != (0, 0, 480, 320)]
    assert (len(full), len(crops)) == (expected_full, expected_crop)
    assert {m.point_xy for m in crops} == {(120.0, 80.0), (360.0, 80.0), (120.0, 240.0), (360.0, 240.0)}
    assert all(m.crop_box[2:] == (240, 160) for m in crops)


# ---------------------------------------------------------------- progress, cancel, estimate
def test_progress_reports_every_decoder_call_over_all_crops(predictor):
    settings = replace(ONLY_BEST, points_per_side=4, crop_n_layers=1, batch_size=5)
    calls = []
    _run(predictor, (120, 160), settings, progress=lambda done, total: calls.append((done, total)))
    total = amg.make_plan(settings, (120, 160)).decoder_calls
    assert total == 4 + 4 * 4  # 16 points in calls of 5, for the image and 4 crops
    assert calls == [(i, total) for i in range(total + 1)]


def test_cancel_stops_before_the_next_call_and_returns_nothing(predictor):
    settings = replace(ONLY_BEST, points_per_side=4, batch_size=4)
    calls = []
    with pytest.raises(amg.Cancelled) as info:
        _run(predictor, (120, 160), settings, progress=lambda done, total: calls.append(done),
             cancel=lambda: len(calls) > 2)
    assert (info.value.done_calls, info.value.total_calls) == (2, 4)
    assert calls == [0, 1, 2]
    with pytest.raises(amg.Cancelled) as info:
        _run(predictor, (120, 160), settings, cancel=lambda: True)
    assert info.value.done_calls == 0


def test_estimate_adds_encoder_runs_decoder_calls_and_screening():
    settings = amg.PRESETS["balanced"]
    plan = amg.make_plan(settings, (3000, 4000))
    assert (plan.points, plan.decoder_calls, plan.encoder_runs) == (256, 32, 1)
    overhead = 256 * amg.OVERHEAD_SECONDS_PER_POINT
    assert amg.estimate_seconds(plan, 0.2, 2.0) == pytest.approx(2.0 + 32 * 0.2 + overhead)
    assert amg.estimate_seconds(plan, 0.2, 2.0, image_encoded=True) == pytest.approx(32 * 0.2 + overhead)
    estimates = [amg.estimate_seconds(amg.make_plan(amg.PRESETS[name], (3000, 4000)), 0.2, 2.0, image_encoded=True)
                 for name in ("fast", "balanced", "thorough")]
    assert estimates == sorted(estimates) and estimates[0] > 0


def test_estimate_is_close_to_the_measured_time(predictor):
    """Calibrate speeds on one call, then compare the estimate with a real run (generous bounds:
    the analytic models are fast, so fixed overheads weigh more). Times are the process's CPU time, which
    equals wall time on an idle machine for this single-threaded predictor but, unlike it, does not
    depend on what else the machine runs while the three phases are measured."""
    import time

    hw = (240, 320)
    rgb = make_rgb(*hw)
    settings = replace(amg.PRESETS["fast"], crop_n_layers=1)
    t0 = time.process_time()
    embedding = predictor.encode(rgb)
    encode_s = time.process_time() - t0
    objects = [Prompts((Point(10.0 + i, 20.0),)) for i in range(settings.batch_size)]
    predictor.decode_many(embedding, objects, max_batch=settings.batch_size)
    t0 = time.process_time()
    predictor.decode_many(embedding, objects, max_batch=settings.batch_size)
    call_s = time.process_time() - t0
    estimate = amg.estimate_seconds(amg.make_plan(settings, hw), call_s, encode_s, overhead_seconds_per_point=0)
    t0 = time.process_time()
    amg.generate(predictor, rgb, settings)
    measured = time.process_time() - t0
    assert 0.3 * measured < estimate < 3 * measured


# ---------------------------------------------------------------- results as objects and files
def test_label_map_draws_large_masks_first_so_small_ones_stay_visible(predictor):
    hw = (256, 256)
    masks = _run(predictor, hw, replace(OPEN, pred_iou_thresh=0.5))
    assert [m.candidate for m in masks] == [2, 1, 0]  # largest first
    labels = amg.label_map(masks, hw)
    assert labels.dtype == np.uint16 and labels.shape == hw
    assert labels[128, 128] == 3  # the smallest disc is on top in the middle
    np.testing.assert_array_equal(labels == 3, masks[2].mask)
    np.testing.assert_array_equal(labels >= 2, masks[1].mask)
    np.testing.assert_array_equal(labels >= 1, masks[0].mask)


def test_record_is_sam2_coco_rle_style(predictor):
    (m,) = _run(predictor, (300, 500), ONLY_BEST)
    record = m.to_record()
    assert set(record) >= {"segmentation", "area", "bbox", "predicted_iou", "point_coords", "stability_score",
                           "crop_box"}
    assert record["segmentation"]["size"] == [300, 500]
    np.testing.assert_array_equal(decode_rle(record["segmentation"]), m.mask)
    assert record["area"] == m.area and record["bbox"] == list(m.bbox)
    assert record["point_coords"] == [[250.0, 150.0]] and record["crop_box"] == [0, 0, 500, 300]


def test_results_are_frozen(predictor):
    (m,) = _run(predictor, (100, 100), ONLY_BEST)
    with pytest.raises(AttributeError):
        m.area = 3
    with pytest.raises(ValueError):
        m.window[0, 0] = True


@pytest.mark.parametrize("bad", [dict(points_per_side=0), dict(batch_size=0), dict(pred_iou_thresh=1.5),
                                 dict(candidates_per_point=4), dict(stability_score_offset=-1.0),
                                 dict(crop_n_layers=-1), dict(box_nms_thresh=math.nan)])
def test_settings_reject_nonsense(bad):
    with pytest.raises(ValueError):
        amg.EverythingSettings(**bad)


def test_presets_are_ordered_by_work():
    plans = [amg.make_plan(amg.PRESETS[name], (3000, 4000)) for name in ("fast", "balanced", "thorough")]
    assert [p.points for p in plans] == [64, 256, 576 + 4 * 144]
    assert [p.encoder_runs for p in plans] == [1, 1, 5]
