"""One user's edits of one image: objects, their prompts, undo/redo. Pure, immutable values.

A UI keeps one :class:`Editor` per user and replaces it with the value each
operation returns; an operation that fails raises :class:`InvalidPromptError`
and the old value stays valid, so a bad click never loses work. All
coordinates are **original image pixels**.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace

from sam_onnx.errors import InvalidPromptError
from sam_onnx.geometry import CropFrame
from sam_onnx.strokes import Stroke
from sam_onnx.types import NEGATIVE, NUM_CANDIDATES, POSITIVE, Box, Point, Prompts, short_repr

from .overlay import RGB, color_for, palette

MAX_OBJECTS = 256
"""Objects per image (segment-everything can add many at once)."""
MAX_HISTORY = 200
"""Undo steps kept."""
MAX_STROKES_PER_OBJECT = 100
"""Brush/eraser strokes one object keeps (each undoable on its own)."""
MAX_STROKE_POINTS_PER_IMAGE = 4000
"""Stroke points (after simplification) all objects of an image keep together: with 256 objects of 32
points, a prompts file then still fits :data:`sam_demo.limits.MAX_JSON_VALUES` (tests/test_bundle.py)."""
MAX_NAME_LENGTH = 60
AUTO_NAME_PREFIX = "Auto"
"""Objects added by segment everything are named "Auto 7", "Auto 8", ..."""
HEX_COLOR = re.compile(r"#[0-9a-fA-F]{6}")
"""The only colour form accepted from a user or a file: ``#rrggbb`` (what ``<input type="color">`` sends)."""


@dataclass(frozen=True)
class ObjectState:
    """One object the user segments.

    Attributes:
        id: stable identifier (1, 2, ...), never reused within one editor.
        name: shown in the object list.
        prompts: its clicks and box.
        color_index: index into the overlay palette.
        color: the colour the user chose, ``(r, g, b)`` uint8 values; ``None`` = the palette colour of
            ``color_index`` (never equal to it: :meth:`Editor.set_color` stores that as ``None``).
        candidate: the chosen of the 3 candidate masks; ``None`` = the best-scoring one.
        crop: where the object was refined (:mod:`sam_onnx.refine`): its prompts are decoded on this
            crop's embedding, at the crop's resolution, and its mask is empty outside it; ``None`` =
            decoded on the whole image.
        strokes: the object's own edit layer: brush and eraser strokes in original pixels
            (:mod:`sam_onnx.strokes`), applied in order after the decoder's mask; new prompts keep them.
        auto: found by segment everything (the view draws no markers for it unless it is selected).
    """

    id: int
    name: str
    prompts: Prompts = Prompts()
    color_index: int = 0
    candidate: int | None = None
    crop: CropFrame | None = None
    strokes: tuple[Stroke, ...] = ()
    auto: bool = False
    color: RGB | None = None

    @property
    def rgb(self) -> RGB:
        """The colour the object is drawn and exported in: the user's, else its palette colour."""
        return color_for(self.color_index) if self.color is None else self.color


@dataclass(frozen=True)
class Annotation:
    """Everything the user has said about one image (the part that undo/redo restores)."""

    image_hw: tuple[int, int]
    objects: tuple[ObjectState, ...] = ()
    next_id: int = 1

    def find(self, object_id: int) -> ObjectState:
        for obj in self.objects:
            if obj.id == object_id:
                return obj
        raise InvalidPromptError(f"There is no object {object_id}.")


def _selectable(annotation: Annotation, preferred: int | None) -> int | None:
    """``preferred`` if that object exists, else the last object (``None`` when there is none)."""
    if preferred is not None and any(o.id == preferred for o in annotation.objects):
        return preferred
    return annotation.objects[-1].id if annotation.objects else None


def crop_holds(crop: CropFrame, prompts: Prompts) -> bool:
    """Whether a crop can refine an object with these prompts: it has some, and every include point lies inside
    the crop. Exclude points may lie outside and a box may reach beyond it (the crop's decode leaves the
    points out and cuts the box, :func:`sam_onnx.prompts.prompts_for_crop`)."""
    return not prompts.is_empty and not any(p.positive and not crop.contains_xy((p.x, p.y)) for p in prompts.points)


