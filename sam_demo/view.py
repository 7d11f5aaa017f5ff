"""What the UI shows after an edit: the overlay, the object rows and the candidate thumbnails.

Pure drawing on values the service hands over (the display image, the editor,
the decoder results); nothing here decodes or caches. Frames: everything drawn
is in **display pixels**; prompts arrive in original pixels and are converted
once, through the image's :class:`~sam_onnx.geometry.DisplayFrame`.

Drawing is split so that an edit costs what it changes, not the number of
objects. The *background* (:func:`draw_background`) holds every visible object
except the selected one, drawn as :func:`sam_demo.overlay.render_overlay` draws
them; it changes only when those objects or the view options change, and the
service caches it. The overlay (:func:`compose`) is the background with the
selected object drawn on top: its fill, then the other objects' outlines and
markers again (so none is ever hidden under the selected fill), then its own
halo, outline and markers, then a half-drawn box's corner. A click on the
selected object therefore redraws one object, whatever the others number.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray
from PIL import Image

from sam_onnx.geometry import DisplayFrame
from sam_onnx.strokes import in_frame, paint_crop
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
    refined: bool = False        # decoded in its refinement crop (sam_onnx.refine)


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


def object_crop(obj: ObjectState, result: MaskResult, frame: DisplayFrame) -> tuple[NDArray[np.bool_], tuple[int, int]]:
    """The mask an object shows, in display pixels, cropped: its shown candidate, then its strokes.

    Returns:
        ``(crop, (row0, col0))`` as :meth:`sam_onnx.types.MaskResult.mask_crop`.
    """
    crop, offset = result.mask_crop(shown_candidate(obj, result), frame.display_hw)
    if obj.strokes:
        crop, offset = paint_crop(np.array(crop), offset, in_frame(obj.strokes, frame), frame.display_hw)
    return crop, offset


def mask_layer(obj: ObjectState, result: MaskResult, frame: DisplayFrame, *, selected: bool) -> MaskLayer:
    """One object's mask (cropped to its extent, strokes applied) and markers, in display pixels."""
    crop, offset = object_crop(obj, result, frame)
    return MaskLayer.from_crop(crop, offset, frame.display_hw, color=color_for(obj.color_index), selected=selected,
                               points=_points(obj, frame), box=_box(obj, frame))


def _points(obj: ObjectState, frame: DisplayFrame) -> tuple[tuple[float, float, int], ...]:
    return tuple((*frame.to_display_xy((p.x, p.y)).tolist(), p.label) for p in obj.prompts.points)


def _box(obj: ObjectState, frame: DisplayFrame) -> tuple[float, float, float, float] | None:
    if obj.prompts.box is None:
        return None
    b = obj.prompts.box
    return tuple(frame.to_display_xy([[b.x0, b.y0], [b.x1, b.y1]]).ravel().tolist())  # type: ignore[return-value]


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


def background_objects(editor: Editor) -> list[ObjectState]:
    """The objects the background holds: visible, with prompts, not selected; in list order (later on top)."""
    return [o for o in editor.objects
            if o.id != editor.selected_id and editor.is_visible(o.id) and not o.prompts.is_empty]


def drawn_selected(editor: Editor) -> ObjectState | None:
    """The selected object if it is drawn on top of the background (visible, with prompts)."""
    obj = editor.selected
    if obj is None or not editor.is_visible(obj.id) or obj.prompts.is_empty:
        return None
    return obj


def background_key(objects: Sequence[ObjectState], options: ViewOptions) -> tuple:
    """Everything the background's pixels depend on besides the image: each object's prompts, choice, colour,
    refinement crop and strokes."""
    return (options, tuple((o.prompts, o.candidate, o.color_index, o.crop, o.strokes) for o in objects))


@dataclass(frozen=True, eq=False)
class Background:
    """The display image with every background object drawn (see the module docstring).

    Attributes:
        fills: ``(h, w, 3)`` uint8: the objects' fills only.
        full: ``(h, w, 3)`` uint8: fills, outlines, boxes and points (what the user sees of them).
        decorations: ``(h, w)`` bool where ``full`` differs from ``fills`` (outlines and markers),
            or ``None`` when there is nothing drawn (then all three are the display image itself).
    """

    fills: NDArray[np.uint8]
    full: NDArray[np.uint8]
    decorations: NDArray[np.bool_] | None

    @property
    def nbytes(self) -> int:
        if self.decorations is None:
            return 0
        return self.fills.nbytes + self.full.nbytes + self.decorations.nbytes


DRAW_GROUP = 8
"""Objects drawn per call while building a background; the caller may hand the CPU over between groups."""


