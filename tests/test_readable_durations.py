"""Durations the page shows read as people say them (issue 22, item 11): never "about 0 s"."""

from __future__ import annotations

from dataclasses import replace

import pytest
from PIL import Image

import app
from sam_demo.service import SegmentationService
from sam_onnx import amg
from tests.conftest import make_rgb


@pytest.mark.parametrize(("seconds", "text"), [(0.0, "under 1 s"), (0.49, "under 1 s"), (0.99, "under 1 s"),
                                               (1.0, "about 1 s"), (12.4, "about 12 s")])
def test_about(seconds, text):
    assert app.about(seconds) == text


def test_a_sub_second_estimate_reads_under_1_s(predictor, tmp_path, monkeypatch):
    """The fast preset on a fast server (0.3 s here, set on the service's real estimate) is "under 1 s"."""
    service = SegmentationService(predictor, image_cache_mb=32)
    path = tmp_path / "small.png"
    Image.fromarray(make_rgb(64, 80)).save(path)
    state = app.show_image(service, app.open_image(service, str(path)), 0.5, True)[app.OUTPUT_NAMES.index("state")]
    real = service.everything_estimate
    monkeypatch.setattr(service, "everything_estimate", lambda *a, **k: replace(real(*a, **k), seconds=0.3))
    text = app.everything_estimate(service, state, "fast")
    assert "**under 1 s**" in text and "about 0 s" not in text, text
    assert "fast" in amg.PRESETS