def keeps_crop(obj: ObjectState, prompts: Prompts) -> bool:
    """Whether a refined object keeps its crop when its prompts become ``prompts``.

    An include point beyond the crop, or a new box that reaches beyond it, asks for more than the crop
    shows, so the object goes back to the whole image (refine it again to sharpen it there); an exclude
    point outside, or the box it had when it was refined, keeps the crop.
    """
    if obj.crop is None or not crop_holds(obj.crop, prompts):
        return False
    new_box = prompts.box if prompts.box != obj.prompts.box else None
    return new_box is None or obj.crop.clip_box(new_box.xyxy) == new_box.xyxy


def clean_name(name: str, fallback: str) -> str:
    text = " ".join(str(name).split())[:MAX_NAME_LENGTH]
    return text or fallback


def parse_color(value: object) -> RGB:
    """``"#rrggbb"`` (hex digits in either case) -> ``(r, g, b)`` uint8 values.

    Raises:
        InvalidPromptError: anything else (``#rgb``, colour names, ``rgb(...)``, a number, a missing value).
    """
    if not isinstance(value, str) or not HEX_COLOR.fullmatch(value):
        raise InvalidPromptError(f"A colour must be written #rrggbb (six hex digits), got {short_repr(value)}.")
    return int(value[1:3], 16), int(value[3:5], 16), int(value[5:7], 16)


def _used_palette(objects: Sequence[ObjectState]) -> set[int]:
    """Palette indices a new object should not get: those of ``objects``, and those whose colour one of them
    was given by the user (so a new object never takes a colour another one shows)."""
    chosen = {o.color for o in objects if o.color is not None}
    return {o.color_index for o in objects} | {i for i, rgb in enumerate(palette()) if rgb in chosen}


