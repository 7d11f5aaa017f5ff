"""Segment everything in the app: up-front estimate, progress, cancel, results as refinable objects."""

from __future__ import annotations

import threading
from dataclasses import replace

import gradio as gr
import numpy as np
import pytest
from PIL import Image

import app
from sam_demo import jobs
from sam_demo.service import SegmentationService
from sam_onnx import amg
from sam_onnx.types import MaskResult
from tests.conftest import make_rgb
from tests.app_support import OUT, scene_of, shown_union


@pytest.fixture
def service(predictor):
    return SegmentationService(predictor, image_cache_mb=128)


@pytest.fixture
def state(service, tmp_path):
    path = tmp_path / "photo.png"
    Image.fromarray(make_rgb(300, 500)).save(path)
    return app.show_image(service, app.open_image(service, str(path)), 0.5, True)[OUT["state"]]


def test_estimate_is_shown_before_running(service, state):
    text = app.everything_estimate(service, state, "fast")
    calls = 64 // jobs.EVERYTHING_BATCH
    assert "8×8 points (64 in all)" in text and f"{calls} decoder calls" in text and "s** on this server" in text
    assert app.everything_estimate(service, None, "fast") == "Upload an image first."
    est = service.everything_estimate(state.record, "thorough")
    assert est.encoder_runs == 5 and est.seconds > service.everything_estimate(state.record, "fast").seconds


def test_results_become_objects_that_can_be_refined_and_undone(service, state):
    calls = []

    class Progress:
        def __call__(self, value, desc=None):
            calls.append((value, desc))

    found = app.run_everything(service, state, "fast", None, Progress())
    assert found[0] == state.record.key and len(found[1]) == 64  # one disc per grid point (analytic model)
    # jobs.EVERYTHING_BATCH grid points per decoder call: short pieces of the fair turn
    total = 64 // jobs.EVERYTHING_BATCH
    assert calls[0][0] == (0, total) and calls[-1][0] == (total, total) and "decoder calls" in calls[-1][1]
    out = app.apply_everything(service, found, state, 0.5, True)
    editor = out[OUT["state"]].editor
    autos = [o for o in editor.objects if o.name.startswith("Auto")]
    assert len(autos) == 64 and all(len(o.prompts.points) == 1 for o in autos)
    assert len({o.color_index for o in autos[:7]}) == 7
    # The view shows them: most of the image is tinted, and no automatic object but the selected one has markers.
    assert shown_union(service, out).mean() > 0.3
    drawn = scene_of(out)["objects"]
    assert all("points" not in o and "box" not in o for o in drawn if o.get("auto") and not o.get("selected"))
    assert drawn[-1]["selected"] and drawn[-1]["points"], "the selected object's prompts stay visible"
    # Refine one with a negative click: it goes to the selected (last) auto object.
    last = autos[-1]
    px, py = last.prompts.points[0].x, last.prompts.points[0].y
    refined = app.prompt(service, out[OUT["state"]], app.MODE_NEGATIVE, 0.5, True,
                         gr.EventData(None, {"kind": "click", "x": int(px), "y": int(py)}))
    assert len(refined[OUT["state"]].editor.selected.prompts.points) == 2
    # One undo step removes the refinement, the next removes all automatic objects.
    undone = app.undo(service, app.undo(service, refined[OUT["state"]], 0.5, True)[OUT["state"]], 0.5, True)
    assert len(undone[OUT["state"]].editor.objects) == 1


def test_exports_include_automatic_objects(service, state):
    found = app.run_everything(service, state, "fast", None, lambda *a, **k: None)
    out = app.apply_everything(service, found, state, 0.5, True)
    files = app.export_files(service, out[OUT["state"]])
    assert sum(f.endswith("_mask.png") for f in files) == 64


def test_cancel_stops_the_run_and_adds_nothing(service, state, monkeypatch):
    started = threading.Event()
    infos = []
    monkeypatch.setattr(gr, "Info", lambda message, *a, **k: infos.append(message))

    def progress(value, desc=None):
        started.set()
        if value[0] >= 2:
            app.cancel_everything(service, state, None)

    outcome = app.run_everything(service, state, "fast", None, progress)
    assert outcome == (state.record.key, None) and started.is_set() and not infos  # the message comes with apply
    assert app.apply_everything(service, outcome, state, 0.5, True) == (gr.skip(),) * len(app.OUTPUT_NAMES)
    assert infos == ["Segment everything was cancelled; nothing was added."]
    assert app.apply_everything(service, None, state, 0.5, True) == (gr.skip(),) * len(app.OUTPUT_NAMES)


def test_results_for_a_replaced_image_are_dropped_without_a_message(service, state, monkeypatch):
    """A run on the previous image says nothing on the new one (issue 10: a stale toast)."""
    infos = []
    monkeypatch.setattr(gr, "Info", lambda message, *a, **k: infos.append(message))
    found = app.run_everything(service, state, "fast", None, lambda *a, **k: None)
    for stale in ((f"{'0' * 64}", found[1]), (f"{'0' * 64}", []), (f"{'0' * 64}", None)):
        assert app.apply_everything(service, stale, state, 0.5, True) == (gr.skip(),) * len(app.OUTPUT_NAMES)
    assert infos == []
    assert app.apply_everything(service, (state.record.key, []), state, 0.5, True) == \
        (gr.skip(),) * len(app.OUTPUT_NAMES)
    assert infos == ["Segment everything found no confident masks."]


