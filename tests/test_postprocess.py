"""Low-res logits -> masks: the reference's one-step half-pixel bilinear upsampling."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from sam_onnx.postprocess import mask_from_logits, upsample_logits

REFERENCE = json.loads((Path(__file__).parent / "data" / "interp_reference.json").read_text())


@pytest.mark.parametrize("size", ["13x11", "3x4", "2x17", "7x5"])
def test_matches_torch_interpolate_bilinear_align_corners_false(size):
    x = np.array(REFERENCE["x"], np.float32)
    h, w = (int(v) for v in size.split("x"))
    np.testing.assert_allclose(upsample_logits(x, (h, w)), np.array(REFERENCE[size]), atol=2e-5)


def test_reproduces_a_linear_ramp_at_half_pixel_positions():
    # Bilinear interpolation is exact for linear functions; this pins the half-pixel convention
    # (align_corners=True or a missing -0.5 would shift every value).
    i, j = np.meshgrid(np.arange(256), np.arange(256), indexing="ij")
    logits = (0.5 * i - 0.25 * j + 3).astype(np.float32)
    out = upsample_logits(logits, (1000, 600))
    rows = np.clip((np.arange(1000) + 0.5) * 256 / 1000 - 0.5, 0, 255)
    cols = np.clip((np.arange(600) + 0.5) * 256 / 600 - 0.5, 0, 255)
    np.testing.assert_allclose(out, 0.5 * rows[:, None] - 0.25 * cols[None, :] + 3, atol=1e-3)


def test_batched_leading_axes_and_threshold_at_zero():
    logits = np.full((3, 256, 256), -1.0, np.float32)
    logits[1, 64:192, 64:192] = 1.0
    masks = mask_from_logits(logits, (400, 300))
    assert masks.shape == (3, 400, 300) and masks.dtype == bool
    assert not masks[0].any() and not masks[2].any()
    # The square covers the middle half of the model frame, i.e. the middle half of each axis.
    assert masks[1, 200, 150] and not masks[1, 50, 150] and not masks[1, 200, 20]
    assert 0.2 < masks[1].mean() < 0.3


def test_exact_zero_is_outside():
    assert not mask_from_logits(np.zeros((4, 4), np.float32), (8, 8)).any()


def test_rejects_empty_output():
    with pytest.raises(ValueError):
        upsample_logits(np.zeros((4, 4), np.float32), (0, 3))
