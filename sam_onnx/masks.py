"""Mask utilities on low-res logits and boolean masks: connected components, holes, specks, scores, boxes.

Pure numpy (no OpenCV, no pycocotools). Used by the automatic mask generator
(:mod:`sam_onnx.amg`), and usable on their own. Frames: these functions work
in whatever pixel grid their input is in (for the generator, the decoder's
256 x 256 low-res cells); boxes are ``(x0, y0, x1, y1)``.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

from .postprocess import MASK_THRESHOLD

HOLE_FILL_LOGIT = MASK_THRESHOLD + 10.0
"""Logit written into filled holes (SAM 2's ``mask_threshold + 10``)."""
SPECK_LOGIT = MASK_THRESHOLD - 10.0
"""Logit written into removed specks (SAM 2's ``mask_threshold - 10``)."""
CONNECTIVITIES = (4, 8)
"""Pixel connectivities :func:`label_components` accepts (8: diagonal neighbours touch)."""


# ---------------------------------------------------------------- connected components
def _row_runs(mask: NDArray[np.bool_]) -> tuple[NDArray[np.intp], NDArray[np.intp], NDArray[np.intp]]:
    """Horizontal runs of True in a ``(rows, w)`` mask: ``(row, start, end)``, end exclusive, raster order."""
    rows, w = mask.shape
    padded = np.zeros((rows, w + 2), np.int8)
    padded[:, 1:-1] = mask
    change = np.diff(padded, axis=1)
    run_rows, starts = np.nonzero(change == 1)
    _, ends = np.nonzero(change == -1)
    return run_rows, starts, ends


def _link_runs(rows: NDArray[np.intp], starts: NDArray[np.intp], ends: NDArray[np.intp], width: int,
               block_rows: int, connectivity: int) -> tuple[NDArray[np.intp], NDArray[np.intp]]:
    """Pairs of touching runs in consecutive rows (never across a ``block_rows`` boundary).

    Runs are sorted by (row, start) and disjoint within a row, so the runs of
    the row above that touch run ``b`` form one contiguous index range, found
    by binary search on global keys ``row * (width + 2) + column``.
    """
    key = width + 2
    above = (rows - 1) * key
    start_keys, end_keys = rows * key + starts, rows * key + ends
    diagonal = connectivity == 8  # 8: a.end >= b.start and a.start <= b.end; 4: strict
    lo = np.searchsorted(end_keys, above + starts, side="left" if diagonal else "right")
    hi = np.searchsorted(start_keys, above + ends, side="right" if diagonal else "left")
    counts = np.where(rows % block_rows != 0, np.maximum(hi - lo, 0), 0)
    b = np.repeat(np.arange(rows.size), counts)
    offsets = np.arange(b.size) - np.repeat(np.cumsum(counts) - counts, counts)
    return np.repeat(lo, counts) + offsets, b


def _union_roots(n: int, a: NDArray[np.intp], b: NDArray[np.intp]) -> NDArray[np.intp]:
    """Component root of each of ``n`` nodes given edges ``a[i] - b[i]``; the root is the smallest index.

    Vectorised union-find: hook every root to the smallest root it touches,
    then flatten by pointer jumping, until no edge joins two roots.
    """
    parent = np.arange(n)
    while a.size:
        ra, rb = parent[a], parent[b]
        differ = ra != rb
        a, b, ra, rb = a[differ], b[differ], ra[differ], rb[differ]
        if not a.size:
            break
        np.minimum.at(parent, np.maximum(ra, rb), np.minimum(ra, rb))
        while True:
            jumped = parent[parent]
            if np.array_equal(jumped, parent):
                break
            parent = jumped
    return parent


def _components(mask: NDArray[np.bool_], connectivity: int) -> tuple[tuple[NDArray[np.intp], ...], NDArray[np.intp],
                                                                       NDArray[np.int64]]:
    """Runs of a ``(..., h, w)`` mask, the component (0..n-1, raster order) of each run, and component areas."""
    if connectivity not in CONNECTIVITIES:
        raise ValueError(f"connectivity must be 4 or 8, got {connectivity}")
    h, w = mask.shape[-2:]
    rows, starts, ends = _row_runs(mask.reshape(-1, w))
    a, b = _link_runs(rows, starts, ends, w, h, connectivity)
    roots = _union_roots(rows.size, a, b)
    is_root = roots == np.arange(rows.size)  # one root per component: its first run in raster order
    component = (np.cumsum(is_root) - 1)[roots]
    areas = np.bincount(component, weights=ends - starts).astype(np.int64) if rows.size else np.zeros(0, np.int64)
    return (rows, starts, ends), component, areas


def _paint_runs(shape: tuple[int, ...], rows: NDArray[np.intp], starts: NDArray[np.intp], ends: NDArray[np.intp],
                values: NDArray | None = None, dtype: type = np.bool_) -> NDArray:
    """An array of ``shape`` (last axis = run columns) with the runs set to ``values`` (or True)."""
    w = shape[-1]
    out = np.zeros(int(np.prod(shape)), dtype)
    lengths = ends - starts
    first = rows * w + starts
    index = np.repeat(first - np.cumsum(lengths) + lengths, lengths) + np.arange(int(lengths.sum()))
    out[index] = True if values is None else np.repeat(values, lengths)
    return out.reshape(shape)


def label_components(mask: NDArray[np.bool_], *, connectivity: int = 8) -> tuple[NDArray[np.int32], NDArray[np.int64]]:
    """Connected components of a boolean mask (like ``cv2.connectedComponents``), numpy only.

    Args:
        mask: ``(H, W)`` bool, or ``(N, H, W)`` for N independent masks (never
            connected to each other).
        connectivity: 8 (diagonal neighbours touch, SAM's choice) or 4.

    Returns:
        ``labels``: int32 of the mask's shape, 0 outside, components numbered
        1..n in raster order of their first pixel (unique across a stack);
        ``areas``: ``(n + 1,)`` int64 pixel counts, ``areas[0]`` = pixels outside.
    """
    mask = np.asarray(mask, dtype=bool)
    if mask.ndim not in (2, 3):
        raise ValueError(f"expected an (H, W) or (N, H, W) mask, got shape {mask.shape}")
    (rows, starts, ends), component, areas = _components(mask, connectivity)
    labels = _paint_runs(mask.shape, rows, starts, ends, (component + 1).astype(np.int32), np.int32)
    return labels, np.concatenate([[mask.size - int(areas.sum())], areas]).astype(np.int64)


def small_components(mask: NDArray[np.bool_], max_area: int, *, connectivity: int = 8) -> NDArray[np.bool_]:
    """The pixels of ``mask`` that belong to components of at most ``max_area`` pixels.

    Args:
        mask: ``(H, W)`` or ``(N, H, W)`` bool (each of the N separately).
        max_area: largest component size (pixels) that counts as small.

    Returns:
        bool of the mask's shape.
    """
    mask = np.asarray(mask, dtype=bool)
    (rows, starts, ends), component, areas = _components(mask, connectivity)
    small = areas[component] <= max_area
    return _paint_runs(mask.shape, rows[small], starts[small], ends[small])


def remove_small_regions(logits: NDArray[np.float32], max_area: int) -> NDArray[np.float32]:
    """SAM 2's low-res clean-up: fill small holes and remove small specks.

    Holes are 8-connected components of ``logits <= 0`` with at most
    ``max_area`` cells (the outer background too, if it is that small); they
    get :data:`HOLE_FILL_LOGIT`. Specks are components of ``logits > 0`` with
    at most ``max_area`` cells; they get :data:`SPECK_LOGIT` (a mask made only
    of specks becomes empty). Both are found on the logits as given, as SAM 2's
    ``SAM2Transforms.postprocess_masks`` does (it takes both component maps
    from the original mask): a speck is measured without the holes it
    encloses, so filling a hole never saves a speck from removal; the filled
    hole of a removed speck is left as a positive cell, as in SAM 2.

    Args:
        logits: ``(h, w)`` or ``(N, h, w)`` float32 low-res logits.
        max_area: in cells; 0 returns a copy unchanged.

    Returns:
        A new float32 array of the same shape.
    """
    out = np.array(logits, dtype=np.float32)
    if max_area <= 0:
        return out
    holes = small_components(out <= MASK_THRESHOLD, max_area)
    specks = small_components(out > MASK_THRESHOLD, max_area)
    out[holes] = HOLE_FILL_LOGIT
    out[specks] = SPECK_LOGIT
    return out


# ---------------------------------------------------------------- scores and boxes
def stability_scores(logits: NDArray[np.float32], offset: float) -> NDArray[np.float64]:
    """IoU of ``logits > +offset`` and ``logits > -offset`` per mask (SAM's stability score).

    Args:
        logits: ``(N, h, w)`` float32.
        offset: logit offset (>= 0).

    Returns:
        ``(N,)`` float64 in [0, 1]; 0 for a mask that is empty at ``-offset``.
    """
    logits = np.asarray(logits, dtype=np.float32)
    inner = np.count_nonzero((logits > MASK_THRESHOLD + offset).reshape(len(logits), -1), axis=1)
    outer = np.count_nonzero((logits > MASK_THRESHOLD - offset).reshape(len(logits), -1), axis=1)
    return np.divide(inner, outer, out=np.zeros(len(logits)), where=outer > 0)


def box_iou(box: NDArray[np.float64], boxes: NDArray[np.float64]) -> NDArray[np.float64]:
    """IoU of one ``(x0, y0, x1, y1)`` box with ``(N, 4)`` boxes; 0 where the union is empty."""
    ix = np.clip(np.minimum(box[2], boxes[:, 2]) - np.maximum(box[0], boxes[:, 0]), 0, None)
    iy = np.clip(np.minimum(box[3], boxes[:, 3]) - np.maximum(box[1], boxes[:, 1]), 0, None)
    inter = ix * iy
    union = (box[2] - box[0]) * (box[3] - box[1]) + (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1]) - inter
    return np.divide(inter, union, out=np.zeros(len(boxes)), where=union > 0)