def test_a_new_image_cancels_the_running_job_of_its_tab(service, state, tmp_path):
    request = type("Request", (), {"session_hash": "tab-1"})()
    cancelled = service.cancels.start("tab-1")
    path = tmp_path / "other.png"
    Image.fromarray(make_rgb(200, 300, seed=5)).save(path)
    app.show_image(service, app.open_image(service, str(path)), 0.5, True, state, request)
    assert cancelled.is_set()


def test_measured_runs_predict_their_own_time_and_scale_to_other_presets_and_images():
    """Once a run is measured, the estimate is its per-point and per-mask costs times the new plan (+ crop encodes)."""
    speed = jobs.SpeedMeter(encode_seconds=2.0)
    hw = (1000, 2000)  # 2 MP
    fast = amg.make_plan(jobs.preset("fast"), hw)
    grid_s, finish_s, kept = 0.64, 1.0, 10
    speed.record_everything(grid_s, fast.points, finish_s, kept=kept, megapixels=2.0)
    assert jobs.estimate("fast", hw, speed).seconds == pytest.approx(grid_s + finish_s)
    thorough = amg.make_plan(jobs.preset("thorough"), (2000, 4000))  # more points, crop encodes, an 8 MP image
    expected = ((thorough.encoder_runs - 1) * 2.0 + thorough.points * grid_s / fast.points
                + thorough.points * (kept / fast.points) * 8.0 * finish_s / (kept * 2.0))
    assert jobs.estimate("thorough", (2000, 4000), speed).seconds == pytest.approx(expected)


def test_unknown_preset_is_a_clear_error(service, state):
    with pytest.raises(gr.Error, match="Unknown preset 'huge'"):
        app.run_everything(service, state, "huge", None, lambda *a, **k: None)
    assert set(amg.PRESETS) == {"fast", "balanced", "thorough"}


class HolesAndSpecks:
    """A predictor whose every candidate mask has a 3 x 3-cell hole in the middle and a 3 x 3-cell speck in the
    farthest image corner (the analytic discs have neither): a clean-up of small regions would change them."""

    def __init__(self, inner) -> None:
        self._inner = inner

    def __getattr__(self, name):
        return getattr(self._inner, name)

    @staticmethod
    def _damage(result: MaskResult) -> MaskResult:
        logits = np.array(result.low_res_logits)
        for k in range(len(logits)):
            rows, cols = np.nonzero(logits[k] > 0)
            if rows.size < 64:
                continue
            r, c = int(np.median(rows)), int(np.median(cols))
            logits[k, r - 1:r + 2, c - 1:c + 2] = -50.0
            r, c = max(((1, 1), (1, 254), (254, 1), (254, 254)),
                       key=lambda rc: np.hypot(rows - rc[0], cols - rc[1]).min())
            logits[k, r - 1:r + 2, c - 1:c + 2] = 50.0
        return MaskResult(logits, result.scores, result.object_score_logit, result.geometry)

    def decode(self, embedding, prompts):
        return self._damage(self._inner.decode(embedding, prompts))

    def decode_many(self, embedding, objects, **kwargs):
        return [self._damage(r) for r in self._inner.decode_many(embedding, objects, **kwargs)]


def test_objects_show_and_export_exactly_the_masks_that_were_found(predictor, tmp_path):
    """Masks with holes and specks: every automatic object's exported mask is the found mask, pixel for pixel
    (the presets keep the small-region clean-up off; with it on, objects decoded again would differ)."""
    holey = HolesAndSpecks(predictor)
    service = SegmentationService(holey, image_cache_mb=128)
    rgb = make_rgb(300, 500)
    path = tmp_path / "photo.png"
    Image.fromarray(rgb).save(path)
    state = app.show_image(service, app.open_image(service, str(path)), 0.5, True)[OUT["state"]]
    found = app.run_everything(service, state, "fast", None, lambda *a, **k: None)
    out = app.apply_everything(service, found, state, 0.5, True)
    files = sorted((f for f in app.export_files(service, out[OUT["state"]]) if f.endswith("_mask.png")),
                   key=lambda f: int(f.rsplit("_object", 1)[1].split("_")[0]))
    generated = amg.generate(holey, rgb, amg.PRESETS["fast"])
    assert len(files) == len(generated) > 10
    holes = specks = 0
    for file, mask in zip(files, generated):
        exported = np.asarray(Image.open(file)) == 255
        np.testing.assert_array_equal(exported, mask.mask)
        x, y = (int(round(v)) for v in mask.point_xy)
        holes += not exported[y, x]  # the hole is where the grid point is
        specks += bool(exported[:4, :4].any() or exported[:4, -4:].any() or exported[-4:, :4].any()
                       or exported[-4:, -4:].any())
    assert holes and specks, f"test set-up: {holes} masks with a hole, {specks} with a speck"
    # The control: with the clean-up on, the found masks lose their holes and specks, and an object made
    # from the same grid point and candidate would not reproduce them.
    cleaned = amg.generate(holey, rgb, replace(amg.PRESETS["fast"], min_mask_region_area=25))
    embedding = holey.encode(rgb)
    assert any(not np.array_equal(m.mask, holey.decode(embedding, m.prompts).masks[m.candidate]) for m in cleaned)
