"""Segment everything in the app: up-front estimate, progress, cancel, results as refinable objects."""

from __future__ import annotations

import threading

import gradio as gr
import numpy as np
import pytest
from PIL import Image

import app
from sam_demo.service import SegmentationService
from sam_onnx import amg
from tests.conftest import make_rgb
from tests.support import OUT


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
    assert "8×8 points (64 in all)" in text and "8 decoder calls" in text and "s** on this server" in text
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
    assert calls[0][0] == (0, 8) and calls[-1][0] == (8, 8) and "decoder calls" in calls[-1][1]
    out = app.apply_everything(service, found, state, 0.5, True)
    editor = out[OUT["state"]].editor
    autos = [o for o in editor.objects if o.name.startswith("Auto")]
    assert len(autos) == 64 and all(len(o.prompts.points) == 1 for o in autos)
    assert len({o.color_index for o in autos[:7]}) == 7
    # The overlay shows them: most of the image is tinted.
    changed = np.any(out[OUT["display"]] != make_rgb(300, 500), axis=-1)
    assert changed.mean() > 0.3
    # Refine one with a negative click: it goes to the selected (last) auto object.
    last = autos[-1]
    px, py = last.prompts.points[0].x, last.prompts.points[0].y
    refined = app.click(service, out[OUT["state"]], app.MODE_NEGATIVE, 0.5, True,
                        gr.SelectData(None, {"index": [int(px), int(py)], "value": None}))
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

    assert app.run_everything(service, state, "fast", None, progress) is None
    assert started.is_set() and "cancelled" in infos[0]
    assert app.apply_everything(service, None, state, 0.5, True) == (gr.skip(),) * len(app.OUTPUT_NAMES)


def test_results_for_a_replaced_image_are_dropped(service, state):
    found = app.run_everything(service, state, "fast", None, lambda *a, **k: None)
    stale = (f"{'0' * 64}", found[1])
    assert app.apply_everything(service, stale, state, 0.5, True) == (gr.skip(),) * len(app.OUTPUT_NAMES)


def test_unknown_preset_is_a_clear_error(service, state):
    with pytest.raises(gr.Error, match="Unknown preset 'huge'"):
        app.run_everything(service, state, "huge", None, lambda *a, **k: None)
    assert set(amg.PRESETS) == {"fast", "balanced", "thorough"}
