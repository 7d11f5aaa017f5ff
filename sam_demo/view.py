"""What the UI shows after an edit: the overlay, the object rows and the candidate thumbnails.

Pure drawing on values the service hands over (the display image, the editor,
the decoder results); nothing here decodes or caches. Frames: everything drawn
is in **display pixels**; prompts arrive in original pixels and are converted
once, through the image's :class:`~sam_onnx.geometry.DisplayFrame`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray
from PIL import Image

from sam_onnx.geometry import DisplayFrame
from sam_onnx.postprocess import mask_crop_from_logits
from sam_onnx.types import NUM_CANDIDATES, MaskResult

from .editor import Editor, ObjectState
from .overlay import (
    DEFAULT_OPACITY,
    THUMBNAIL_SIDE,
    MaskLayer,
    candidate_thumbnails,
    color_for,
    render_overlay,
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


@dataclass(frozen=True, eq=False)
class View:
    """Everything a UI needs to show after an edit."""

    overlay: NDArray[np.uint8]                 # (h, w, 3) display image with masks and markers
    thumbnails: tuple[NDArray[np.uint8], ...]  # the selected object's 3 candidates (empty if none)
    candidate_scores: tuple[float, ...]        # their IoU scores
    chosen_candidate: int | None
    objects: tuple[ObjectView, ...]
    timings_ms: dict[str, float]


def display_images(rgb: NDArray[np.uint8], frame: DisplayFrame) -> tuple[NDArray[np.uint8], NDArray[np.uint8]]:
    """The display copy of an upright original ``(H, W, 3)`` uint8 image and its thumbnail base (both read-only).

    The thumbnail base is made once per image instead of on every click (about 2 ms per click at 1536 px).
    """
    if frame.is_identity:
        display = np.array(rgb)
    else:
        h, w = frame.display_hw
        display = np.asarray(Image.fromarray(rgb).resize((w, h), Image.Resampling.BILINEAR))
    display.setflags(write=False)
    small = thumbnail_base(display)
    small.setflags(write=False)
    return display, small


def shown_candidate(obj: ObjectState, result: MaskResult) -> int:
    """The candidate drawn for an object: its choice, else the best-scoring one."""
    return result.best_index if obj.candidate is None else obj.candidate


def mask_layer(obj: ObjectState, result: MaskResult, frame: DisplayFrame, *, selected: bool) -> MaskLayer:
    """One object's mask (cropped to its extent) and markers, in display pixels."""
    candidate = shown_candidate(obj, result)
    crop, offset = mask_crop_from_logits(result.low_res_logits[candidate], frame.display_hw)
    points = tuple((*frame.to_display_xy((p.x, p.y)).tolist(), p.label) for p in obj.prompts.points)
    box = None
    if obj.prompts.box is not None:
        b = obj.prompts.box
        box = tuple(frame.to_display_xy([[b.x0, b.y0], [b.x1, b.y1]]).ravel().tolist())
    return MaskLayer.from_crop(crop, offset, frame.display_hw, color=color_for(obj.color_index), selected=selected,
                               points=points, box=box)


def object_rows(editor: Editor, results: Mapping[int, MaskResult]) -> tuple[ObjectView, ...]:
    """The object list: one row per object, with the score of the candidate shown."""
    rows = []
    for obj in editor.objects:
        result = results.get(obj.id)
        shown = None if result is None else shown_candidate(obj, result)
        rows.append(ObjectView(obj.id, obj.name, color_for(obj.color_index), editor.is_visible(obj.id),
                               obj.id == editor.selected_id, result is not None,
                               None if result is None else float(result.scores[shown]), shown,
                               None if result is None else result.object_score))
    return tuple(rows)


def draw(display_rgb: NDArray[np.uint8], thumbnail_rgb: NDArray[np.uint8], frame: DisplayFrame, editor: Editor,
         results: Mapping[int, MaskResult], options: ViewOptions = ViewOptions()) -> View:
    """The overlay, object rows and the selected object's candidate thumbnails.

    Args:
        display_rgb: ``(h, w, 3)`` uint8 display image (``frame.display_hw``).
        thumbnail_rgb: the display image at thumbnail size (:func:`display_images`).
        frame: original ↔ display pixel mapping of the image.
        editor: the user's objects; prompts in original pixels.
        results: decoder results by object id (objects without prompts are absent).
        options: opacity and outlines.

    Returns:
        A :class:`View`; ``timings_ms`` is left for the caller to fill.
    """
    selected_id = editor.selected_id
    layers = [mask_layer(obj, results[obj.id], frame, selected=obj.id == selected_id)
              for obj in editor.objects if editor.is_visible(obj.id) and obj.id in results]
    pending = None
    if editor.pending_corner is not None:
        pending = tuple(frame.to_display_xy(editor.pending_corner).tolist())
    overlay = render_overlay(display_rgb, layers, opacity=options.opacity, contour=options.contour,
                             pending_corner=pending)
    thumbs: tuple[NDArray[np.uint8], ...] = ()
    scores: tuple[float, ...] = ()
    chosen = None
    selected = editor.selected
    if selected is not None and selected.id in results:
        result = results[selected.id]
        thumb_hw = thumbnail_hw(frame.display_hw, THUMBNAIL_SIDE)
        thumbs = tuple(candidate_thumbnails(thumbnail_rgb, [result.mask(k, thumb_hw) for k in range(NUM_CANDIDATES)],
                                            color_for(selected.color_index), size=THUMBNAIL_SIDE))
        scores = tuple(float(s) for s in result.scores)
        chosen = shown_candidate(selected, result)
    return View(overlay, thumbs, scores, chosen, object_rows(editor, results), {})
