"""Refining an object through the demo's engine: one crop encode, then every click decodes in the crop.

On the analytic models (tests/analytic_models.py) a refined object's mask is known exactly: the analytic
rule evaluated on the crop as an image of its own. A 1200 x 1600 photo shown at 384 px wide makes the
display frame, the original frame and the crop's frame all differ.
"""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest
from PIL import Image

from sam_demo import bundle, layers
from sam_demo.editor import Editor
from sam_demo.service import MAX_SEGMENT_REFINES, RefineCancelled, SegmentationService
from sam_onnx import CropFrame, InvalidPromptError, Point, Prompts, refine
from tests import analytic_models as am
from tests.conftest import make_rgb

HW = (1200, 1600)
CLICK = (1000.4, 700.6)


class CountingPredictor:
    """The analytic predictor, counting encoder runs (whole images and crops alike)."""

    def __init__(self, inner) -> None:
        self._inner = inner
        self.encodes = 0
        self.started = threading.Event()
        self.release = threading.Event()
        self.release.set()

    def encode_pixels(self, pixels, geometry, abort=None):
        self.encodes += 1
        self.started.set()
        self.release.wait(10)
        return self._inner.encode_pixels(pixels, geometry, abort=abort)

    def __getattr__(self, name):
        return getattr(self._inner, name)


@pytest.fixture
def opened(predictor, tmp_path):
    counting = CountingPredictor(predictor)
    service = SegmentationService(counting, image_cache_mb=256, display_max_side=384)
    path = tmp_path / "photo.png"
    Image.fromarray(make_rgb(*HW, seed=7)).save(path)
    record, _ = service.open_image(str(path))
    return service, record, counting


def _expected_refined(crop: CropFrame, points, labels) -> np.ndarray:
    """The refined object's exact mask at the original size: the analytic rule on the crop as an image."""
    x0, y0 = crop.offset_xy
    inside = [(i, (x - x0, y - y0)) for i, (x, y) in enumerate(points) if crop.contains_xy((x, y))]
    exact, unsure = am.pipeline_mask([p for _, p in inside], [labels[i] for i, _ in inside], None, crop.crop_hw)
    full, full_unsure = np.zeros(HW, bool), np.zeros(HW, bool)
    full[crop.slices], full_unsure[crop.slices] = exact, unsure
    return full, full_unsure


def _assert_mask(mask, expected):
    exact, unsure = expected
    wrong = (mask != exact) & ~unsure
    assert not wrong.any(), f"{int(wrong.sum())} pixels differ from the exact refined mask"


def test_refine_encodes_the_crop_once_and_later_clicks_decode_there(opened):
    service, record, counting = opened
    editor = Editor.start(HW).add_point(*CLICK)
    coarse = service.object_results(record, editor.objects)[0]
    before = counting.encodes
    refinement = service.refine(record, editor)
    assert counting.encodes == before + 1, "one crop encode"
    assert refinement.crop == refine.crop_for(coarse, editor.selected.prompts) and not refinement.cached
    editor = editor.refine(refinement.object_id, refinement.crop)
    result = service.object_results(record, editor.objects)[0]
    _assert_mask(result.best_mask, _expected_refined(refinement.crop, [CLICK], [1]))
    # Later clicks on the object: decoded in the crop at once, no second encode.
    editor = editor.add_point(CLICK[0] + 40, CLICK[1] - 30).add_point(CLICK[0] - 60, CLICK[1], 0)
    assert editor.selected.crop == refinement.crop
    view = service.render(record, editor)
    assert counting.encodes == before + 1 and view.timings_ms["decoded"] == 1
    result = service.object_results(record, editor.objects)[0]
    assert result.geometry.crop == refinement.crop
    _assert_mask(result.best_mask, _expected_refined(refinement.crop, [CLICK, (CLICK[0] + 40, CLICK[1] - 30),
                                                                       (CLICK[0] - 60, CLICK[1])], [1, 1, 0]))
    # Refining again crops around the refined mask; once that crop is the one it has, it says so.
    editor = Editor.start(HW).add_point(*CLICK)
    for _ in range(8):
        try:
            editor = editor.refine(1, service.refine(record, editor).crop)
        except InvalidPromptError as exc:
            assert "refined already" in str(exc)
            break
    else:
        pytest.fail("refining again never reached a fixed crop")
    assert editor.selected.crop.crop_hw == (256, 256)  # the analytic disc shrinks with the crop, to the minimum


