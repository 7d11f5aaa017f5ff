"""Low-res mask logits → masks at any size (pure numpy).

The reference (facebookresearch/sam2 ``SAM2Transforms.postprocess_masks`` and
transformers >= 5 ``Sam2ImageProcessor.post_process_masks``) upsamples the
256 x 256 logits to the original ``(H, W)`` in **one** step with
``F.interpolate(mode="bilinear", align_corners=False)`` (no antialias) and then
thresholds at 0. :func:`upsample_logits` is that interpolation in numpy.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

MASK_THRESHOLD = 0.0
"""Logit above which a pixel is inside the mask (the reference's ``mask_threshold``)."""


def _axis_weights(n_in: int, n_out: int) -> tuple[NDArray[np.intp], NDArray[np.intp], NDArray[np.float32]]:
    """Source indices and weights of half-pixel linear interpolation along one axis.

    Output sample ``i`` reads ``src = (i + 0.5) * n_in / n_out - 0.5``, clamped
    below at 0 (PyTorch's ``align_corners=False`` rule), and blends
    ``i0 = floor(src)`` and ``i1 = min(i0 + 1, n_in - 1)`` with weight
    ``src - i0`` on ``i1``.
    """
    src = (np.arange(n_out, dtype=np.float64) + 0.5) * (n_in / n_out) - 0.5
    np.maximum(src, 0.0, out=src)
    i0 = np.minimum(np.floor(src).astype(np.intp), n_in - 1)
    i1 = np.minimum(i0 + 1, n_in - 1)
    return i0, i1, (src - i0).astype(np.float32)


def upsample_logits(logits: NDArray[np.float32], out_hw: tuple[int, int]) -> NDArray[np.float32]:
    """Resize logits with half-pixel bilinear interpolation (``align_corners=False``).

    Args:
        logits: ``(..., h, w)`` float32 logits, e.g. ``(3, 256, 256)`` in the
            model frame.
        out_hw: ``(H, W)`` of the output, e.g. the original image size or a
            display size. Upscaling and downscaling both follow the reference
            (no antialiasing when downscaling, like ``F.interpolate``).

    Returns:
        A new ``(..., H, W)`` float32 array.
    """
    logits = np.asarray(logits, dtype=np.float32)
    out_h, out_w = (int(v) for v in out_hw)
    if out_h < 1 or out_w < 1:
        raise ValueError(f"output size must be positive, got {out_hw}")
    in_h, in_w = logits.shape[-2:]
    r0, r1, wr = _axis_weights(in_h, out_h)
    c0, c1, wc = _axis_weights(in_w, out_w)
    top = logits[..., r0, :]
    rows = top + (logits[..., r1, :] - top) * wr[:, None]  # (..., H, w)
    left = rows[..., c0]
    return left + (rows[..., c1] - left) * wc  # (..., H, W)


def mask_from_logits(logits: NDArray[np.float32], out_hw: tuple[int, int]) -> NDArray[np.bool_]:
    """``upsample_logits(logits, out_hw) > MASK_THRESHOLD``: ``(..., H, W)`` bool."""
    return upsample_logits(logits, out_hw) > MASK_THRESHOLD