def draw_background(display_rgb: NDArray[np.uint8], frame: DisplayFrame, objects: Sequence[ObjectState],
                    results: Mapping[int, MaskResult], options: ViewOptions,
                    share: Callable[[], None] = lambda: None) -> Background:
    """Draw ``objects`` (none selected) on the display image, exactly as ``render_overlay`` would, in groups.

    ``render_overlay`` draws every fill, then every outline, then every box,
    then every point; here each phase is drawn :data:`DRAW_GROUP` objects at a
    time and ``share()`` is called between groups (a fair-share turn of the
    CPU), which gives the same pixels.
    """
    if not objects:
        return Background(display_rgb, display_rgb, None)
    hw = frame.display_hw
    empty = np.zeros((0, 0), dtype=bool)
    packed = []  # each mask crop once (bit-packed: a full-image crop at 1536 px is 220 kB instead of 1.8 MB)
    fills = display_rgb
    for start in range(0, len(objects), DRAW_GROUP):
        layers = []
        for obj in objects[start:start + DRAW_GROUP]:
            crop, offset = object_crop(obj, results[obj.id], frame)
            packed.append((np.packbits(crop, axis=None), crop.shape, offset))
            layers.append(MaskLayer.from_crop(crop, offset, hw, color=color_for(obj.color_index)))
        fills = render_overlay(fills, layers, opacity=options.opacity, contour=False)
        share()
    full = fills
    if options.contour:
        for start in range(0, len(objects), DRAW_GROUP):
            layers = [MaskLayer.from_crop(_unpack(*packed[start + i]), packed[start + i][2], hw,
                                          color=color_for(obj.color_index))
                      for i, obj in enumerate(objects[start:start + DRAW_GROUP])]
            full = render_overlay(full, layers, opacity=0.0, contour=True)
            share()
    for phase in ("box", "points"):
        for start in range(0, len(objects), DRAW_GROUP):
            layers = [MaskLayer.from_crop(empty, (0, 0), hw, color=color_for(obj.color_index),
                                          points=_points(obj, frame) if phase == "points" else (),
                                          box=_box(obj, frame) if phase == "box" else None)
                      for obj in objects[start:start + DRAW_GROUP]]
            full = render_overlay(full, layers, opacity=0.0, contour=False)
            share()
    decorations = np.any(full != fills, axis=2)
    for array in (fills, full, decorations):
        array.setflags(write=False)
    return Background(fills, full, decorations)


def _unpack(bits: NDArray[np.uint8], shape: tuple[int, int], offset: tuple[int, int]) -> NDArray[np.bool_]:
    return np.unpackbits(bits, count=shape[0] * shape[1]).reshape(shape).astype(bool)


def compose(background: Background, frame: DisplayFrame, editor: Editor, selected_result: MaskResult | None,
            options: ViewOptions = ViewOptions()) -> NDArray[np.uint8]:
    """The overlay: the background, the selected object on top, then a half-drawn box's first corner.

    Args:
        background: from :func:`draw_background` for :func:`background_objects` of ``editor``.
        frame: original ↔ display pixel mapping of the image.
        editor: the user's objects; prompts in original pixels.
        selected_result: the decoder result of :func:`drawn_selected` (``None`` if nothing is drawn on top).
        options: opacity and outlines.

    Returns:
        A new ``(h, w, 3)`` uint8 display image.
    """
    pending = None
    if editor.pending_corner is not None:
        pending = tuple(frame.to_display_xy(editor.pending_corner).tolist())
    obj = drawn_selected(editor)
    if obj is None or selected_result is None:
        return render_overlay(background.full, [], pending_corner=pending)
    layer = mask_layer(obj, selected_result, frame, selected=True)
    fill_only = MaskLayer.from_crop(layer.mask, layer.offset, frame.display_hw, color=layer.color)
    out = render_overlay(background.fills, [fill_only], opacity=options.opacity, contour=False)
    if background.decorations is not None:
        np.copyto(out, background.full, where=background.decorations[..., None])
    return render_overlay(out, [layer], opacity=0.0, contour=options.contour, pending_corner=pending)


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


def draw(display_rgb: NDArray[np.uint8], thumbnail_rgb: NDArray[np.uint8], frame: DisplayFrame, editor: Editor,
         results: Mapping[int, MaskResult], options: ViewOptions = ViewOptions()) -> View:
    """Everything at once, from scratch: the reference for the service's cached, incremental drawing.

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
    background = draw_background(display_rgb, frame, background_objects(editor), results, options)
    selected = editor.selected
    selected_result = results.get(selected.id) if selected is not None else None
    overlay = compose(background, frame, editor, selected_result, options)
    thumbs, scores, chosen = candidates_view(frame, thumbnail_rgb, editor, selected_result)
    return View(overlay, thumbs, scores, chosen, object_rows(editor, results), {})