def test_undo_of_a_refine_brings_back_the_whole_image_mask(opened):
    service, record, _ = opened
    editor = Editor.start(HW).add_point(*CLICK)
    coarse = service.object_results(record, editor.objects)[0].best_mask.copy()
    refinement = service.refine(record, editor)
    refined = editor.refine(refinement.object_id, refinement.crop)
    assert not np.array_equal(service.object_results(record, refined.objects)[0].best_mask, coarse)
    np.testing.assert_array_equal(service.object_results(record, refined.undo().objects)[0].best_mask, coarse)


def test_export_and_prompts_file_carry_the_refined_mask(opened, tmp_path):
    service, record, _ = opened
    editor = Editor.start(HW).add_point(*CLICK).add_object().add_point(200, 300)
    editor = editor.select(1)
    refinement = service.refine(record, editor)
    editor = editor.refine(1, refinement.crop)
    files = service.export(record, editor, tmp_path / "out")
    mask = np.asarray(Image.open(next(f for f in files if f.name.endswith("_object1_mask.png")))) > 0
    _assert_mask(mask, _expected_refined(refinement.crop, [CLICK], [1]))
    prompts_file = next(f for f in files if f.name.endswith("_prompts.json"))
    loaded = service.load_prompts_file(record, prompts_file)
    assert [o.crop for o in loaded.objects] == [refinement.crop, None]
    np.testing.assert_array_equal(service.object_results(record, loaded.objects)[0].best_mask, mask)


def test_a_crop_embedding_lives_in_the_image_cache_and_comes_back_after_eviction(predictor, tmp_path):
    counting = CountingPredictor(predictor)
    service = SegmentationService(counting, image_cache_mb=40, display_max_side=384)  # about two embeddings
    path = tmp_path / "photo.png"
    Image.fromarray(make_rgb(*HW, seed=7)).save(path)
    record, _ = service.open_image(str(path))
    editor = Editor.start(HW).add_point(*CLICK)
    crop = service.refine(record, editor).crop
    editor = editor.refine(1, crop)
    stats = service.cache_stats()["images"]
    assert stats["entries"] == 2 and stats["bytes"] <= stats["max_bytes"]
    for seed in (8, 9):  # two other images push the crop out
        other = tmp_path / f"other{seed}.png"
        Image.fromarray(make_rgb(300, 400, seed=seed)).save(other)
        service.open_image(str(other))
    encodes = counting.encodes
    result = service.object_results(record, editor.add_point(CLICK[0] + 10, CLICK[1]).objects)[0]
    assert counting.encodes > encodes, "the evicted crop was encoded again"
    _assert_mask(result.best_mask, _expected_refined(crop, [CLICK, (CLICK[0] + 10, CLICK[1])], [1, 1]))


def test_bad_refines_get_a_message_and_change_nothing(opened):
    service, record, counting = opened
    encodes = counting.encodes
    with pytest.raises(InvalidPromptError, match="no prompts"):
        service.refine(record, Editor.start(HW))
    empty = Editor.start(HW).add_point(500, 500, 0)  # only an exclude point: the analytic mask is empty
    with pytest.raises(InvalidPromptError, match="mask is empty"):
        service.refine(record, empty)
    assert counting.encodes == encodes, "no encoder run for a refused refine"


def test_a_cancelled_refine_changes_nothing(opened):
    service, record, counting = opened
    editor = Editor.start(HW).add_point(*CLICK)
    with pytest.raises(RefineCancelled):
        service.refine(record, editor, cancel=lambda: True)
    # Cancelled while the crop was being encoded: the refine is dropped when the encoder returns.
    counting.release.clear()
    counting.started.clear()
    flag = threading.Event()
    outcome = []

    def run():
        try:
            outcome.append(service.refine(record, editor, cancel=flag.is_set))
        except RefineCancelled as exc:
            outcome.append(exc)

    thread = threading.Thread(target=run)
    thread.start()
    assert counting.started.wait(10)
    flag.set()
    counting.release.set()
    thread.join(10)
    assert isinstance(outcome[0], RefineCancelled)
    assert editor.selected.crop is None


