"""Low-res mask logits → masks at any size (pure numpy).

The reference (facebookresearch/sam2 ``SAM2Transforms.postprocess_masks`` and
transformers >= 5 ``Sam2ImageProcessor.post_process_masks``) upsamples the
256 x 256 logits to the original ``(H, W)`` in **one** step with
``F.interpolate(mode="bilinear", align_corners=False)`` (no antialias) and then
thresholds at 0. :func:`upsample_logits` is that interpolation in numpy.
"""

from __future__ import annotations

import math

import numpy as np
from numpy.typing import NDArray

MASK_THRESHOLD = 0.0
"""Logit above which a pixel is inside the mask (the reference's ``mask_threshold``)."""


def _axis_weights(n_in: int, n_out: int, span: tuple[float, float] | None = None
                  ) -> tuple[NDArray[np.intp], NDArray[np.intp], NDArray[np.float32], int]:
    """Source indices and weights of half-pixel linear interpolation along one axis.

    The ``n_in`` samples cover ``span = (a, b)`` of the output axis (continuous
    frame: output pixel ``i`` spans ``[i, i + 1)``; default the whole axis,
    ``(0, n_out)``). Only the outputs whose centre lies in it are computed:
    ``i = start, start + 1, ...`` with ``a <= i + 0.5 < b``. Output ``i`` reads
    ``src = (i + 0.5 - a) * n_in / (b - a) - 0.5``, clamped below at 0
    (PyTorch's ``align_corners=False`` rule), and blends ``i0 = floor(src)``
    and ``i1 = min(i0 + 1, n_in - 1)`` with weight ``src - i0`` on ``i1``.
    For the whole axis this is ``F.interpolate``'s rule, bit for bit.

    Returns:
        ``(i0, i1, weights, start)``; the arrays hold one entry per computed output.
    """
    a, b = (0.0, float(n_out)) if span is None else (float(span[0]), float(span[1]))
    start = min(max(0, math.ceil(a - 0.5)), n_out)
    stop = min(max(start, math.ceil(b - 0.5)), n_out)
    src = (np.arange(start, stop, dtype=np.float64) + 0.5 - a) * (n_in / (b - a)) - 0.5
    np.maximum(src, 0.0, out=src)
    i0 = np.minimum(np.floor(src).astype(np.intp), n_in - 1)
    i1 = np.minimum(i0 + 1, n_in - 1)
    return i0, i1, (src - i0).astype(np.float32), start


Spans = tuple[tuple[float, float], tuple[float, float]]
"""``((row_start, row_stop), (col_start, col_stop))``: where the logits lie in the output grid
(:meth:`sam_onnx.geometry.Geometry.spans`); ``None`` = the logits cover the whole output."""


def _check_out_hw(out_hw: tuple[int, int]) -> tuple[int, int]:
    out_h, out_w = (int(v) for v in out_hw)
    if out_h < 1 or out_w < 1:
        raise ValueError(f"output size must be positive, got {out_hw}")
    return out_h, out_w


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
    values, _ = upsample_logits_window(logits, _check_out_hw(out_hw))
    return values


def upsample_logits_window(logits: NDArray[np.float32], out_hw: tuple[int, int], spans: Spans | None = None
                           ) -> tuple[NDArray[np.float32], tuple[int, int]]:
    """:func:`upsample_logits` for logits that cover only ``spans`` of the output (a crop's logits).

    Args:
        logits: ``(..., h, w)`` float32 logits.
        out_hw: ``(H, W)`` of the whole output grid (original or display pixels).
        spans: where the logits lie in that grid; ``None`` = all of it.

    Returns:
        ``(values, (row0, col0))``: ``values`` is ``(..., H', W')`` float32 for the
        output pixels whose centres lie inside the spans, starting at output pixel
        ``(row0, col0)``. With ``spans=None`` it is the whole grid at ``(0, 0)``.
    """
    logits = np.asarray(logits, dtype=np.float32)
    out_h, out_w = _check_out_hw(out_hw)
    in_h, in_w = logits.shape[-2:]
    row_span, col_span = (None, None) if spans is None else spans
    r0, r1, wr, row0 = _axis_weights(in_h, out_h, row_span)
    c0, c1, wc, col0 = _axis_weights(in_w, out_w, col_span)
    top = logits[..., r0, :]
    rows = top + (logits[..., r1, :] - top) * wr[:, None]  # (..., H', w)
    left = rows[..., c0]
    return left + (rows[..., c1] - left) * wc, (row0, col0)  # (..., H', W')


def mask_from_logits(logits: NDArray[np.float32], out_hw: tuple[int, int], spans: Spans | None = None
                     ) -> NDArray[np.bool_]:
    """``upsample_logits(logits, out_hw) > MASK_THRESHOLD``: ``(..., H, W)`` bool.

    With ``spans`` (a crop's logits) the logits are upsampled over their spans
    only (:func:`upsample_logits_window`) and everything outside is False.
    """
    if spans is None:
        return upsample_logits(logits, out_hw) > MASK_THRESHOLD
    values, (row0, col0) = upsample_logits_window(logits, out_hw, spans)
    out = np.zeros((*values.shape[:-2], *_check_out_hw(out_hw)), dtype=bool)
    out[..., row0:row0 + values.shape[-2], col0:col0 + values.shape[-1]] = values > MASK_THRESHOLD
    return out


