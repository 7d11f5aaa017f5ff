"""Simulated clicks and interactive-segmentation metrics: RITM's protocol (mIoU@k, NoC@85/90).

How the field measures an interactive segmenter (RITM, SamsungLabs/ritm_interactive_segmentation,
``isegm/inference/clicker.py`` and ``utils.py``; SAM and SAM 2 report their 1- and 5-click mIoU the same way):
a simulated user clicks, the model answers with a mask, the user clicks again where the mask is most wrong.

- **The next click** (:func:`next_click`) goes to the pixel farthest from the boundary of the errors: the exact
  Euclidean distance of every false-negative pixel (object, not in the mask) to the nearest pixel outside
  the false negatives, and likewise for the false positives, with the image border counting as outside.
  Whichever of the two error kinds holds the deeper pixel wins; a false negative makes a positive click, a
  false positive a negative one (a tie goes to the false positives, as in RITM). Ties between pixels go to the
  first in row-major order (smallest ``y``, then smallest ``x``). A pixel already clicked is never clicked
  again. The first click, with an empty mask, is therefore the object's deepest interior pixel.
- **Every click is kept**: the model sees all clicks so far each time (:func:`simulate`), up to
  :data:`MAX_CLICKS` (20, RITM's setting). Like RITM's evaluation, a session stops once the IoU reaches the
  highest target (90 %): the user has what they wanted, and mIoU@k of a later k repeats the IoU they stopped
  at. ``targets=()`` clicks the whole budget instead (mIoU@k measured at every k, as SAM's click curves).
- **Metrics** (:func:`summarise`): mIoU@k = mean IoU after k clicks; NoC@t = clicks needed to reach IoU >= t,
  counted as :data:`MAX_CLICKS` when never reached (RITM's ``compute_noc_metric``), with the number of
  objects that never reached it beside it.
- **Ignored pixels** (GrabCut's and Berkeley's grey band, value 128 in their masks) count in neither the IoU nor
  the errors, and are never clicked.

Frames: masks are ``(H, W)`` bool arrays in original pixels of the upright image; clicks are pixel indices
``(x, y)`` in the same frame (a pixel's centre at its integer index, as everywhere in ``sam_onnx``).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from .types import NEGATIVE, POSITIVE, ImageEmbedding, Point, Prompts

MAX_CLICKS = 20
"""Clicks per object before giving up (RITM's evaluation default; NoC counts a miss as this many)."""
IOU_THRESHOLDS = (0.85, 0.90)
"""The NoC targets the field reports (NoC@85, NoC@90)."""
MIOU_CLICKS = (1, 3, 5)
"""Clicks after which the mean IoU is reported (mIoU@1, @3, @5)."""

Segmenter = Callable[[Sequence["Click"]], np.ndarray]
"""A model under test: every click so far, in order -> the ``(H, W)`` bool mask it predicts now."""


@dataclass(frozen=True)
class Click:
    """One simulated click.

    Attributes:
        x: column of the clicked pixel (original pixels).
        y: row of the clicked pixel.
        positive: ``True`` to add the pixel's region (the mask missed it), ``False`` to remove it.
    """

    x: int
    y: int
    positive: bool

    def point(self) -> Point:
        """The click as a prompt point (label 1 or 0)."""
        return Point(float(self.x), float(self.y), POSITIVE if self.positive else NEGATIVE)


def _check_masks(gt: np.ndarray, pred: np.ndarray | None, ignore: np.ndarray | None) -> None:
    if gt.ndim != 2 or gt.dtype != bool:
        raise ValueError(f"the true mask must be a 2-D bool array, got {gt.dtype} {gt.shape}")
    for name, other in (("predicted mask", pred), ("ignore mask", ignore)):
        if other is not None and (other.shape != gt.shape or other.dtype != bool):
            raise ValueError(f"the {name} must be a bool array of the true mask's shape {gt.shape}, "
                             f"got {other.dtype} {other.shape}")


def _depth(region: np.ndarray) -> np.ndarray:
    """Euclidean distance of every pixel of ``region`` to the nearest pixel outside it, the border counting
    as outside (0 outside the region): float64, ``region``'s shape."""
    try:
        from scipy.ndimage import distance_transform_edt
    except ImportError as exc:  # an optional dependency of the wrapper (pip install sam-onnx[clicks])
        raise ImportError("sam_onnx.clicks needs scipy: pip install scipy (or sam-onnx[clicks])") from exc

    depth = np.zeros(region.shape, np.float64)
    rows, cols = np.flatnonzero(region.any(axis=1)), np.flatnonzero(region.any(axis=0))
    if rows.size == 0:
        return depth
    # Only the region's bounding box: every pixel of the box's one-pixel frame is outside the region (or beyond
    # the border), and clamping any outside pixel to that frame brings it no farther, so this is exact.
    y0, y1, x0, x1 = rows[0], rows[-1] + 1, cols[0], cols[-1] + 1
    depth[y0:y1, x0:x1] = distance_transform_edt(np.pad(region[y0:y1, x0:x1], 1))[1:-1, 1:-1]
    return depth


def next_click(gt: np.ndarray, pred: np.ndarray | None, *, ignore: np.ndarray | None = None,
               clicked: Sequence[Click] = ()) -> Click | None:
    """Where RITM's simulated user clicks next.

    Args:
        gt: ``(H, W)`` bool, the true object.
        pred: ``(H, W)`` bool, the current mask (``None`` = nothing yet: the first click).
        ignore: ``(H, W)`` bool, pixels that count nowhere (``None`` = none).
        clicked: earlier clicks; their pixels are not clicked again.

    Returns:
        The click, or ``None`` when no error pixel is left to click (the mask is right everywhere that
        counts, or every error pixel has been clicked).
    """
    _check_masks(gt, pred, ignore)
    pred = np.zeros_like(gt) if pred is None else pred
    valid = ~ignore if ignore is not None else np.ones_like(gt)
    missed = gt & ~pred & valid
    extra = pred & ~gt & valid
    depth_missed, depth_extra = _depth(missed), _depth(extra)
    for click in clicked:
        depth_missed[click.y, click.x] = depth_extra[click.y, click.x] = 0.0
    deepest_missed, deepest_extra = float(depth_missed.max()), float(depth_extra.max())
    if max(deepest_missed, deepest_extra) <= 0.0:
        return None
    positive = deepest_missed > deepest_extra
    depth, deepest = (depth_missed, deepest_missed) if positive else (depth_extra, deepest_extra)
    y, x = np.unravel_index(int(np.argmax(depth == deepest)), depth.shape)  # first in row-major order
    return Click(int(x), int(y), positive)


def iou(gt: np.ndarray, pred: np.ndarray, *, ignore: np.ndarray | None = None) -> float:
    """Intersection over union of ``pred`` with ``gt`` over the pixels not ignored (RITM's ``get_iou``).

    Both empty counts as 1.0 (nothing to find, nothing found).
    """
    _check_masks(gt, pred, ignore)
    if ignore is not None:
        gt, pred = gt & ~ignore, pred & ~ignore
    union = int(np.count_nonzero(gt | pred))
    return 1.0 if union == 0 else int(np.count_nonzero(gt & pred)) / union


@dataclass(frozen=True)
class Trial:
    """One object's simulated session.

    Attributes:
        clicks: the clicks made, in order.
        ious: ``ious[k]`` is the IoU after ``k + 1`` clicks (one per click).
        max_clicks: the click budget the trial ran with.
        ended: why it stopped: ``"target"`` (the highest target reached),
            ``"perfect"`` (no error pixel left to click), ``"budget"`` (``max_clicks`` clicks made).
    """

    clicks: tuple[Click, ...]
    ious: tuple[float, ...]
    max_clicks: int = MAX_CLICKS
    ended: str = "budget"

    def iou_at(self, k: int) -> float:
        """IoU after ``k`` clicks (``k >= 1``). A trial that ended early keeps its last mask: the user stopped
        there (every target met, or no error pixel left to click), so later clicks were not simulated."""
        if k < 1 or not self.ious:
            raise ValueError(f"k must be at least 1 and the trial must have a click, got k={k}")
        return self.ious[min(k, len(self.ious)) - 1]

    def noc(self, threshold: float) -> int:
        """Clicks needed to reach IoU >= ``threshold``; ``max_clicks`` when never reached (RITM's rule)."""
        for k, value in enumerate(self.ious, start=1):
            if value >= threshold:
                return k
        return self.max_clicks

    def reached(self, threshold: float) -> bool:
        return any(value >= threshold for value in self.ious)


def simulate(gt: np.ndarray, segment: Segmenter, *, ignore: np.ndarray | None = None,
             max_clicks: int = MAX_CLICKS, targets: Sequence[float] = IOU_THRESHOLDS,
             min_clicks: int = 1) -> Trial:
    """Click, predict, score, repeat: one object's session with RITM's simulated user.

    Args:
        gt: ``(H, W)`` bool, the true object (must not be empty).
        segment: the model under test (:data:`Segmenter`); called once per click with all clicks so far.
        ignore: ``(H, W)`` bool, pixels that count nowhere.
        max_clicks: the click budget.
        targets: stop once the IoU has reached the highest of these (and ``min_clicks`` clicks were made), as
            RITM's evaluation does; pass ``()`` to always use the whole budget.
        min_clicks: clicks made at least, whatever the IoU (RITM: 1).

    Returns:
        The :class:`Trial`.

    Raises:
        ValueError: bad masks, an empty object, or a mask of the wrong shape from ``segment``.
    """
    _check_masks(gt, None, ignore)
    if not np.any(gt & ~ignore if ignore is not None else gt):
        raise ValueError("the true mask is empty: there is nothing to click")
    if max_clicks < 1:
        raise ValueError(f"max_clicks must be at least 1, got {max_clicks}")
    stop_at = max(targets) if targets else math.inf
    clicks: list[Click] = []
    ious: list[float] = []
    pred: np.ndarray | None = None
    ended = "budget"
    while len(clicks) < max_clicks:
        click = next_click(gt, pred, ignore=ignore, clicked=clicks)
        if click is None:
            ended = "perfect"
            break
        clicks.append(click)
        pred = np.asarray(segment(tuple(clicks)))
        if pred.shape != gt.shape or pred.dtype != bool:
            raise ValueError(f"the model returned a {pred.dtype} mask of shape {pred.shape}; "
                             f"expected bool {gt.shape}")
        ious.append(iou(gt, pred, ignore=ignore))
        if ious[-1] >= stop_at and len(clicks) >= min_clicks:
            ended = "target"
            break
    return Trial(tuple(clicks), tuple(ious), max_clicks, ended)


@dataclass(frozen=True)
class Summary:
    """The field's numbers over a set of objects.

    Attributes:
        objects: how many objects were simulated.
        miou: ``{k: mean IoU after k clicks}`` for each k of :data:`MIOU_CLICKS`.
        noc: ``{t: mean clicks to reach IoU >= t}`` for each t of :data:`IOU_THRESHOLDS`.
        missed: ``{t: objects that never reached t within the budget}`` (RITM's ">=20@85%").
        clicks: clicks simulated in all (each one decoder call of the model under test).
    """

    objects: int
    miou: dict[int, float]
    noc: dict[float, float]
    missed: dict[float, int]
    clicks: int

    def to_dict(self) -> dict[str, object]:
        return {"objects": self.objects, "clicks": self.clicks,
                **{f"mIoU@{k}": round(v, 4) for k, v in self.miou.items()},
                **{f"NoC@{round(t * 100)}": round(v, 2) for t, v in self.noc.items()},
                **{f">={MAX_CLICKS}@{round(t * 100)}": v for t, v in self.missed.items()}}


def summarise(trials: Sequence[Trial], *, ks: Sequence[int] = MIOU_CLICKS,
              thresholds: Sequence[float] = IOU_THRESHOLDS) -> Summary:
    """mIoU@k and NoC@t over ``trials`` (at least one).

    Raises:
        ValueError: no trials.
    """
    if not trials:
        raise ValueError("no trials to summarise")
    return Summary(
        objects=len(trials),
        miou={k: float(np.mean([t.iou_at(k) for t in trials])) for k in ks},
        noc={t: float(np.mean([trial.noc(t) for trial in trials])) for t in thresholds},
        missed={t: sum(not trial.reached(t) for trial in trials) for t in thresholds},
        clicks=sum(len(t.clicks) for t in trials),
    )


def predictor_segmenter(predictor, embedding: ImageEmbedding) -> Segmenter:
    """The :data:`Segmenter` of a :class:`~sam_onnx.Sam2Predictor` on one encoded image.

    Every call decodes all clicks as one object's points and returns the best-scoring candidate at the
    original resolution, as the app shows it (the exported graphs always give 3 candidates and take no
    previous mask; see docs/model-io.md).
    """
    def segment(clicks: Sequence[Click]) -> np.ndarray:
        prompts = Prompts(tuple(click.point() for click in clicks))
        return predictor.decode(embedding, prompts).best_mask

    return segment
