"""Shared fixtures: analytic ONNX models (generated once per run), predictors, test images."""

from __future__ import annotations

import atexit
import os
import shutil
import tempfile
from pathlib import Path

import numpy as np
import pytest

from tests import analytic_models

# Gradio's upload cache for the in-process servers: one folder per test run. Gradio names an upload's folder
# after its content and deletes the files of a server when that server closes, so runs sharing the system
# folder (two checkouts tested at once on one machine) deleted each other's uploads ("Could not open the
# file", "This image is no longer on the server" in tests that passed alone). Subprocess servers inherit it.
if "GRADIO_TEMP_DIR" not in os.environ:
    os.environ["GRADIO_TEMP_DIR"] = tempfile.mkdtemp(prefix="sam-tests-gradio-")
    atexit.register(shutil.rmtree, os.environ["GRADIO_TEMP_DIR"], ignore_errors=True)

# Never let a test reach the network or a user's hub cache by accident.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
# Derived encoder files (int8 copies, OpenVINO blobs, `--encoder auto` decisions) go to a per-run folder,
# never to the user's ~/.cache/sam_onnx; app processes started by tests inherit it.
os.environ["SAM_ONNX_CACHE_DIR"] = tempfile.mkdtemp(prefix="sam_onnx_cache_")
atexit.register(shutil.rmtree, os.environ["SAM_ONNX_CACHE_DIR"], ignore_errors=True)
# Tests that are not about encoders run the reference engine (no start-up check, no int8/OpenVINO builds);
# tests/test_encoders.py and the flag tests choose `auto` or a variant themselves.
os.environ.setdefault("SAM_ONNX_ENCODER", "fp32")


@pytest.fixture(scope="session")
def analytic_dir(tmp_path_factory) -> Path:
    """A folder with the analytic encoder.onnx + decoder.onnx (single files)."""
    out = tmp_path_factory.mktemp("analytic")
    analytic_models.save_models(out)
    return out


@pytest.fixture(scope="session")
def predictor(analytic_dir):
    from sam_onnx import Sam2Predictor

    return Sam2Predictor.from_files(analytic_dir / "encoder.onnx", analytic_dir / "decoder.onnx", threads=1)


def make_rgb(h: int, w: int, seed: int = 0) -> np.ndarray:
    """A deterministic (h, w, 3) uint8 image with structure (gradients plus noise)."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w]
    base = np.stack([xx * 255 // max(w - 1, 1), yy * 255 // max(h - 1, 1), (xx + yy) % 256], axis=-1)
    return np.clip(base + rng.integers(-20, 21, base.shape), 0, 255).astype(np.uint8)


@pytest.fixture
def rgb_image():
    return make_rgb
