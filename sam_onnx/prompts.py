"""Prompts → decoder feeds (pure numpy). The only module that knows the graph's prompt layouts.

Decoder prompt inputs (onnx-community/sam2.1-hiera-small-ONNX; docs/model-io.md, "Decoder inputs and the
three layouts"):

=================  =======  ================  ==========================================
input              dtype    shape             meaning
=================  =======  ================  ==========================================
``input_points``   float32  ``[1, P, N, 2]``  ``(x, y)`` in the 1024 model frame
``input_labels``   int64    ``[1, P, N]``     1 positive, 0 negative, -1 "not a point"
``input_boxes``    float32  ``[1, M, 4]``     ``(x0, y0, x1, y1)`` in the model frame
=================  =======  ================  ==========================================

``P`` (point batches) = ``M`` (boxes) = number of objects decoded together;
each object gets its own 3 candidate masks. Three layouts exist, and objects
are grouped so that every decoder call uses exactly one of them:

* **points only**: the object's clicks plus one padding point ``(0, 0)`` with
  label -1, and an empty ``input_boxes`` ``[1, 0, 4]``. transformers and
  facebookresearch/sam2 append that padding point themselves whenever no box is
  given; the ONNX graph never does, so we do. (The empty box tensor trips an
  onnxruntime Concat quirk on plainly traced graphs; see
  :mod:`sam_onnx.graph_repair`.)
* **box only**: ``input_points`` ``[1, 1, 0, 2]``, ``input_labels``
  ``[1, M, 0]``, ``input_boxes`` ``[1, M, 4]`` (as transformers.js feeds it).
* **box + points**: ``[1, P, N, 2]`` points with ``[1, P, 4]`` boxes, one box
  per point batch, and no padding point (the reference adds none when a box is
  given).

Objects in one call must have the same number of points: padding shorter
objects with extra "not a point" tokens would change their masks (every token
takes part in attention), so objects with different point counts go to
separate calls instead.

**On a crop's embedding** (refinement, ``geometry.crop`` set) an object's prompts
are first reduced to the crop by :func:`prompts_for_crop`: points outside the
crop are left out, a box is cut to the crop, and an object with nothing
positive left (no include point, no box) is refused. The rest maps to the
crop's model frame like a whole image's prompts to its own, pad point included.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from .errors import InvalidPromptError
from .geometry import CropFrame, Geometry
from .types import Box, Prompts

LABEL_NOT_A_POINT = -1
"""Label of the padding point; the graph replaces its embedding by ``not_a_point_embed``."""
PAD_POINT_XY = (0.0, 0.0)

DEFAULT_MAX_BATCH = 16
"""Objects per decoder call (the point-batch dimension P). Memory of one call
grows with P: ``pred_masks`` alone is P x 3 x 256 x 256 float32 (0.8 MB each)."""

_EMPTY_BOXES = np.zeros((1, 0, 4), np.float32)


@dataclass(frozen=True, eq=False)
class DecoderBatch:
    """One decoder call.

    Attributes:
        object_indices: positions, in the caller's list of objects, of the
            objects this call answers, in the order of the output's P axis.
        feeds: ``input_points``, ``input_labels`` and ``input_boxes`` as above.
    """

    object_indices: tuple[int, ...]
    feeds: Mapping[str, NDArray]


def _layout(prompts: Prompts) -> tuple[str, int]:
    if prompts.box is None:
        return "points", len(prompts.points)
    return ("box+points" if prompts.points else "box"), len(prompts.points)


def _points_and_labels(group: Sequence[Prompts], geometry: Geometry, pad: bool) -> tuple[NDArray, NDArray]:
    xy = [[(p.x, p.y) for p in obj.points] for obj in group]
    labels = [[p.label for p in obj.points] for obj in group]
    points_model = geometry.to_model_xy(np.asarray(xy, dtype=np.float64).reshape(len(group), -1, 2))
    labels_arr = np.asarray(labels, dtype=np.int64).reshape(len(group), -1)
    if pad:
        pad_xy = np.broadcast_to(np.asarray(PAD_POINT_XY, np.float32), (len(group), 1, 2))
        points_model = np.concatenate([points_model, pad_xy], axis=1)
        labels_arr = np.concatenate([labels_arr, np.full((len(group), 1), LABEL_NOT_A_POINT, np.int64)], axis=1)
    return points_model[None], labels_arr[None]


def _boxes(group: Sequence[Prompts], geometry: Geometry) -> NDArray[np.float32]:
    corners = np.asarray([obj.box.xyxy for obj in group], dtype=np.float64).reshape(len(group), 2, 2)
    return geometry.to_model_xy(corners).reshape(1, len(group), 4)


def _feeds(kind: str, group: Sequence[Prompts], geometry: Geometry) -> dict[str, NDArray]:
    if kind == "points":
        points, labels = _points_and_labels(group, geometry, pad=True)
        return {"input_points": points, "input_labels": labels, "input_boxes": _EMPTY_BOXES}
    boxes = _boxes(group, geometry)
    if kind == "box":
        return {"input_points": np.zeros((1, 1, 0, 2), np.float32),
                "input_labels": np.zeros((1, len(group), 0), np.int64),
                "input_boxes": boxes}
    points, labels = _points_and_labels(group, geometry, pad=False)
    return {"input_points": points, "input_labels": labels, "input_boxes": boxes}


def prompts_for_crop(prompts: Prompts, crop: CropFrame) -> Prompts:
    """An object's prompts as its decode on ``crop`` uses them (original pixels still).

    The rule: points outside the crop (:meth:`CropFrame.contains_xy`) are left out
    (an exclude point there removes nothing inside the crop, which is all the
    refined mask can cover; include points lie inside a crop made by
    :func:`sam_onnx.refine.crop_for`); a box is cut to the crop and left out
    if nothing of it is inside. The crop's decode needs something positive: an
    include point or a box.

    Raises:
        InvalidPromptError: nothing positive lies inside the crop.
    """
    points = tuple(p for p in prompts.points if crop.contains_xy((p.x, p.y)))
    box = None
    if prompts.box is not None:
        clipped = crop.clip_box(prompts.box.xyxy)
        box = None if clipped is None else Box(*clipped)
    kept = Prompts(points, box)
    if box is None and not kept.has_positive:
        raise InvalidPromptError("No include point or box of this object lies inside its refined area; "
                                 "refine it again (or clear the refinement).")
    return kept


def encode_prompts(objects: Sequence[Prompts], geometry: Geometry, *,
                   max_batch: int = DEFAULT_MAX_BATCH) -> list[DecoderBatch]:
    """Group objects into decoder calls and build their feeds.

    Args:
        objects: one :class:`~sam_onnx.types.Prompts` per object, coordinates in
            original pixels.
        geometry: the image the prompts refer to (and the crop encoded, if any:
            the prompts are reduced to it by :func:`prompts_for_crop`).
        max_batch: most objects in one call.

    Returns:
        Decoder calls that together answer every object exactly once.

    Raises:
        InvalidPromptError: an object is empty, has a prompt outside the image,
            or nothing positive inside the crop.
    """
    if max_batch < 1:
        raise ValueError(f"max_batch must be >= 1, got {max_batch}")
    groups: dict[tuple[str, int], list[int]] = {}
    reduced: list[Prompts] = []
    for index, obj in enumerate(objects):
        if not isinstance(obj, Prompts):
            raise InvalidPromptError(f"object {index + 1}: expected Prompts, got {type(obj).__name__}")
        if obj.is_empty:
            raise InvalidPromptError(
                f"Object {index + 1} has no prompts; add a point or a box first." if len(objects) > 1
                else "Add a point or a box first.")
        try:
            obj.check_inside(geometry.original_hw)
            if geometry.crop is not None:
                obj = prompts_for_crop(obj, geometry.crop)
        except InvalidPromptError as exc:
            raise InvalidPromptError(f"Object {index + 1}: {exc}" if len(objects) > 1 else str(exc)) from None
        reduced.append(obj)
        groups.setdefault(_layout(obj), []).append(index)
    batches = []
    for (kind, _), indices in groups.items():
        for start in range(0, len(indices), max_batch):
            chunk = tuple(indices[start:start + max_batch])
            batches.append(DecoderBatch(chunk, _feeds(kind, [reduced[i] for i in chunk], geometry)))
    return batches
