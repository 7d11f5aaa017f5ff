"""What the UI shows after an edit besides the picture: the object rows and the candidate thumbnails.

The picture itself is drawn by the page (``sam_demo/static/view/``) from the scene
(:mod:`sam_demo.scene`) and the objects' mask layers (:mod:`sam_demo.layers`); this module holds
the values the service hands to the scene and to the app: which candidate an object shows, the
object list's rows, the candidate thumbnails and the display copy of an image. Pure functions on
values the service hands over; nothing here decodes or caches. Frames: thumbnails are in display
pixels (the display copy, downscaled); prompts are in original pixels.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray
from PIL import Image

from sam_onnx.geometry import DisplayFrame
from sam_onnx.image import UprightImage
from sam_onnx.types import NUM_CANDIDATES, MaskResult

from .editor import Editor, ObjectState
from .layers import Place
from .overlay import (
    DEFAULT_OPACITY,
    THUMBNAIL_SIDE,
    candidate_thumbnails,
    thumbnail_base,
    thumbnail_hw,
)


@dataclass(frozen=True)
class ViewOptions:
    """How masks are drawn: fill opacity in [0, 1] and whether outlines are drawn."""

    opacity: float = DEFAULT_OPACITY
    contour: bool = True


@dataclass(frozen=True)
class ObjectView:
    """One row of the object list."""

    id: int
    name: str
    color: tuple[int, int, int]
    visible: bool
    selected: bool
    has_prompts: bool
    score: float | None          # predicted IoU of the shown candidate
    candidate: int | None        # shown candidate 0..2 (None when no prompts)
    object_score: float | None   # probability that an object is there
    refined: bool = False        # decoded in its refinement crop (sam_onnx.refine)


@dataclass(frozen=True, eq=False)
class View:
    """Everything a UI needs to show after an edit."""

    layers: Mapping[int, tuple[str, Place]]    # object id -> (layer id, where it is) for objects with prompts
    thumbnails: tuple[NDArray[np.uint8], ...]  # the selected object's 3 candidates (empty if none)
    candidate_scores: tuple[float, ...]        # their IoU scores
    chosen_candidate: int | None
    objects: tuple[ObjectView, ...]
    timings_ms: dict[str, float]


def display_images(original: NDArray[np.uint8] | Image.Image | UprightImage,
                   frame: DisplayFrame) -> tuple[NDArray[np.uint8], NDArray[np.uint8]]:
    """The display copy of an upright original image and its thumbnail base (both ``(h, w, 3)`` uint8, read-only).

    ``original``: ``(H, W, 3)`` uint8 in original pixels, the same pixels as an RGB PIL image, or a decoded
    file (:func:`sam_onnx.image.load_upright`) whose stored pixels are resized and then turned upright (the
    small copy is transposed instead of the whole photo; within one grey level of resizing the upright
    pixels). The thumbnail base is made once per image instead of on every click (about 2 ms per click at
    1536 px).
    """
    if isinstance(original, UprightImage):
        h, w = original.stored_hw(frame.display_hw)
        stored = original.stored
        resized = stored if (h, w) == (stored.height, stored.width) else stored.resize((w, h), Image.Resampling.BILINEAR)
        display = np.array(original.turn(resized))
    elif frame.is_identity:
        display = np.array(original)
    else:
        h, w = frame.display_hw
        image = original if isinstance(original, Image.Image) else Image.fromarray(original)
        display = np.asarray(image.resize((w, h), Image.Resampling.BILINEAR))
    display.setflags(write=False)
    small = thumbnail_base(display)
    small.setflags(write=False)
    return display, small


@dataclass(frozen=True)
class Summary:
    """What the object list shows of a decoder result (small; cached apart from the 0.8 MB of logits)."""

    scores: tuple[float, float, float]  # predicted IoU per candidate
    object_score: float                  # probability that an object is there

    @classmethod
    def of(cls, result: MaskResult) -> Summary:
        return cls(tuple(float(s) for s in result.scores), result.object_score)  # type: ignore[arg-type]

    @property
    def best_index(self) -> int:
        """Index of the candidate with the highest predicted IoU, as :attr:`MaskResult.best_index`."""
        return int(np.argmax(self.scores))


def shown_candidate(obj: ObjectState, result: MaskResult | Summary) -> int:
    """The candidate drawn for an object: its choice, else the best-scoring one."""
    return result.best_index if obj.candidate is None else obj.candidate


def object_rows(editor: Editor, summaries: Mapping[int, MaskResult | Summary]) -> tuple[ObjectView, ...]:
    """The object list: one row per object, with the score of the candidate shown."""
    rows = []
    for obj in editor.objects:
        summary = summaries.get(obj.id)
        shown = None if summary is None else shown_candidate(obj, summary)
        rows.append(ObjectView(obj.id, obj.name, obj.rgb, editor.is_visible(obj.id),
                               obj.id == editor.selected_id, summary is not None,
                               None if summary is None else float(summary.scores[shown]), shown,
                               None if summary is None else summary.object_score, obj.crop is not None))
    return tuple(rows)


DRAW_GROUP = 8
"""Objects whose layers are drawn per fair turn; the caller may hand the CPU over between groups."""


REGION_PROBE_SIDE = 256
"""Long side (pixels) of the coarse masks the candidates' region is found on: the logits' own resolution, a box
within 6 display pixels at 1536 (inside :data:`REGION_MARGIN` and the :data:`REGION_MIN_SHARE` square)."""
REGION_MARGIN = 0.25
"""Context around the candidates' union box in their thumbnails: this share of the box's long side on each side."""
REGION_MIN_SHARE = 0.12
"""A thumbnail's region spans at least this share of the image's long side (a tiny object keeps some context)."""
REGION_WHOLE_SHARE = 0.8
"""A region that would span this share of both of the image's sides is the whole image instead."""


