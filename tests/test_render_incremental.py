"""The service draws an edit incrementally (cached background + the selected object) with the same pixels as a
drawing from scratch, and an edit's work follows what changed, not how many objects there are."""

from __future__ import annotations

import random

import numpy as np
import pytest
from PIL import Image

from sam_demo import view
from sam_demo.editor import Editor
from sam_demo.overlay import MaskLayer, color_for, render_overlay
from sam_demo.service import SegmentationService
from sam_demo.view import ViewOptions
from sam_onnx.types import Box, Point, Prompts
from tests.conftest import make_rgb

HW = (180, 260)
DISPLAY_SIDE = 128
"""Shown at 89×128: the incremental path maps prompts and masks to a scaled, non-square display frame."""


@pytest.fixture
def opened(predictor, tmp_path):
    service = SegmentationService(predictor, image_cache_mb=64, display_max_side=DISPLAY_SIDE)
    path = tmp_path / "photo.png"
    Image.fromarray(make_rgb(*HW, seed=4)).save(path)
    record, _ = service.open_image(str(path))
    assert record.frame.display_hw != HW  # a scaled frame: display pixels are not original pixels
    return service, record


def _reference(predictor, record, editor, options) -> np.ndarray:
    """From scratch with a fresh service: no cached background, results or scores."""
    fresh = SegmentationService(predictor, image_cache_mb=64, display_max_side=DISPLAY_SIDE)
    cached = fresh.cached_image(record)
    active = [o for o in editor.objects if not o.prompts.is_empty]
    results = dict(zip((o.id for o in active), fresh.results(record, [o.prompts for o in active])))
    return view.draw(cached.display_rgb, cached.thumbnail_rgb, record.frame, editor, results, options).overlay


def _random_edit(editor: Editor, rng: random.Random) -> Editor:
    h, w = HW
    kind = rng.choice(["point"] * 4 + ["box", "new", "new", "select", "select", "hide", "undo", "choose", "delete"])
    if kind == "point":
        return editor.add_point(rng.uniform(0, w - 1), rng.uniform(0, h - 1), rng.choice([0, 1, 1]))
    if kind == "box":
        editor = editor.box_corner(rng.uniform(0, w / 2), rng.uniform(0, h / 2))
        if rng.random() < 0.7:  # sometimes the box is left half-drawn (a pending corner is shown)
            editor = editor.box_corner(rng.uniform(w / 2 + 1, w - 1), rng.uniform(h / 2 + 1, h - 1))
        return editor
    if kind == "new" and len(editor.objects) < 12:
        return editor.add_object()
    if kind == "select" and editor.objects:
        return editor.select(rng.choice(editor.objects).id)
    if kind == "hide" and editor.selected is not None:
        return editor.set_visible(editor.selected.id, not editor.is_visible(editor.selected.id))
    if kind == "undo":
        return editor.undo()
    if kind == "choose" and editor.selected is not None:
        return editor.choose_candidate(editor.selected.id, rng.choice([None, 0, 1, 2]))
    if kind == "delete" and len(editor.objects) > 3 and editor.selected is not None:
        return editor.delete(editor.selected.id)
    return editor


def test_incremental_drawing_equals_drawing_from_scratch(opened, predictor):
    service, record = opened
    rng = random.Random(8)  # a walk that draws up to 6 objects at once
    editor = Editor.start(record.original_hw)
    options = [ViewOptions(), ViewOptions(0.8, False), ViewOptions(0.0, True)]
    most = 0
    for step in range(60):
        editor = _random_edit(editor, rng)
        most = max(most, sum(not o.prompts.is_empty and editor.is_visible(o.id) for o in editor.objects))
        option = options[step % len(options)]
        shown = service.render(record, editor, option).overlay
        if step % 3 == 0 or step > 50:
            np.testing.assert_array_equal(shown, _reference(predictor, record, editor, option), err_msg=f"step {step}")
    assert most >= 4  # the walk drew several objects at once