def box_nms(boxes: NDArray[np.float64], scores: NDArray[np.float64], iou_thresh: float) -> NDArray[np.intp]:
    """Greedy non-maximum suppression (torchvision ``nms`` semantics).

    Visits boxes by decreasing score (ties: lower index first) and drops every
    box whose IoU with an already kept box is ``> iou_thresh``.

    Args:
        boxes: ``(N, 4)`` ``(x0, y0, x1, y1)``.
        scores: ``(N,)``.
        iou_thresh: in [0, 1]; 1 keeps everything.

    Returns:
        Indices of the kept boxes, best first.
    """
    boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    order = np.argsort(-np.asarray(scores, dtype=np.float64), kind="stable")
    suppressed = np.zeros(len(boxes), bool)
    keep = []
    for i in order:
        if suppressed[i]:
            continue
        keep.append(i)
        suppressed |= box_iou(boxes[i], boxes) > iou_thresh
    return np.asarray(keep, dtype=np.intp)


def cell_boxes(masks: NDArray[np.bool_]) -> NDArray[np.intp]:
    """``(N, 4)`` inclusive cell boxes ``(c0, r0, c1, r1)`` of non-empty ``(N, h, w)`` masks."""
    rows, cols = masks.any(axis=2), masks.any(axis=1)
    h, w = masks.shape[1:]
    r0, c0 = rows.argmax(axis=1), cols.argmax(axis=1)
    r1, c1 = h - 1 - rows[:, ::-1].argmax(axis=1), w - 1 - cols[:, ::-1].argmax(axis=1)
    return np.stack([c0, r0, c1, r1], axis=1)