def candidates_region(display_hw: tuple[int, int], result: MaskResult) -> tuple[int, int, int, int] | None:
    """Where the candidate thumbnails look: a square around the union of the 3 candidates' masks, in display pixels.

    Args:
        display_hw: ``(h, w)`` of the display copy.
        result: the selected object's decoder result (any geometry, a refine crop's too).

    Returns:
        ``(x0, y0, x1, y1)`` whole display pixels (columns ``x0 .. x1 - 1``), the union box widened by
        :data:`REGION_MARGIN`, at least :data:`REGION_MIN_SHARE` of the long side, squared and moved inside
        the image (cut to a side shorter than the square); ``None`` for the whole image (no mask, or a region
        of nearly all of it).
    """
    dh, dw = display_hw
    probe_hw = thumbnail_hw(display_hw, REGION_PROBE_SIDE)
    boxes = []
    for k in range(NUM_CANDIDATES):
        crop, (row0, col0) = result.mask_crop(k, probe_hw)
        rows, cols = np.flatnonzero(crop.any(axis=1)), np.flatnonzero(crop.any(axis=0))
        if rows.size:
            boxes.append((col0 + cols[0], row0 + rows[0], col0 + cols[-1] + 1, row0 + rows[-1] + 1))
    if not boxes:
        return None
    sy, sx = dh / probe_hw[0], dw / probe_hw[1]  # probe -> display pixels
    x0, y0 = min(b[0] for b in boxes) * sx, min(b[1] for b in boxes) * sy
    x1, y1 = max(b[2] for b in boxes) * sx, max(b[3] for b in boxes) * sy
    side = max(x1 - x0, y1 - y0) * (1 + 2 * REGION_MARGIN)
    side = max(side, REGION_MIN_SHARE * max(dh, dw))
    rw, rh = min(dw, round(side)), min(dh, round(side))
    if rw >= REGION_WHOLE_SHARE * dw and rh >= REGION_WHOLE_SHARE * dh:
        return None
    left = int(min(max(round((x0 + x1 - rw) / 2), 0), dw - rw))
    top = int(min(max(round((y0 + y1 - rh) / 2), 0), dh - rh))
    return left, top, left + rw, top + rh


def _region_masks(result: MaskResult, display_hw: tuple[int, int], region: tuple[int, int, int, int],
                  thumb_hw: tuple[int, int]) -> list[NDArray[np.bool_]]:
    """The 3 candidates' masks over ``region`` (display pixels) at ``thumb_hw``: each computed on the whole image
    scaled so that the region is ``thumb_hw`` (only where the mask can be True), then cut to the region."""
    x0, y0, x1, y1 = region
    th, tw = thumb_hw
    sy, sx = th / (y1 - y0), tw / (x1 - x0)
    full_hw = (max(th, round(display_hw[0] * sy)), max(tw, round(display_hw[1] * sx)))
    top, left = min(round(y0 * sy), full_hw[0] - th), min(round(x0 * sx), full_hw[1] - tw)
    masks = []
    for k in range(NUM_CANDIDATES):
        crop, (row0, col0) = result.mask_crop(k, full_hw)
        out = np.zeros(thumb_hw, dtype=bool)
        r0, c0 = max(row0, top), max(col0, left)
        r1, c1 = min(row0 + crop.shape[0], top + th), min(col0 + crop.shape[1], left + tw)
        if r1 > r0 and c1 > c0:
            out[r0 - top:r1 - top, c0 - left:c1 - left] = crop[r0 - row0:r1 - row0, c0 - col0:c1 - col0]
        masks.append(out)
    return masks


def candidates_view(frame: DisplayFrame, thumbnail_rgb: NDArray[np.uint8], editor: Editor,
                    selected_result: MaskResult | None, display_rgb: NDArray[np.uint8] | None = None,
                    ) -> tuple[tuple[NDArray[np.uint8], ...], tuple[float, ...], int | None]:
    """The selected object's 3 candidate thumbnails, their scores and the one shown (empty without a result).

    With ``display_rgb`` (the ``(h, w, 3)`` uint8 display copy) the thumbnails show the candidates' region
    (:func:`candidates_region`; the same region in all three, so they compare), else the whole image
    (``thumbnail_rgb``: the display copy at thumbnail size). Long side :data:`THUMBNAIL_SIDE` either way.
    """
    selected = editor.selected
    if selected is None or selected_result is None:
        return (), (), None
    color = selected.rgb
    region = None if display_rgb is None else candidates_region(frame.display_hw, selected_result)
    if region is None:
        thumb_hw = thumbnail_hw(frame.display_hw, THUMBNAIL_SIDE)
        masks = [selected_result.mask(k, thumb_hw) for k in range(NUM_CANDIDATES)]
        base = thumbnail_rgb
    else:
        x0, y0, x1, y1 = region
        thumb_hw = thumbnail_hw((y1 - y0, x1 - x0), THUMBNAIL_SIDE)
        base = thumbnail_base(display_rgb[y0:y1, x0:x1], THUMBNAIL_SIDE)
        masks = _region_masks(selected_result, frame.display_hw, region, thumb_hw)
    thumbs = tuple(candidate_thumbnails(base, masks, color, size=THUMBNAIL_SIDE))
    return thumbs, tuple(float(s) for s in selected_result.scores), shown_candidate(selected, selected_result)
