"""Segment everything: automatic mask generation on a point grid, after SAM 2's generator.

The algorithm follows facebookresearch/sam2 ``SAM2AutomaticMaskGenerator``
(``multimask_output=True``, no mask-to-mask refinement):

1. **Crops.** Crop layer 0 is the whole image; layer ``i`` adds ``(2**i)**2``
   overlapping crops, each encoded separately (one encoder run per crop).
2. **Grid.** Each crop gets a ``n x n`` grid of positive points at the cell
   centres, ``x = (i + 0.5) * w / n`` (SAM's ``build_point_grid``), with
   ``n = points_per_side // downscale**layer``.
3. **Decode.** ``batch_size`` points per decoder call (one object per point,
   all sharing one call), 3 candidate masks per point.
4. **Screen** every candidate on its 256 x 256 low-res logits, in SAM 2's order:
   predicted IoU ``> pred_iou_thresh``; optionally (``min_mask_region_area``, off
   by default as in SAM 2) small holes filled and small specks removed (components
   of at most that many low-res cells, 8-connected, both found on the decoder's
   logits; SAM 2's predictor does this on the same low-res logits, with the same
   +-10 logit fill);
   stability score ``>= stability_score_thresh``; boxes touching a crop edge
   (but not the image edge) dropped.
5. **NMS** by box IoU within each crop (score: predicted IoU), then across crops
   preferring masks from smaller crops (score ``1 / crop area``).
6. **Finish**: only the survivors are upsampled to the original resolution,
   and only inside their bounding box (:func:`sam_onnx.postprocess.mask_crop_from_logits`).

Where this differs from SAM 2, and why:

* Stability scores and the NMS boxes are computed on the low-res logits instead
  of on masks upsampled to the crop's full size (CPU speed on large photos).
  Both are ratios or boxes of the same logit surface, but one low-res cell is
  up to 15.6 px of a 4000 px crop, so near the thresholds (stability 0.95, crop
  edge 20 px) a mask can be kept here and dropped there, or the reverse. It lets
  a 12 MP photo cost the same as a 1 MP one until step 6.
* SAM 2 also re-runs its small-region clean-up on the finished full-size masks
  (and NMS after it) when ``min_mask_region_area > 0``; here the clean-up is
  done once, on the low-res logits.
* No mask-to-mask refinement (SAM 2's ``use_m2m``, off by its default too) and
  the presets use 8, 16 and 24 points per side (SAM 2: 32) with
  ``candidates_per_point`` and ``batch_size`` for CPU time.
* ``bbox`` in results and records is COCO's ``[x, y, width, height]`` with the
  width and height counting the mask's pixels (as pycocotools' ``toBbox`` does);
  SAM 2's records hold ``max - min``, one pixel less.

The demo turns every found mask into an object by its grid point and candidate
(:func:`sam_demo.jobs.found_objects`); decoding that prompt again gives exactly
the found mask as long as the clean-up is off and the mask was found on the
whole image (tests/test_everything_app.py). That is why the presets keep
``min_mask_region_area`` at 0; the CLI and the Python API can turn it on, since
they export the found masks themselves.

Frames: points, boxes and masks in results are in **original image pixels**
(``xy`` order for points; boxes ``(x, y, w, h)``, COCO style). Low-res cells
are the decoder's 256 x 256 grid over one crop.

Public API (the app and the CLI drive these)::

    settings = PRESETS["balanced"]
    plan = make_plan(settings, rgb.shape[:2])
    seconds = estimate_seconds(plan, decode_seconds_per_call, encode_seconds, image_encoded=True)
    masks = generate(predictor, rgb, settings, embedding=embedding, progress=cb, cancel=should_stop)
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from itertools import product
from typing import TYPE_CHECKING, Any

import numpy as np
from numpy.typing import NDArray

from . import export
from .errors import SamOnnxError
from .geometry import LOW_RES_SIDE
from .image import as_rgb_uint8
from .masks import box_nms, cell_boxes, remove_small_regions, stability_scores
from .postprocess import MASK_THRESHOLD, mask_crop_from_logits
from .types import NUM_CANDIDATES, ImageEmbedding, Point, Prompts

if TYPE_CHECKING:
    from PIL import Image

    from .predictor import Sam2Predictor

logger = logging.getLogger(__name__)

# ---------------------------------------------------------------- constants
CROP_EDGE_TOLERANCE_PX = 20.0
"""A box side within this many original pixels of a crop side "touches" it (SAM's ``atol``)."""
OUTSIDE_LOGIT = -1000.0
"""Stand-in for low-res cells dropped from a stored logit window (any value <= 0 gives the same mask)."""
WINDOW_MARGIN_CELLS = 1
"""Low-res cells kept around a candidate's positive cells (bilinear reads one neighbour)."""
DEFAULT_BATCH_SIZE = 8
"""Points per decoder call. On 2 CPU cores the decoder's cost is linear in the
batch (20-24 ms per point for batches of 1 to 64; a 16 x 16 grid end to end
takes the same 5.7-7 s with batches of 1 to 32, within the machine's noise;
bench/bench_everything.py). So batching buys nothing on CPU, and 8 keeps a call
near 0.2 s, for smooth progress and quick cancellation, with 6 MB of logits per
call. A GPU provider would favour larger batches."""
OVERHEAD_SECONDS_PER_POINT = 0.002
"""Screening and finishing cost per grid point on the 2-core reference machine
(≈ 0.6 ms per candidate mask with smooth logits, 3 candidates per point; the
final upsampling is a few ms per kept mask), used by :func:`estimate_seconds`."""


# ---------------------------------------------------------------- settings
@dataclass(frozen=True)
class EverythingSettings:
    """Parameters of automatic mask generation (SAM 2's names and meanings).

    Attributes:
        points_per_side: grid points along each side of a crop (layer 0).
        pred_iou_thresh: keep candidates whose predicted IoU is ``>`` this (0 = off).
        stability_score_thresh: keep candidates whose stability score is ``>=`` this (0 = off).
        stability_score_offset: logit offset of the stability score: the IoU of
            the masks thresholded at ``+offset`` and ``-offset``.
        box_nms_thresh: within a crop, drop a mask whose box IoU with a
            better-scoring kept mask is ``>`` this (1 = off).
        min_mask_region_area: fill holes and remove specks (8-connected
            components) of at most this many **low-res cells** in each mask,
            before the stability score, as SAM 2 does (0 = off, SAM 2's
            default; the demo's objects need it off, see the module docstring).
            One cell is 1/65536 of the crop, e.g. 183 px of a 4000 x 3000 photo.
        crop_n_layers: extra crop layers (0 = the whole image only).
        crop_nms_thresh: box IoU above which masks from different crops are
            duplicates (the smaller crop's mask wins).
        crop_overlap_ratio: overlap of neighbouring crops in layer 1, as a
            fraction of the image's short side (scaled down in later layers).
        crop_n_points_downscale_factor: layer ``i`` uses
            ``points_per_side // factor**i`` points per side.
        batch_size: points per decoder call.
        candidates_per_point: how many of the 3 candidate masks of each point
            enter the filters, highest predicted IoU first (SAM 2: all 3).
    """

    points_per_side: int = 16
    pred_iou_thresh: float = 0.8
    stability_score_thresh: float = 0.95
    stability_score_offset: float = 1.0
    box_nms_thresh: float = 0.7
    min_mask_region_area: int = 0
    crop_n_layers: int = 0
    crop_nms_thresh: float = 0.7
    crop_overlap_ratio: float = 512 / 1500
    crop_n_points_downscale_factor: int = 1
    batch_size: int = DEFAULT_BATCH_SIZE
    candidates_per_point: int = NUM_CANDIDATES

    def __post_init__(self) -> None:
        for name in ("points_per_side", "batch_size", "crop_n_points_downscale_factor"):
            if int(getattr(self, name)) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if not 1 <= self.candidates_per_point <= NUM_CANDIDATES:
            raise ValueError(f"candidates_per_point must be 1..{NUM_CANDIDATES}, got {self.candidates_per_point}")
        if self.crop_n_layers < 0 or self.min_mask_region_area < 0:
            raise ValueError("crop_n_layers and min_mask_region_area must be >= 0")
        for name in ("pred_iou_thresh", "stability_score_thresh", "box_nms_thresh", "crop_nms_thresh",
                     "crop_overlap_ratio"):
            value = float(getattr(self, name))
            if not 0.0 <= value <= 1.0:
                raise ValueError(f"{name} must be in [0, 1], got {value}")
        if not (math.isfinite(self.stability_score_offset) and self.stability_score_offset >= 0):
            raise ValueError(f"stability_score_offset must be >= 0, got {self.stability_score_offset}")

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form (for reports)."""
        return {name: getattr(self, name) for name in self.__dataclass_fields__}


PRESETS: dict[str, EverythingSettings] = {
    # 64 points, one encoder run: 12 MP photo ≈ 2.8 s end to end (1.4 s without the encoder).
    "fast": EverythingSettings(points_per_side=8),
    # 256 points: 12 MP photo ≈ 7-8 s end to end (target: <= 20 s).
    "balanced": EverythingSettings(points_per_side=16),
    # 576 points on the whole image plus 4 overlapping crops of 12 x 12 points seen
    # at about twice the resolution (small objects), 5 encoder runs: ≈ 33 s.
    "thorough": EverythingSettings(points_per_side=24, crop_n_layers=1, crop_n_points_downscale_factor=2),
}
"""Named settings for a UI, timed on the 2-core reference machine with the
full-size random-weight stand-in (bench/bench_everything.py; the published
files should time alike, inferred, not measured)."""
DEFAULT_PRESET = "balanced"


# ---------------------------------------------------------------- plan
@dataclass(frozen=True, eq=False)
class CropPlan:
    """One crop of the plan.

    Attributes:
        box: ``(x0, y0, x1, y1)`` in original pixels, end exclusive.
        layer: crop layer (0 = the whole image).
        points_xy: ``(n, 2)`` float64 grid points in **original** pixels, ``x`` fastest.
        decoder_calls: decoder calls needed for these points.
    """

    box: tuple[int, int, int, int]
    layer: int
    points_xy: NDArray[np.float64] = field(repr=False)
    decoder_calls: int

    @property
    def hw(self) -> tuple[int, int]:
        """``(h, w)`` of the crop in original pixels."""
        x0, y0, x1, y1 = self.box
        return y1 - y0, x1 - x0

    @property
    def xywh(self) -> tuple[int, int, int, int]:
        x0, y0, x1, y1 = self.box
        return x0, y0, x1 - x0, y1 - y0


@dataclass(frozen=True, eq=False)
class EverythingPlan:
    """What :func:`generate` will do for one image, known before any model call.

    Attributes:
        image_hw: ``(H, W)`` of the original image.
        settings: the settings planned for.
        crops: crop 0 is the whole image, then the crop layers in order.
    """

    image_hw: tuple[int, int]
    settings: EverythingSettings
    crops: tuple[CropPlan, ...]

    @property
    def decoder_calls(self) -> int:
        """Decoder calls in total (the unit of :func:`generate`'s progress)."""
        return sum(c.decoder_calls for c in self.crops)

    @property
    def encoder_runs(self) -> int:
        """Encoder runs, counting the whole image (skipped when its embedding is given)."""
        return len(self.crops)

    @property
    def points(self) -> int:
        """Grid points in total, over all crops."""
        return sum(len(c.points_xy) for c in self.crops)


def point_grid(n_per_side: int) -> NDArray[np.float64]:
    """SAM's ``build_point_grid``: ``(n*n, 2)`` ``xy`` in [0, 1], cell centres, ``x`` fastest."""
    side = (np.arange(n_per_side, dtype=np.float64) + 0.5) / n_per_side
    ys, xs = np.meshgrid(side, side, indexing="ij")
    return np.stack([xs.ravel(), ys.ravel()], axis=-1)


def crop_boxes(image_hw: tuple[int, int], n_layers: int, overlap_ratio: float) -> list[tuple[tuple[int, ...], int]]:
    """SAM's ``generate_crop_boxes``: ``[((x0, y0, x1, y1), layer), ...]``, the whole image first."""
    h, w = image_hw
    out: list[tuple[tuple[int, ...], int]] = [((0, 0, w, h), 0)]
    short_side = min(h, w)

    def crop_len(orig_len: int, n_crops: int, overlap: int) -> int:
        return int(math.ceil((overlap * (n_crops - 1) + orig_len) / n_crops))

    for layer in range(1, n_layers + 1):
        n_crops = 2 ** layer
        overlap = int(overlap_ratio * short_side * (2 / n_crops))
        crop_w, crop_h = crop_len(w, n_crops, overlap), crop_len(h, n_crops, overlap)
        xs = [int((crop_w - overlap) * i) for i in range(n_crops)]
        ys = [int((crop_h - overlap) * i) for i in range(n_crops)]
        for x0, y0 in product(xs, ys):
            out.append(((x0, y0, min(x0 + crop_w, w), min(y0 + crop_h, h)), layer))
    return out


def make_plan(settings: EverythingSettings, image_hw: tuple[int, int]) -> EverythingPlan:
    """The crops, grid points and model calls of a run (pure, instant).

    Args:
        settings: what to run.
        image_hw: ``(H, W)`` of the original image.
    """
    h, w = (int(v) for v in image_hw)
    if h < 1 or w < 1:
        raise ValueError(f"image size must be positive, got {image_hw}")
    crops = []
    for box, layer in crop_boxes((h, w), settings.crop_n_layers, settings.crop_overlap_ratio):
        x0, y0, x1, y1 = box
        n = max(1, int(settings.points_per_side / settings.crop_n_points_downscale_factor ** layer))
        points = point_grid(n) * np.array([x1 - x0, y1 - y0], np.float64) + np.array([x0, y0], np.float64)
        points.setflags(write=False)
        crops.append(CropPlan(tuple(box), layer, points, -(-len(points) // settings.batch_size)))
    return EverythingPlan((h, w), settings, tuple(crops))


def estimate_seconds(plan: EverythingPlan, decode_seconds_per_call: float, encode_seconds: float, *,
                     image_encoded: bool = False,
                     overhead_seconds_per_point: float = OVERHEAD_SECONDS_PER_POINT) -> float:
    """Up-front run time of a plan from measured speeds.

    Args:
        plan: from :func:`make_plan`.
        decode_seconds_per_call: one decoder call of ``settings.batch_size``
            points. On CPU the decoder's cost is linear in the points, so a
            measured single-click decode time ``t`` gives ``t * batch_size``.
        encode_seconds: one encoder run (including preprocessing).
        image_encoded: the whole image's embedding already exists (the app
            encodes on upload), so only the crops need the encoder.
        overhead_seconds_per_point: screening and finishing per grid point.

    Returns:
        Seconds: encoder runs + decoder calls + screening.
    """
    runs = plan.encoder_runs - (1 if image_encoded else 0)
    return (runs * float(encode_seconds) + plan.decoder_calls * float(decode_seconds_per_call)
            + plan.points * float(overhead_seconds_per_point))


# ---------------------------------------------------------------- results
@dataclass(frozen=True, eq=False)
class EverythingMask:
    """One mask found by :func:`generate`, stored compactly (its bounding-box window).

    Attributes:
        window: ``(h, w)`` bool, read-only: the mask inside :attr:`bbox`.
        bbox: ``(x, y, w, h)`` original pixels, tight around the mask.
        image_hw: ``(H, W)`` of the original image.
        area: mask pixels at the original resolution.
        predicted_iou: the decoder's quality estimate.
        stability_score: see :func:`stability_scores`.
        point_xy: the grid point that produced the mask, original pixels.
        crop_box: ``(x, y, w, h)`` of the crop it was found in, original pixels.
        candidate: which of the point's 3 candidates (0 small .. 2 large).
    """

    window: NDArray[np.bool_] = field(repr=False)
    bbox: tuple[int, int, int, int]
    image_hw: tuple[int, int]
    area: int
    predicted_iou: float
    stability_score: float
    point_xy: tuple[float, float]
    crop_box: tuple[int, int, int, int]
    candidate: int

    @property
    def mask(self) -> NDArray[np.bool_]:
        """The full ``(H, W)`` bool mask at the original size (a new array each call)."""
        out = np.zeros(self.image_hw, bool)
        x, y, w, h = self.bbox
        out[y:y + h, x:x + w] = self.window
        return out

    @property
    def prompts(self) -> Prompts:
        """The mask's prompt as an interactive object: one positive point (refine by adding points)."""
        return Prompts((Point(*self.point_xy),))

    def to_record(self) -> dict[str, Any]:
        """The fields of SAM 2's ``coco_rle`` record: ``segmentation`` (COCO RLE), ``area``, ``bbox``,
        ``predicted_iou``, ``point_coords``, ``stability_score``, ``crop_box`` (both boxes
        ``[x, y, w, h]``), plus ``candidate``. ``bbox`` counts pixels (a 1-pixel mask is 1 x 1, as in
        pycocotools); SAM 2 writes one pixel less for width and height."""
        return {"segmentation": export.encode_rle(self.mask), "area": self.area, "bbox": list(self.bbox),
                "predicted_iou": round(self.predicted_iou, 6), "point_coords": [list(self.point_xy)],
                "stability_score": round(self.stability_score, 6), "crop_box": list(self.crop_box),
                "candidate": self.candidate}


def label_map(masks: Sequence[EverythingMask], image_hw: tuple[int, int]) -> NDArray[np.uint16]:
    """``(H, W)`` uint16 labels: 0 background, ``i + 1`` = ``masks[i]``; later masks are drawn on top.

    :func:`generate` returns masks largest first, so drawing them in order
    keeps small objects on top of the large ones they lie on. Works from the
    windows (no full-size mask per object is made).
    """
    return export.label_map([m.window for m in masks], image_hw, offsets=[m.bbox[:2] for m in masks])


class Cancelled(SamOnnxError):
    """:func:`generate` stopped because ``cancel()`` returned True (no partial result is returned).

    Attributes:
        done_calls: decoder calls finished before stopping.
        total_calls: decoder calls planned.
    """

    def __init__(self, done_calls: int, total_calls: int) -> None:
        super().__init__(f"Cancelled after {done_calls} of {total_calls} decoder calls.")
        self.done_calls = done_calls
        self.total_calls = total_calls


# ---------------------------------------------------------------- screening (one crop)
@dataclass
class _Candidates:
    """Screened candidates of one crop, in generation order (column arrays plus logit windows)."""

    boxes: list[NDArray[np.float64]] = field(default_factory=list)       # (n, 4) xyxy original px
    ious: list[NDArray[np.float64]] = field(default_factory=list)
    stability: list[NDArray[np.float64]] = field(default_factory=list)
    points: list[NDArray[np.float64]] = field(default_factory=list)      # (n, 2) original px
    candidate: list[NDArray[np.intp]] = field(default_factory=list)
    windows: list[tuple[NDArray[np.float32], int, int]] = field(default_factory=list)  # logits, row0, col0

    def arrays(self) -> tuple[NDArray, NDArray, NDArray, NDArray, NDArray]:
        def cat(parts: list, shape: tuple[int, ...], dtype: type) -> NDArray:
            return np.concatenate(parts) if parts else np.zeros(shape, dtype)
        return (cat(self.boxes, (0, 4), np.float64), cat(self.ious, (0,), np.float64),
                cat(self.stability, (0,), np.float64), cat(self.points, (0, 2), np.float64),
                cat(self.candidate, (0,), np.intp))


def _top_candidates(scores: NDArray[np.float32], keep: int) -> NDArray[np.bool_]:
    """``(P, 3)`` bool: each point's ``keep`` highest-scoring candidates (ties: lower index)."""
    if keep >= scores.shape[1]:
        return np.ones(scores.shape, bool)
    rank = np.argsort(np.argsort(-scores, axis=1, kind="stable"), axis=1, kind="stable")
    return rank < keep


def _screen_batch(logits: NDArray[np.float32], scores: NDArray[np.float32], points_xy: NDArray[np.float64],
                  crop: CropPlan, image_hw: tuple[int, int], settings: EverythingSettings, out: _Candidates) -> None:
    """Filter one decoder call's ``(P, 3, 256, 256)`` logits and ``(P, 3)`` scores into ``out``."""
    s = settings
    selected = _top_candidates(scores, s.candidates_per_point) & (scores > s.pred_iou_thresh)
    p_idx, k_idx = np.nonzero(selected)
    if p_idx.size == 0:
        return
    cand = logits[p_idx, k_idx]
    if s.min_mask_region_area > 0:
        cand = remove_small_regions(cand, s.min_mask_region_area)
    stability = stability_scores(cand, s.stability_score_offset)
    masks = cand > MASK_THRESHOLD
    keep = (stability >= s.stability_score_thresh) & masks.any(axis=(1, 2))
    if not keep.any():
        return
    cand, masks, stability, p_idx, k_idx = cand[keep], masks[keep], stability[keep], p_idx[keep], k_idx[keep]
    cells = cell_boxes(masks)
    (x0, y0, _, _), (ch, cw) = crop.box, crop.hw
    n_rows, n_cols = masks.shape[1:]
    boxes = np.stack([x0 + cells[:, 0] * cw / n_cols, y0 + cells[:, 1] * ch / n_rows,
                      x0 + (cells[:, 2] + 1) * cw / n_cols, y0 + (cells[:, 3] + 1) * ch / n_rows], axis=1)
    near_crop = np.isclose(boxes, np.array(crop.box, np.float64), atol=CROP_EDGE_TOLERANCE_PX, rtol=0)
    near_image = np.isclose(boxes, np.array([0, 0, image_hw[1], image_hw[0]], np.float64),
                            atol=CROP_EDGE_TOLERANCE_PX, rtol=0)
    inside = ~(near_crop & ~near_image).any(axis=1)
    for i in np.flatnonzero(inside):
        c0, r0, c1, r1 = cells[i]
        rs, cs = max(0, r0 - WINDOW_MARGIN_CELLS), max(0, c0 - WINDOW_MARGIN_CELLS)
        window = cand[i, rs:r1 + WINDOW_MARGIN_CELLS + 1, cs:c1 + WINDOW_MARGIN_CELLS + 1].copy()
        out.windows.append((window, int(rs), int(cs)))
    out.boxes.append(boxes[inside])
    out.ious.append(scores[p_idx, k_idx][inside].astype(np.float64))
    out.stability.append(stability[inside])
    out.points.append(points_xy[p_idx][inside])
    out.candidate.append(k_idx[inside])


def _finish(window: NDArray[np.float32], row0: int, col0: int, crop: CropPlan) -> tuple[NDArray[np.bool_],
                                                                                          tuple[int, int]] | None:
    """Upsample one kept candidate to original pixels inside its box: (tight window, (x, y)) or None if empty."""
    full = np.full((LOW_RES_SIDE, LOW_RES_SIDE), OUTSIDE_LOGIT, np.float32)
    full[row0:row0 + window.shape[0], col0:col0 + window.shape[1]] = window
    crop_mask, (r, c) = mask_crop_from_logits(full, crop.hw)
    rows, cols = np.flatnonzero(crop_mask.any(axis=1)), np.flatnonzero(crop_mask.any(axis=0))
    if rows.size == 0:
        return None
    tight = crop_mask[rows[0]:rows[-1] + 1, cols[0]:cols[-1] + 1]
    return tight, (crop.box[0] + c + int(cols[0]), crop.box[1] + r + int(rows[0]))


# ---------------------------------------------------------------- the run
def _crop_rgb(image: NDArray[np.uint8] | None, box: tuple[int, int, int, int]) -> NDArray[np.uint8]:
    if image is None:
        raise ValueError("crop layers need the image itself, not only its embedding")
    x0, y0, x1, y1 = box
    return image[y0:y1, x0:x1]


def generate(predictor: Sam2Predictor, image_or_embedding: NDArray[np.uint8] | Image.Image | ImageEmbedding,
             settings: EverythingSettings | None = None, *, embedding: ImageEmbedding | None = None,
             progress: Callable[[int, int], None] | None = None,
             cancel: Callable[[], bool] | None = None) -> list[EverythingMask]:
    """Segment everything: masks for a grid of points, filtered and de-duplicated.

    Args:
        predictor: a :class:`~sam_onnx.predictor.Sam2Predictor` (only its
            ``encode`` and ``decode_many`` are used).
        image_or_embedding: the upright RGB image ``(H, W, 3)`` uint8 (or a
            PIL image), or the whole image's :class:`ImageEmbedding` (then
            ``crop_n_layers`` must be 0).
        settings: default :data:`PRESETS` ``["balanced"]``.
        embedding: the whole image's embedding when an image is given too
            (saves one encoder run).
        progress: called as ``progress(done_calls, total_calls)`` with
            ``done_calls = 0`` first and after every decoder call
            (``total_calls = make_plan(...).decoder_calls``).
        cancel: polled before every encoder run, every decoder call and the
            final upsampling; returning True stops the run.

    Returns:
        The masks, largest area first (ties: higher predicted IoU first), so
        that drawing them in order leaves small objects visible.

    Raises:
        Cancelled: ``cancel()`` returned True. Nothing partial is returned: a
            half-finished grid covers only the top of the image.
        InvalidImageError: the image is not an image.
        ValueError: crop layers were asked for but only an embedding was given.
    """
    settings = PRESETS[DEFAULT_PRESET] if settings is None else settings
    image: NDArray[np.uint8] | None = None
    if isinstance(image_or_embedding, ImageEmbedding):
        embedding = image_or_embedding
    else:
        image = as_rgb_uint8(image_or_embedding)
    if embedding is not None and embedding.geometry.crop is not None:
        raise ValueError("segment everything needs the whole image's embedding, not a crop's")
    image_hw = embedding.original_hw if image is None else image.shape[:2]
    if embedding is not None and embedding.original_hw != tuple(image_hw):
        raise ValueError(f"the embedding is of a {embedding.original_hw} image, the image is {image_hw}")
    plan = make_plan(settings, image_hw)
    if image is None and len(plan.crops) > 1:
        raise ValueError("crop layers need the image itself, not only its embedding")
    total = plan.decoder_calls
    report = progress or (lambda done, total_calls: None)
    should_stop = cancel or (lambda: False)
    done = 0
    report(0, total)
    started = time.perf_counter()
    timings = {"encode": 0.0, "decode": 0.0, "screen": 0.0}
    per_crop: list[tuple[CropPlan, _Candidates, NDArray[np.intp]]] = []
    for index, crop in enumerate(plan.crops):
        if should_stop():
            raise Cancelled(done, total)
        t0 = time.perf_counter()
        crop_embedding = embedding if (index == 0 and embedding is not None) else \
            predictor.encode(_crop_rgb(image, crop.box))
        timings["encode"] += time.perf_counter() - t0
        candidates = _Candidates()
        offset = np.array(crop.box[:2], np.float64)
        for start in range(0, len(crop.points_xy), settings.batch_size):
            if should_stop():
                raise Cancelled(done, total)
            points = crop.points_xy[start:start + settings.batch_size]
            t0 = time.perf_counter()
            results = predictor.decode_many(
                crop_embedding, [Prompts((Point(x, y),)) for x, y in points - offset], max_batch=len(points))
            t1 = time.perf_counter()
            logits = np.stack([r.low_res_logits for r in results])
            scores = np.stack([r.scores for r in results])
            _screen_batch(logits, scores, points, crop, image_hw, settings, candidates)
            timings["decode"] += t1 - t0
            timings["screen"] += time.perf_counter() - t1
            done += 1
            report(done, total)
        boxes, ious = candidates.arrays()[:2]
        per_crop.append((crop, candidates, box_nms(boxes, ious, settings.box_nms_thresh)))
    if should_stop():
        raise Cancelled(done, total)
    t0 = time.perf_counter()
    masks = _merge_and_finish(per_crop, image_hw, settings)
    timings["finish"] = time.perf_counter() - t0
    logger.info("everything %s: %d points, %d masks in %.2f s (%s)", image_hw, plan.points, len(masks),
                time.perf_counter() - started, ", ".join(f"{k} {v:.2f} s" for k, v in timings.items()))
    return masks


def _merge_and_finish(per_crop: list[tuple[CropPlan, _Candidates, NDArray[np.intp]]], image_hw: tuple[int, int],
                      settings: EverythingSettings) -> list[EverythingMask]:
    """NMS across crops (smaller crops win), then upsample the survivors."""
    entries = []  # (crop, candidates, index within the crop)
    boxes, crop_scores = [], []
    for crop, candidates, kept in per_crop:
        crop_boxes_arr = candidates.arrays()[0]
        h, w = crop.hw
        for i in kept:
            entries.append((crop, candidates, int(i)))
            boxes.append(crop_boxes_arr[i])
            crop_scores.append(1.0 / (h * w))
    if len(per_crop) > 1 and entries:
        order = box_nms(np.array(boxes), np.array(crop_scores), settings.crop_nms_thresh)
        entries = [entries[i] for i in order]
    columns = {id(c): c.arrays() for _, c, _ in entries}
    out = []
    for crop, candidates, i in entries:
        window, row0, col0 = candidates.windows[i]
        finished = _finish(window, row0, col0, crop)
        if finished is None:
            continue
        tight, (x, y) = finished
        tight.setflags(write=False)
        _, ious, stability, points, cand = columns[id(candidates)]
        out.append(EverythingMask(tight, (x, y, tight.shape[1], tight.shape[0]), tuple(image_hw),
                                  int(np.count_nonzero(tight)), float(ious[i]), float(stability[i]),
                                  (float(points[i, 0]), float(points[i, 1])), crop.xywh, int(cand[i])))
    out.sort(key=lambda m: (-m.area, -m.predicted_iou))
    return out