@dataclass(frozen=True)
class Editor:
    """An :class:`Annotation` plus selection, undo/redo history and a half-drawn box.

    Attributes:
        current: the annotation now.
        selected_id: the object that new prompts go to.
        undo_stack, redo_stack: earlier and undone annotations (most recent last).
        pending_corner: ``(x, y)`` of a box's first corner while the second is awaited.
        hidden: ids of objects not drawn (view state: undo does not change it).
    """

    current: Annotation
    selected_id: int | None = None
    undo_stack: tuple[Annotation, ...] = field(default=(), repr=False)
    redo_stack: tuple[Annotation, ...] = field(default=(), repr=False)
    pending_corner: tuple[float, float] | None = None
    hidden: frozenset[int] = frozenset()

    # ------------------------------------------------------------------ construction
    @classmethod
    def start(cls, image_hw: tuple[int, int]) -> Editor:
        """A fresh editor with one empty, selected object."""
        first = ObjectState(1, "Object 1", color_index=0)
        return cls(Annotation(tuple(image_hw), (first,), 2), selected_id=1)

    @classmethod
    def from_objects(cls, image_hw: tuple[int, int], objects: Sequence[ObjectState],
                     hidden: Iterable[int] = ()) -> Editor:
        """An editor holding ``objects`` (no history), the last one selected; :meth:`start` if there are none."""
        if not objects:
            return cls.start(image_hw)
        annotation = Annotation(tuple(image_hw), tuple(objects), max(o.id for o in objects) + 1)
        return cls(annotation, selected_id=objects[-1].id, hidden=frozenset(hidden))

    # ------------------------------------------------------------------ reading
    @property
    def objects(self) -> tuple[ObjectState, ...]:
        return self.current.objects

    @property
    def selected(self) -> ObjectState | None:
        if self.selected_id is None:
            return None
        return next((o for o in self.objects if o.id == self.selected_id), None)

    @property
    def can_undo(self) -> bool:
        return bool(self.undo_stack) or self.pending_corner is not None

    @property
    def can_redo(self) -> bool:
        return bool(self.redo_stack)

    # ------------------------------------------------------------------ history
    def _commit(self, annotation: Annotation, *, selected_id: int | None = None) -> Editor:
        """A new editor after an edit: history grows, redo is dropped, a half-drawn box is cancelled."""
        undo = (self.undo_stack + (self.current,))[-MAX_HISTORY:]
        selected = _selectable(annotation, selected_id if selected_id is not None else self.selected_id)
        return Editor(annotation, selected, undo, (), None, self.hidden)

    def undo(self) -> Editor:
        """Cancel a half-drawn box, else restore the annotation before the last edit. No-op when there is nothing."""
        if self.pending_corner is not None:
            return replace(self, pending_corner=None)
        if not self.undo_stack:
            return self
        previous = self.undo_stack[-1]
        return self._restore(previous, self.undo_stack[:-1], self.redo_stack + (self.current,))

    def redo(self) -> Editor:
        """Re-apply the last undone edit. No-op when there is nothing."""
        if not self.redo_stack:
            return self
        following = self.redo_stack[-1]
        return self._restore(following, self.undo_stack + (self.current,), self.redo_stack[:-1])

    def _restore(self, annotation: Annotation, undo, redo) -> Editor:
        return Editor(annotation, _selectable(annotation, self.selected_id), undo, redo, None, self.hidden)

    # ------------------------------------------------------------------ prompts
    def _target(self) -> tuple[Editor, ObjectState]:
        """The selected object, creating one if none exists."""
        obj = self.selected
        if obj is not None:
            return self, obj
        editor = self.add_object()
        return editor, editor.selected

    def _set_prompts(self, obj: ObjectState, prompts: Prompts, view_crop: CropFrame | None = None) -> Editor:
        prompts.check_inside(self.current.image_hw)
        crop = obj.crop if keeps_crop(obj, prompts) else None
        if crop is None and view_crop is not None and crop_holds(view_crop, prompts) and (
                prompts.box is None or view_crop.clip_box(prompts.box.xyxy) == prompts.box.xyxy):
            crop = view_crop
        strokes = obj.strokes if not prompts.is_empty else ()  # a new prompt keeps the strokes; clearing drops them
        objects = tuple(replace(o, prompts=prompts, candidate=None, crop=crop, strokes=strokes) if o.id == obj.id
                        else o for o in self.objects)
        return self._commit(replace(self.current, objects=objects), selected_id=obj.id)

    def add_point(self, x: float, y: float, label: int = POSITIVE, view_crop: CropFrame | None = None) -> Editor:
        """Add a click to the selected object (a new object if none is selected).

        ``view_crop``: a zoomed view's crop whose embedding is ready (:meth:`sam_demo.service.SegmentationService.
        encode_view`). An object that is not refined, and whose include points and box all lie in it, is decoded
        there from this click on (in the same undoable step): at the resolution of the view.
        """
        point = Point(x, y, label)
        point.check_inside(self.current.image_hw)
        editor, obj = self._target()
        return editor._set_prompts(obj, obj.prompts.with_point(point), view_crop)

    def box_corner(self, x: float, y: float, view_crop: CropFrame | None = None) -> Editor:
        """First call: remember a corner. Second call: set the selected object's box (replacing any);
        ``view_crop`` as for :meth:`add_point`."""
        Point(x, y).check_inside(self.current.image_hw)
        if self.pending_corner is None:
            return replace(self, pending_corner=(float(x), float(y)))
        first = self.pending_corner
        cleared = replace(self, pending_corner=None)
        try:
            box = Box.from_corners(first, (x, y))
        except InvalidPromptError:
            raise InvalidPromptError("The box's two corners are on the same row or column; "
                                     "click the opposite corner somewhere else.") from None
        editor, obj = cleared._target()
        return editor._set_prompts(obj, obj.prompts.with_box(box), view_crop)

    def add_stroke(self, stroke: Stroke) -> Editor:
        """Paint (or erase) on the selected object's mask: one undoable step per stroke.

        Raises:
            InvalidPromptError: no object with prompts is selected, the stroke leaves the image, or the
                object (or the image) holds the most strokes allowed.
        """
        obj = self.selected
        if obj is None or obj.prompts.is_empty:
            raise InvalidPromptError("Add a point or a box to this object first, then paint on it.")
        stroke.check_inside(self.current.image_hw)
        if len(obj.strokes) >= MAX_STROKES_PER_OBJECT:
            raise InvalidPromptError(f"This object has {MAX_STROKES_PER_OBJECT} strokes, the most it can keep; "
                                     "undo some, or add prompts instead.")
        used = sum(len(s.points) for o in self.objects for s in o.strokes)
        if used + len(stroke.points) > MAX_STROKE_POINTS_PER_IMAGE:
            raise InvalidPromptError(f"The strokes on this image reached {MAX_STROKE_POINTS_PER_IMAGE} points, the "
                                     "most kept; undo some strokes first.")
        return self._update(obj.id, strokes=obj.strokes + (stroke,))

    def clear_object(self) -> Editor:
        """Remove every prompt and stroke of the selected object (undoable)."""
        obj = self.selected
        if obj is None or obj.prompts.is_empty:
            return replace(self, pending_corner=None)
        return self._set_prompts(obj, Prompts())

    def clear_all(self) -> Editor:
        """Back to one empty object (undoable)."""
        if len(self.objects) == 1 and self.objects[0].prompts.is_empty:
            return replace(self, pending_corner=None)
        fresh = ObjectState(self.current.next_id, f"Object {self.current.next_id}",
                            color_index=self._next_color())
        return self._commit(replace(self.current, objects=(fresh,), next_id=fresh.id + 1), selected_id=fresh.id)

    # ------------------------------------------------------------------ objects
    def _next_color(self) -> int:
        used = _used_palette(self.objects)
        return next(i for i in range(len(used) + 1) if i not in used)

    def add_object(self, prompts: Prompts = Prompts(), name: str | None = None) -> Editor:
        """A new object (empty unless ``prompts`` are given), selected."""
        return self.add_objects([prompts], names=[name] if name else None)

    def add_objects(self, prompts: Sequence[Prompts], names: Sequence[str] | None = None,
                    candidates: Sequence[int | None] | None = None, *, auto: bool = False) -> Editor:
        """Several new objects in one undoable step (e.g. from segment-everything); the last is selected.

        ``candidates`` optionally fixes each object's mask choice (``None`` = the best); ``auto`` marks them
        as found by segment everything.
        """
        if len(self.objects) + len(prompts) > MAX_OBJECTS:
            raise InvalidPromptError(f"At most {MAX_OBJECTS} objects per image; delete some first.")
        for p in prompts:
            p.check_inside(self.current.image_hw)
        objects = list(self.objects)
        next_id = self.current.next_id
        used = _used_palette(objects)
        color = 0
        for index, p in enumerate(prompts):
            while color in used:
                color += 1
            used.add(color)
            fallback = f"Object {next_id}"
            name = clean_name(names[index], fallback) if names and index < len(names) else fallback
            candidate = candidates[index] if candidates else None
            if candidate is not None and candidate not in range(NUM_CANDIDATES):
                raise InvalidPromptError(f"Mask choice must be 0, 1, 2 or None, got {candidate}.")
            objects.append(ObjectState(next_id, name, p, color_index=color, candidate=candidate, auto=auto))
            next_id += 1
        annotation = replace(self.current, objects=tuple(objects), next_id=next_id)
        return self._commit(annotation, selected_id=next_id - 1)

    def select(self, object_id: int) -> Editor:
        """Make ``object_id`` the target of new prompts (not an undoable edit)."""
        self.current.find(object_id)
        return replace(self, selected_id=object_id, pending_corner=None)

    def rename(self, object_id: int, name: str) -> Editor:
        obj = self.current.find(object_id)
        new_name = clean_name(name, obj.name)
        if new_name == obj.name:
            return self
        return self._update(object_id, name=new_name)

    def set_color(self, object_id: int, color: str) -> Editor:
        """Give an object the colour ``color`` (``"#rrggbb"``): one undoable step, a no-op when it has that colour.

        The object keeps it through renames, hiding, new prompts and refinement; its palette colour is stored
        as ``None`` (:attr:`ObjectState.color`).

        Raises:
            InvalidPromptError: no such object, or ``color`` is not ``#rrggbb`` (:func:`parse_color`).
        """
        obj = self.current.find(object_id)
        rgb = parse_color(color)
        if rgb == obj.rgb:
            return self
        return self._update(object_id, color=None if rgb == color_for(obj.color_index) else rgb)

    def set_visible(self, object_id: int, visible: bool) -> Editor:
        """Show or hide an object (view state: not undoable)."""
        self.current.find(object_id)
        hidden = self.hidden - {object_id} if visible else self.hidden | {object_id}
        return replace(self, hidden=frozenset(hidden))

    def is_visible(self, object_id: int) -> bool:
        return object_id not in self.hidden

    def delete(self, object_id: int) -> Editor:
        self.current.find(object_id)
        objects = tuple(o for o in self.objects if o.id != object_id)
        return self._commit(replace(self.current, objects=objects))

    def choose_candidate(self, object_id: int, candidate: int | None) -> Editor:
        """Pick one of the 3 masks (``candidate`` 0, 1 or 2) for an object; ``None`` = follow the best score."""
        if candidate is not None and candidate not in range(NUM_CANDIDATES):
            raise InvalidPromptError(f"Mask choice must be 0, 1 or 2, got {candidate}.")
        if self.current.find(object_id).candidate == candidate:
            return self
        return self._update(object_id, candidate=candidate)

    def _update(self, object_id: int, **changes) -> Editor:
        objects = tuple(replace(o, **changes) if o.id == object_id else o for o in self.objects)
        return self._commit(replace(self.current, objects=objects))

    # ------------------------------------------------------------------ refinement
    def refine(self, object_id: int, crop: CropFrame) -> Editor:
        """Decode ``object_id`` on ``crop`` from now on (one undoable step; a no-op if it already is).

        Raises:
            InvalidPromptError: no such object, it has no prompts, the crop is of another image size, or
                the crop does not hold the object's include points (:func:`crop_holds`).
        """
        obj = self.current.find(object_id)
        if obj.prompts.is_empty:
            raise InvalidPromptError("This object has no prompts yet: add a point or a box, then refine it.")
        if crop.original_hw != tuple(self.current.image_hw):
            raise InvalidPromptError("This refinement was made for another image.")
        if not crop_holds(crop, obj.prompts):
            raise InvalidPromptError("The object changed while it was refined; refine it again.")
        if obj.crop == crop:
            return self
        return self._update(object_id, crop=crop)

    def unrefine(self, object_id: int) -> Editor:
        """Decode ``object_id`` on the whole image again (one undoable step; a no-op if it is not refined)."""
        if self.current.find(object_id).crop is None:
            return self
        return self._update(object_id, crop=None)

    # ------------------------------------------------------------------ segment everything
    def add_found(self, found: Sequence[tuple[Prompts, int | None]], name_prefix: str = AUTO_NAME_PREFIX
                  ) -> tuple[Editor, int]:
        """Add masks found by segment everything as objects named "Auto N", in one undoable step.

        Only as many as fit under :data:`MAX_OBJECTS` are added, in the order given.

        Returns:
            The new editor and how many found objects did not fit.
        """
        room = max(0, MAX_OBJECTS - len(self.objects))
        items = list(found)[:room]
        if not items:
            return self, len(found)
        start = self.current.next_id
        names = [f"{name_prefix} {start + i}" for i in range(len(items))]
        editor = self.add_objects([p for p, _ in items], names, [c for _, c in items], auto=True)
        return editor, len(found) - len(items)


__all__ = ["NEGATIVE", "POSITIVE", "Annotation", "Editor", "ObjectState"]
