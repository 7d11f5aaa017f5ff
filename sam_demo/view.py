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
from sam_onnx.types import NUM_CANDIDATES, MaskResult

from .editor import Editor, ObjectState
from .layers import Layer
from .overlay import (
    DEFAULT_OPACITY,
    THUMBNAIL_SIDE,
    candidate_thumbnails,
    color_for,
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

    layers: Mapping[int, tuple[str, Layer]]    # object id -> (layer id, layer) for objects with prompts
    thumbnails: tuple[NDArray[np.uint8], ...]  # the selected object's 3 candidates (empty if none)
    candidate_scores: tuple[float, ...]        # their IoU scores
    chosen_candidate: int | None
    objects: tuple[ObjectView, ...]
    timings_ms: dict[str, float]


def display_images(rgb: NDArray[np.uint8], frame: DisplayFrame, *,
                   image: Image.Image | None = None) -> tuple[NDArray[np.uint8], NDArray[np.uint8]]:
    """The display copy of an upright original ``(H, W, 3)`` uint8 image and its thumbnail base (both read-only).

    The thumbnail base is made once per image instead of on every click (about 2 ms per click at 1536 px).
    ``image`` is ``rgb`` as a PIL image if the caller has one (:func:`sam_onnx.preprocess.as_pil`).
    """
    if frame.is_identity:
        display = np.array(rgb)
    else:
        h, w = frame.display_hw
        display = np.asarray((image or Image.fromarray(rgb)).resize((w, h), Image.Resampling.BILINEAR))
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
        rows.append(ObjectView(obj.id, obj.name, color_for(obj.color_index), editor.is_visible(obj.id),
                               obj.id == editor.selected_id, summary is not None,
                               None if summary is None else float(summary.scores[shown]), shown,
                               None if summary is None else summary.object_score, obj.crop is not None))
    return tuple(rows)


DRAW_GROUP = 8
"""Objects whose layers are drawn per fair turn; the caller may hand the CPU over between groups."""


def candidates_view(frame: DisplayFrame, thumbnail_rgb: NDArray[np.uint8], editor: Editor,
                    selected_result: MaskResult | None) -> tuple[tuple[NDArray[np.uint8], ...], tuple[float, ...],
                                                                 int | None]:
    """The selected object's 3 candidate thumbnails, their scores and the one shown (empty without a result)."""
    selected = editor.selected
    if selected is None or selected_result is None:
        return (), (), None
    thumb_hw = thumbnail_hw(frame.display_hw, THUMBNAIL_SIDE)
    thumbs = tuple(candidate_thumbnails(thumbnail_rgb, [selected_result.mask(k, thumb_hw)
                                                        for k in range(NUM_CANDIDATES)],
                                        color_for(selected.color_index), size=THUMBNAIL_SIDE))
    return thumbs, tuple(float(s) for s in selected_result.scores), shown_candidate(selected, selected_result)
