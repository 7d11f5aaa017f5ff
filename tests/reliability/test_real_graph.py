"""One case of this suite on the reduced real-architecture model instead of the analytic stand-ins.

tests/fixtures/sam2_tiny is a transformers Sam2 with random weights, exported with the plain-trace layout
(its Concat quirk included), plus PyTorch's masks. Served exactly as ``python app.py`` serves the real
model, an upload and one click over HTTP must export PyTorch's mask: every step between the request and
the file (decoding, preprocessing and its channel order, the pad point, the prompt mapping, the repair,
the upsampling) is then checked against the reference, not against another model of our own making.
"""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from sam_demo.service import SegmentationService
from sam_onnx import Sam2Predictor
from tests.reliability.conftest import serve
from tests.test_reference_fixture import FIXTURE, MAX_FLIPS_PER_MASK, reference_click_mask
from tools.rawapi import RawSession


@pytest.fixture(scope="module")
def fixture_served():
    predictor = Sam2Predictor.from_files(FIXTURE / "encoder.onnx", FIXTURE / "decoder.onnx", threads=1)
    with serve(SegmentationService(predictor, image_cache_mb=64)) as served:
        yield served


def test_a_click_over_http_exports_pytorchs_mask(fixture_served):
    (x, y), expected = reference_click_mask()
    with RawSession(fixture_served.url) as raw:
        assert raw.load_bytes((FIXTURE / "image.png").read_bytes(), "image.png").ok
        assert raw.click(x, y).ok
        files = raw.call("export", []).data[0]
        data = raw.fetch(next(f for f in files if f["path"].endswith("_object1_mask.png")))
    mask = np.asarray(Image.open(io.BytesIO(data))) == 255
    assert mask.shape == expected.shape
    differ = int(np.count_nonzero(mask != expected))
    # PyTorch and onnxruntime round a handful of |logit| < 3e-5 pixels differently (test_reference_fixture.py).
    assert differ <= MAX_FLIPS_PER_MASK, f"{differ} of {mask.size} pixels differ from PyTorch's mask"
    assert 0.1 < expected.mean() < 0.9  # the case is not trivially empty or full