def _guard_below(logits: NDArray[np.float32], threshold: float) -> float:
    """How far below ``threshold`` a low-res cell may be and still matter (float32 rounding).

    With ``threshold == 0`` every interpolated value whose four source cells
    are ``<= 0`` is itself ``<= 0`` in float32 (each ``a + (b - a) * w`` step
    with ``a, b <= 0`` and ``0 <= w <= 1`` rounds to at most 0), so no guard is
    needed. For other thresholds two interpolation steps may round up by a few
    ulps of the largest magnitude, so cells slightly below the threshold count.
    """
    if threshold == 0.0:
        return 0.0
    finite = logits[np.isfinite(logits)]
    largest = float(np.abs(finite).max(initial=0.0)) + abs(threshold)
    if finite.size < logits.size:  # +-inf anywhere: give up on pruning rows/cols by value
        return float("inf")
    return 16.0 * float(np.finfo(np.float32).eps) * largest


def _output_span(
    lo_cell: int, hi_cell: int, i0: NDArray[np.intp], i1: NDArray[np.intp]
) -> tuple[int, int]:
    """Output indices ``[start, stop)`` whose interpolation reads any cell in ``[lo_cell, hi_cell]``.

    ``i0`` and ``i1`` are non-decreasing (from :func:`_axis_weights`), so the
    outputs that read the span form one contiguous run.
    """
    start = int(np.searchsorted(i1, lo_cell, side="left"))  # first i with i1[i] >= lo_cell
    stop = int(np.searchsorted(i0, hi_cell, side="right"))  # first i with i0[i] > hi_cell
    return start, max(start, stop)


def mask_crop_from_logits(
    logits: NDArray[np.float32],
    out_hw: tuple[int, int],
    *,
    spans: Spans | None = None,
    threshold: float = MASK_THRESHOLD,
    margin_cells: int = 1,
) -> tuple[NDArray[np.bool_], tuple[int, int]]:
    """The part of ``mask_from_logits(logits, out_hw, spans)`` that can be True, computed only there.

    Finds the low-res cells above ``threshold``, widens their bounding box by
    ``margin_cells`` cells, and interpolates only the output rows and columns
    whose bilinear footprint (cells ``i0``/``i1`` of the half-pixel rule) reads
    that box, with the same index/weight arrays and the same float32
    operations as :func:`upsample_logits`. The result is therefore bit-for-bit
    the same as slicing the full mask; everything outside the crop is False.
    For a small object on a large image this is far cheaper than a full upsample.

    Args:
        logits: ``(h, w)`` float32 low-res logits of ONE mask (e.g. ``(256, 256)``
            in the model frame).
        out_hw: ``(H, W)`` of the full output mask (original or display pixels).
        spans: where the logits lie in that output (a crop's logits,
            :meth:`sam_onnx.geometry.Geometry.spans`); ``None`` = all of it.
        threshold: logit above which a pixel is inside (default :data:`MASK_THRESHOLD`).
        margin_cells: extra low-res cells kept around the True cells, so the crop
            usually has a False border (handy for contour drawing). ``>= 0``.

    Returns:
        ``(crop, (row0, col0))``: ``crop`` is ``(H', W')`` bool with
        ``full[row0:row0 + H', col0:col0 + W'] == crop`` and ``full`` False
        elsewhere; ``(row0, col0)`` in output pixels. When no cell is above the
        threshold, ``crop`` is ``(0, 0)`` and the offset ``(0, 0)``.
    """
    logits = np.asarray(logits, dtype=np.float32)
    if logits.ndim != 2:
        raise ValueError(f"expected (h, w) logits of one mask, got shape {logits.shape}")
    out_h, out_w = _check_out_hw(out_hw)
    if margin_cells < 0:
        raise ValueError(f"margin_cells must be >= 0, got {margin_cells}")
    empty = np.zeros((0, 0), dtype=bool), (0, 0)
    in_h, in_w = logits.shape
    if in_h < 1 or in_w < 1:
        return empty
    guard = _guard_below(logits, threshold)
    hot = np.ones(logits.shape, bool) if math.isinf(guard) else logits > threshold - guard
    rows_hot = np.flatnonzero(hot.any(axis=1))
    if rows_hot.size == 0:
        return empty
    cols_hot = np.flatnonzero(hot.any(axis=0))
    lo_r = max(0, int(rows_hot[0]) - margin_cells)
    hi_r = min(in_h - 1, int(rows_hot[-1]) + margin_cells)
    lo_c = max(0, int(cols_hot[0]) - margin_cells)
    hi_c = min(in_w - 1, int(cols_hot[-1]) + margin_cells)

    row_span, col_span = (None, None) if spans is None else spans
    r0, r1, wr, row_first = _axis_weights(in_h, out_h, row_span)
    c0, c1, wc, col_first = _axis_weights(in_w, out_w, col_span)
    row_start, row_stop = _output_span(lo_r, hi_r, r0, r1)
    col_start, col_stop = _output_span(lo_c, hi_c, c0, c1)
    if row_stop <= row_start or col_stop <= col_start:
        return empty
    r0, r1, wr = r0[row_start:row_stop], r1[row_start:row_stop], wr[row_start:row_stop]
    c0, c1, wc = c0[col_start:col_stop], c1[col_start:col_stop], wc[col_start:col_stop]
    # Only the low-res columns the window reads; element-wise maths identical to upsample_logits.
    first_col, last_col = int(c0[0]), int(c1[-1])
    band = logits[:, first_col : last_col + 1]
    top = band[r0, :]
    rows = top + (band[r1, :] - top) * wr[:, None]  # (H', k)
    left = rows[:, c0 - first_col]
    values = left + (rows[:, c1 - first_col] - left) * wc  # (H', W')
    return values > threshold, (row_first + row_start, col_first + col_start)