def test_background_in_groups_equals_render_overlay_of_all_objects(opened):
    """draw_background's phases (fills, outlines, boxes, points; a few objects a call) give render_overlay's pixels."""
    service, record = opened
    h, w = HW
    rng = np.random.default_rng(3)
    prompts = [Prompts(tuple(Point(*rng.uniform((0, 0), (w - 1, h - 1)), int(rng.integers(0, 2))) for _ in range(3)))
               for _ in range(2 * view.DRAW_GROUP + 3)]
    prompts[4] = prompts[4].with_box(Box(10, 10, 120, 90))
    editor = Editor.start(record.original_hw).add_objects(prompts).add_object()  # the empty last one is selected
    objects = view.background_objects(editor)
    assert len(objects) == len(prompts)
    cached = service.cached_image(record)
    results = dict(zip((o.id for o in objects), service.results(record, [o.prompts for o in objects])))
    for options in (ViewOptions(), ViewOptions(0.3, False)):
        drawn = view.draw_background(cached.display_rgb, record.frame, objects, results, options)
        layers = [view.mask_layer(o, results[o.id], record.frame, selected=False) for o in objects]
        expected = render_overlay(cached.display_rgb, layers, opacity=options.opacity, contour=options.contour)
        np.testing.assert_array_equal(drawn.full, expected)
        fills = render_overlay(cached.display_rgb, [MaskLayer(lay.mask, lay.color, offset=lay.offset, hw=lay.hw)
                                                    for lay in layers], opacity=options.opacity, contour=False)
        np.testing.assert_array_equal(drawn.fills, fills)
    assert color_for(0) != color_for(1)


def test_a_click_on_one_of_many_objects_decodes_and_draws_one(opened, monkeypatch):
    """With 60 objects drawn, a click decodes one object and reuses the drawn background (the work of an edit does
    not grow with the number of objects)."""
    service, record = opened
    h, w = HW
    rng = np.random.default_rng(5)
    prompts = [Prompts(tuple(Point(*rng.uniform((0, 0), (w - 1, h - 1))) for _ in range(4))) for _ in range(59)]
    editor = Editor.start(record.original_hw).add_objects(prompts).add_object()
    first = service.render(record, editor)
    assert first.timings_ms["decoded"] == 59
    drawn_backgrounds = []
    real = view.draw_background
    monkeypatch.setattr(view, "draw_background", lambda *a, **k: drawn_backgrounds.append(1) or real(*a, **k))
    for k in range(5):
        editor = editor.add_point(20 + 30 * k, 40)
        shown = service.render(record, editor)
        assert shown.timings_ms["decoded"] == 1, shown.timings_ms
    assert drawn_backgrounds == []
    assert len(shown.objects) == 61 and all(o.score is not None for o in shown.objects if o.has_prompts)
    # Undo decodes nothing (cached); selecting another object redraws the background once.
    assert service.render(record, editor.undo()).timings_ms["decoded"] == 0
    service.render(record, editor.select(editor.objects[0].id))
    assert drawn_backgrounds == [1]


def test_object_scores_survive_evicted_decoder_results(predictor, tmp_path):
    """The object list's scores are cached apart from the 0.8 MB logits, so a click never decodes every object
    again when the decoder-result cache is full."""
    service = SegmentationService(predictor, image_cache_mb=64, result_cache_mb=1)  # room for one result
    path = tmp_path / "photo.png"
    Image.fromarray(make_rgb(*HW, seed=9)).save(path)
    record, _ = service.open_image(str(path))
    prompts = [Prompts((Point(10 + 9 * k, 50),)) for k in range(20)]
    editor = Editor.start(record.original_hw).add_objects(prompts).add_object()
    service.render(record, editor)
    shown = service.render(record, editor.add_point(30, 120))
    assert shown.timings_ms["decoded"] == 1
    assert all(o.score is not None for o in shown.objects if o.has_prompts)


def test_cached_background_follows_each_objects_mask_choice_and_colour(opened, predictor):
    service, record = opened
    editor = Editor.start(record.original_hw).add_point(60, 60).add_object().add_point(200, 120)
    first, second = (o.id for o in editor.objects)
    seen = set()
    for k in (None, 0, 1, 2):
        edited = editor.select(first).choose_candidate(first, k).select(second)  # object 1 drawn in the background
        shown = service.render(record, edited).overlay
        np.testing.assert_array_equal(shown, _reference(predictor, record, edited, ViewOptions()))
        seen.add(shown.tobytes())
    assert len(seen) >= 3  # the candidates differ, so a stale background would have shown