def test_a_refined_objects_layer_is_drawn_in_original_pixels(opened):
    service, record, _ = opened
    editor = Editor.start(HW).add_point(*CLICK)
    crop = service.refine(record, editor).crop
    editor = editor.refine(1, crop)
    result = service.object_results(record, editor.objects)[0]
    layer_id, layer = service.layer(record, editor.selected.prompts, 1, result, crop)
    coarse_id, _ = service.layer(record, editor.selected.prompts, 1, service.results(record, [editor.selected.prompts])[0])
    assert layer_id != coarse_id, "the crop is part of the layer's address"
    bitmap = layers.decode_png(layer.png)
    x0, y0, x1, y1 = layer.rect
    assert (x1 - x0, y1 - y0) == (bitmap.shape[1], bitmap.shape[0]), "one bitmap pixel per original pixel"
    full = result.best_mask
    np.testing.assert_array_equal(bitmap, full[int(y0):int(y1), int(x0):int(x1)])
    assert full.sum() == bitmap.sum()
    assert service.layer_png(record.key, layer_id) == layer.png


def test_segment_api_refines_the_objects_that_ask(opened, tmp_path):
    service, record, counting = opened
    from sam_onnx.export import decode_rle

    path = tmp_path / "photo.png"
    answer = service.segment(str(path), [Prompts((Point(*CLICK),)), Prompts((Point(200, 300),))], [True, False])
    first, second = answer["objects"]
    crop = CropFrame(HW, tuple(first["crop"]))
    assert first["refined"] is True and "refined" not in second
    _assert_mask(decode_rle(first["mask_rle"]), _expected_refined(crop, [CLICK], [1]))
    # A refine that cannot be made is reported per object; the whole-image mask is given.
    tiny = tmp_path / "tiny.png"
    Image.fromarray(make_rgb(24, 16)).save(tiny)
    (only,) = service.segment(str(tiny), [Prompts((Point(8, 12),))], [True])["objects"]
    assert only["refined"] is False and "whole image" in only["refine_note"] and only["area"] > 0
    with pytest.raises(InvalidPromptError, match=f"at most {MAX_SEGMENT_REFINES}"):
        service.segment(str(path), [Prompts((Point(*CLICK),))] * (MAX_SEGMENT_REFINES + 1),
                        [True] * (MAX_SEGMENT_REFINES + 1))


# ---------------------------------------------------------------------------- a zoomed view, encoded ahead
def test_a_zoomed_view_is_encoded_ahead_and_a_click_in_it_decodes_there_without_an_encode(opened):
    service, record, counting = opened
    view = (900.0, 600.0, 1300.0, 900.0)  # what a 4x zoom of the 1600 x 1200 photo shows
    crop = service.encode_view(record, view)
    assert crop == CropFrame.for_view(HW, view) == CropFrame(HW, (900, 600, 1300, 900))
    encodes = counting.encodes
    editor = Editor.start(HW).add_point(*CLICK, view_crop=crop)
    result = service.object_results(record, editor.objects)[0]
    assert counting.encodes == encodes, "the click decoded on the view's embedding, made ahead"
    _assert_mask(result.best_mask, _expected_refined(crop, [CLICK], [1]))
    assert service.encode_view(record, view) == crop and counting.encodes == encodes  # cached
    assert service.encode_view(record, (0, 0, 1600, 1200)) is None  # the whole image: nothing to gain


def test_a_view_encode_waits_behind_an_upload_and_a_new_zoom_cancels_it(opened, tmp_path):
    service, record, counting = opened
    counting.release.clear()
    counting.started.clear()
    other = tmp_path / "other.png"
    Image.fromarray(make_rgb(300, 400, seed=11)).save(other)
    order, views = [], []

    def upload():
        service.open_image(str(other))
        order.append("upload")

    uploading = threading.Thread(target=upload)
    uploading.start()
    assert counting.started.wait(10)  # the upload's encoder run holds the encoder now
    cancelled = threading.Event()
    first = threading.Thread(target=lambda: views.append(service.encode_view(record, (0, 0, 400, 300),
                                                                             cancel=cancelled.is_set)))
    second = threading.Thread(target=lambda: (views.append(service.encode_view(record, (800, 600, 1200, 900))),
                                              order.append("view")))
    first.start()
    second.start()
    deadline = time.monotonic() + 10
    while service.intake.waiting() + service.encoder_gate.waiting() < 2 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert service.intake.waiting() + service.encoder_gate.waiting() >= 2, "both views wait behind the upload"
    cancelled.set()  # a new zoom: the first view's request is withdrawn while it waits
    first.join(10)
    assert views == [None]
    counting.release.set()
    uploading.join(10)
    second.join(10)
    assert order == ["upload", "view"] and views[1] == CropFrame(HW, (800, 600, 1200, 900))
