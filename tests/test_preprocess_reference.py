"""The downscale path of the encoder preprocessing (every photo takes it) against transformers.

tests/data/downscale_reference.npz summarises what transformers' ``Sam2ImageProcessor`` (torchvision's
antialiased bilinear resize in uint8, rescale, ImageNet normalisation) makes of a deterministic
3000 x 2000 image; tools/make_downscale_reference.py wrote it and documents its layout. Our recipe
(Pillow's BILINEAR, which also antialiases when it shrinks) must match it to within one grey level at
every stored pixel, on 99 % of them exactly, and in every 16 x 16 block sum and channel mean to within
a few rounding steps. Measured when the reference was made (Pillow 12.3 here, transformers 5.24 with
torchvision 0.29 there): 0.29 % of pixels differ, all by one level; block sums by at most 6.

A wrong filter (no antialiasing, nearest, bicubic, box, a two-step resize), a shifted sampling grid
(align_corners), swapped channels or swapped normalisation constants each break these bounds by far; the test
below checks that by applying each of them to our own output.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from sam_onnx.preprocess import IMAGENET_MEAN, IMAGENET_STD, normalize, preprocess_image, resize_to_model
from tools.make_downscale_reference import (
    BLOCK,
    CROP_SIDE,
    GRID_STEP,
    LARGE_HW,
    image_sha256,
    large_image,
    to_grey_levels,
)

REFERENCE = np.load(Path(__file__).parent / "data" / "downscale_reference.npz")
MAX_LEVEL_DIFF = 1
"""Largest allowed per-pixel difference, in grey levels: two antialiased bilinear kernels that round to
uint8 separately may land on neighbouring levels."""
MAX_DIFFERING_FRACTION = 0.01
"""Share of stored pixels allowed to differ at all (measured: 0.29 %)."""
MAX_BLOCK_SUM_DIFF = 24
"""Per 16 x 16 block (256 pixels), in grey levels (measured: at most 6)."""
MAX_CHANNEL_MEAN_DIFF = 0.02
"""Whole-image mean per channel, in grey levels (measured: 3e-5)."""


@pytest.fixture(scope="module")
def image() -> np.ndarray:
    rgb = large_image()
    assert rgb.shape == (*LARGE_HW, 3)
    # The same input bytes as the reference was made from (integer formula, no random generator).
    assert image_sha256(rgb) == str(REFERENCE["image_sha256"])
    return rgb


def _levels(pixel_values: np.ndarray) -> np.ndarray:
    return to_grey_levels(pixel_values)


def _violations(levels: np.ndarray) -> list[str]:
    """Every bound that ``levels`` ([3,1024,1024] grey levels) breaks against the reference."""
    problems = []
    stored = [(levels[:, ::GRID_STEP, ::GRID_STEP], REFERENCE["levels_grid"])]
    for (row, col), crop in zip(REFERENCE["crop_origins"], REFERENCE["crops"]):
        stored.append((levels[:, row:row + CROP_SIDE, col:col + CROP_SIDE], crop))
    diffs = np.concatenate([(ours - ref.astype(np.float64)).ravel() for ours, ref in stored])
    if np.abs(diffs).max() > MAX_LEVEL_DIFF + 1e-3:
        problems.append(f"a stored pixel differs by {np.abs(diffs).max():.2f} grey levels")
    differing = float(np.mean(np.abs(diffs) > 0.5))
    if differing > MAX_DIFFERING_FRACTION:
        problems.append(f"{differing:.2%} of stored pixels differ")
    c = levels.shape[0]
    blocks = levels.reshape(c, 1024 // BLOCK, BLOCK, 1024 // BLOCK, BLOCK).sum(axis=(2, 4))
    block_diff = float(np.abs(blocks - REFERENCE["block_sums"]).max())
    if block_diff > MAX_BLOCK_SUM_DIFF:
        problems.append(f"a 16x16 block sum differs by {block_diff:.1f}")
    mean_diff = float(np.abs(levels.reshape(c, -1).mean(axis=1) - REFERENCE["channel_means"]).max())
    if mean_diff > MAX_CHANNEL_MEAN_DIFF:
        problems.append(f"a channel mean differs by {mean_diff:.3f}")
    return problems


def test_downscaled_pixel_values_match_transformers(image):
    pixel_values, geometry = preprocess_image(image)
    assert pixel_values.shape == (1, 3, 1024, 1024) and pixel_values.dtype == np.float32
    assert geometry.original_hw == LARGE_HW
    assert _violations(_levels(pixel_values)) == []


def _bilinear_no_antialias(rgb: np.ndarray, align_corners: bool = False) -> np.ndarray:
    """Plain bilinear sampling (what OpenCV's INTER_LINEAR or F.interpolate without antialias do)."""
    h, w = rgb.shape[:2]

    def axis(n_in):
        if align_corners:
            src = np.arange(1024) * (n_in - 1) / 1023
        else:
            src = np.clip((np.arange(1024) + 0.5) * n_in / 1024 - 0.5, 0, n_in - 1)
        i0 = np.floor(src).astype(int)
        i1 = np.minimum(i0 + 1, n_in - 1)
        return i0, i1, (src - i0)

    r0, r1, wr = axis(h)
    c0, c1, wc = axis(w)
    x = rgb.astype(np.float64)
    rows = x[r0] * (1 - wr)[:, None, None] + x[r1] * wr[:, None, None]
    out = rows[:, c0] * (1 - wc)[None, :, None] + rows[:, c1] * wc[None, :, None]
    return np.clip(np.round(out), 0, 255).astype(np.uint8)


def _pil(rgb: np.ndarray, resample) -> np.ndarray:
    return np.asarray(Image.fromarray(rgb).resize((1024, 1024), resample))


def _swapped_constants(resized: np.ndarray) -> np.ndarray:
    x = resized.transpose(2, 0, 1).astype(np.float64) / 255
    mean, std = np.asarray(IMAGENET_MEAN)[::-1, None, None], np.asarray(IMAGENET_STD)[::-1, None, None]
    return ((x - mean) / std)[None].astype(np.float32)


BUGS = {
    "no antialias (OpenCV INTER_LINEAR)": lambda rgb: normalize(_bilinear_no_antialias(rgb)),
    "align_corners=True": lambda rgb: normalize(_bilinear_no_antialias(rgb, align_corners=True)),
    "nearest": lambda rgb: normalize(_pil(rgb, Image.Resampling.NEAREST)),
    "bicubic": lambda rgb: normalize(_pil(rgb, Image.Resampling.BICUBIC)),
    "box filter": lambda rgb: normalize(_pil(rgb, Image.Resampling.BOX)),
    "two steps (reduce by 2, then bilinear), a tempting speed-up": lambda rgb: normalize(np.asarray(
        Image.fromarray(rgb).reduce(2).resize((1024, 1024), Image.Resampling.BILINEAR))),
    "BGR channel order": lambda rgb: normalize(resize_to_model(rgb)[..., ::-1]),
    "mean and std in BGR order": lambda rgb: _swapped_constants(resize_to_model(rgb)),
    "half a grey level off (rounding down)": lambda rgb: normalize(resize_to_model(rgb)) - np.float32(
        0.6 / 255 / 0.225),
}


@pytest.mark.parametrize("bug", sorted(BUGS))
def test_the_bounds_catch_real_preprocessing_bugs(image, bug):
    """Each deliberate bug must break at least one bound, so the comparison above can fail."""
    assert _violations(_levels(BUGS[bug](image))), f"{bug} passes the comparison"
