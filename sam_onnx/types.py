"""Immutable values that flow through the wrapper: prompts, embeddings, results, what a predictor runs.

All coordinates here are in **original image pixels** (see :mod:`sam_onnx.geometry`).
Values validate themselves on construction and never change afterwards; the
helpers that "modify" a value return a new one.
"""

from __future__ import annotations

import math
import re
import reprlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

import numpy as np
from numpy.typing import NDArray

from .errors import InvalidPromptError
from .geometry import Geometry
from .postprocess import mask_crop_from_logits, mask_from_logits

NEGATIVE = 0
"""Label of a background ("exclude this") point."""
POSITIVE = 1
"""Label of a foreground ("include this") point."""
LABELS = (NEGATIVE, POSITIVE)

MAX_POINTS_PER_OBJECT = 32
"""Cap on clicks per object. The decoder's cost grows with the point count
(10,000 points take seconds); 32 clicks are far more than SAM needs."""

NUM_CANDIDATES = 3
"""Masks the decoder proposes per object (SAM's multimask output)."""


_SHORT = reprlib.Repr()
_SHORT.maxlevel, _SHORT.maxlist, _SHORT.maxtuple, _SHORT.maxdict = 2, 4, 4, 4
_SHORT.maxstring, _SHORT.maxother, _SHORT.maxlong = 40, 40, 24


def short_repr(value: Any) -> str:
    """A bounded ``repr`` for messages: never long, never deep (a caller may send anything)."""
    try:
        return _SHORT.repr(value)
    except ValueError:  # an integer beyond Python's 4300-digit str() limit
        return "a number too large to show"


def _finite(name: str, value: Any) -> float:
    if isinstance(value, bool):
        raise InvalidPromptError(f"{name} must be a number, got {value!r}")
    try:
        out = float(value)
    except (TypeError, ValueError):
        raise InvalidPromptError(f"{name} must be a number, got {short_repr(value)}") from None
    except OverflowError:  # an integer too large for a float, e.g. 10**400
        raise InvalidPromptError(f"{name} must be a finite number, got {short_repr(value)}") from None
    if not math.isfinite(out):
        raise InvalidPromptError(f"{name} must be a finite number, got {short_repr(value)}")
    return out


def _fmt(v: float) -> str:
    return f"{v:g}"


@dataclass(frozen=True)
class Point:
    """A click at ``(x, y)`` in original pixels with a label.

    Args:
        x, y: pixel coordinates (floats allowed), ``0 <= x < W``, ``0 <= y < H``
            once checked against an image.
        label: :data:`POSITIVE` (1) or :data:`NEGATIVE` (0).
    """

    x: float
    y: float
    label: int = POSITIVE

    def __post_init__(self) -> None:
        object.__setattr__(self, "x", _finite("Point x", self.x))
        object.__setattr__(self, "y", _finite("Point y", self.y))
        label = self.label
        if isinstance(label, bool) or not isinstance(label, (int, np.integer)) or int(label) not in LABELS:
            raise InvalidPromptError(
                f"Point label must be {POSITIVE} (positive) or {NEGATIVE} (negative), got {short_repr(label)}")
        object.__setattr__(self, "label", int(label))

    @property
    def positive(self) -> bool:
        return self.label == POSITIVE

    def check_inside(self, original_hw: tuple[int, int]) -> None:
        """Raise :class:`InvalidPromptError` unless the point lies on a pixel of an ``(H, W)`` image."""
        h, w = original_hw
        if not (0 <= self.x < w and 0 <= self.y < h):
            raise InvalidPromptError(
                f"Point ({_fmt(self.x)}, {_fmt(self.y)}) lies outside the {w}×{h} image; "
                f"x must be in [0, {w}) and y in [0, {h}).")


@dataclass(frozen=True)
class Box:
    """An axis-aligned box in original pixels, ``x0 < x1`` and ``y0 < y1``.

    Corners may be given in any order (a box dragged from bottom-right to
    top-left); they are sorted on construction. A box with zero width or
    height is rejected: it says nothing about an object.
    """

    x0: float
    y0: float
    x1: float
    y1: float

    def __post_init__(self) -> None:
        x0, y0, x1, y1 = (_finite(f"Box {n}", getattr(self, n)) for n in ("x0", "y0", "x1", "y1"))
        x0, x1 = sorted((x0, x1))
        y0, y1 = sorted((y0, y1))
        if x0 == x1 or y0 == y1:
            raise InvalidPromptError(
                f"The box from ({_fmt(x0)}, {_fmt(y0)}) to ({_fmt(x1)}, {_fmt(y1)}) has no area; "
                "place its two corners apart.")
        for name, value in zip(("x0", "y0", "x1", "y1"), (x0, y0, x1, y1)):
            object.__setattr__(self, name, value)

    @classmethod
    def from_corners(cls, a: tuple[float, float], b: tuple[float, float]) -> Box:
        """A box from two opposite corners ``(x, y)`` given in any order."""
        return cls(a[0], a[1], b[0], b[1])

    @property
    def xyxy(self) -> tuple[float, float, float, float]:
        return self.x0, self.y0, self.x1, self.y1

    def check_inside(self, original_hw: tuple[int, int]) -> None:
        """Raise unless ``0 <= x0 < x1 <= W`` and ``0 <= y0 < y1 <= H``.

        A box's edges live in the continuous frame, so the whole-image box is
        ``(0, 0, W, H)``.
        """
        h, w = original_hw
        if self.x0 < 0 or self.y0 < 0 or self.x1 > w or self.y1 > h:
            raise InvalidPromptError(
                f"Box ({', '.join(_fmt(v) for v in self.xyxy)}) extends outside the {w}×{h} image.")


def _check_point_count(count: int) -> None:
    if count > MAX_POINTS_PER_OBJECT:
        raise InvalidPromptError(f"At most {MAX_POINTS_PER_OBJECT} points per object (got {count}); "
                                 "undo some points or clear the object.")


@dataclass(frozen=True)
class Prompts:
    """Everything the user said about **one** object: clicks and at most one box.

    An empty ``Prompts`` is a valid value (a cleared object) but cannot be
    decoded. Several objects are several ``Prompts`` (see
    :meth:`sam_onnx.Sam2Predictor.decode_many`).
    """

    points: tuple[Point, ...] = ()
    box: Box | None = None

    def __post_init__(self) -> None:
        points = tuple(self.points)
        for p in points:
            if not isinstance(p, Point):
                raise InvalidPromptError(f"points must be Point values, got {type(p).__name__}")
        _check_point_count(len(points))
        if self.box is not None and not isinstance(self.box, Box):
            raise InvalidPromptError(f"box must be a Box, got {type(self.box).__name__}")
        object.__setattr__(self, "points", points)
        # Prompts are cache keys (decoder results, the drawn background): hash 32 points once, not per lookup.
        object.__setattr__(self, "_hash", hash((points, self.box)))

    def __hash__(self) -> int:
        return self._hash  # type: ignore[attr-defined]

    @property
    def is_empty(self) -> bool:
        return not self.points and self.box is None

    @property
    def has_positive(self) -> bool:
        return any(p.positive for p in self.points)

    def with_point(self, point: Point) -> Prompts:
        """A new value with ``point`` appended."""
        return Prompts(self.points + (point,), self.box)

    def with_box(self, box: Box | None) -> Prompts:
        """A new value with the box replaced (``None`` removes it)."""
        return Prompts(self.points, box)

    def check_inside(self, original_hw: tuple[int, int]) -> None:
        """Raise :class:`InvalidPromptError` if any point or the box lies outside an ``(H, W)`` image."""
        for p in self.points:
            p.check_inside(original_hw)
        if self.box is not None:
            self.box.check_inside(original_hw)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form: ``{"points": [[x, y, label], ...], "box": [x0, y0, x1, y1] | None}``."""
        return {"points": [[p.x, p.y, p.label] for p in self.points],
                "box": list(self.box.xyxy) if self.box is not None else None}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Prompts:
        """Inverse of :meth:`to_dict`; raises :class:`InvalidPromptError` on malformed data.

        The raw value is checked before anything is built from it: ``points``
        must be a list of at most :data:`MAX_POINTS_PER_OBJECT` lists of 2 or 3
        numbers, ``box`` a list of 4 numbers or ``None``. A caller can send
        anything (a million points, deep nesting, huge integers); the cost of a
        refusal does not grow with it, nor does the message.
        """
        if not isinstance(data, Mapping):
            raise InvalidPromptError("an object's prompts must be a mapping with 'points' and 'box'")
        raw_points = data.get("points")
        if raw_points is None:
            raw_points = []
        if not isinstance(raw_points, (list, tuple)):
            raise InvalidPromptError("'points' must be a list of [x, y, label]")
        _check_point_count(len(raw_points))  # before any point is built
        points = []
        for item in raw_points:
            if not isinstance(item, (list, tuple)) or len(item) not in (2, 3):
                raise InvalidPromptError(f"each point must be [x, y] or [x, y, label], got {short_repr(item)}")
            points.append(Point(*item))
        box = data.get("box")
        if box is not None:
            if not isinstance(box, (list, tuple)) or len(box) != 4:
                raise InvalidPromptError(f"'box' must be [x0, y0, x1, y1], got {short_repr(box)}")
            box = Box(*box)
        return cls(tuple(points), box)


def _frozen(array: np.ndarray) -> np.ndarray:
    array.setflags(write=False)
    return array


@dataclass(frozen=True, eq=False)
class ImageEmbedding:
    """The encoder's output for one image: features plus the geometry that made them.

    Holds no reference to a predictor or session, so it can be cached, shared
    between threads and users, and decoded by any predictor of the same model.
    Equality and hashing are by identity (arrays inside).

    Attributes:
        features: the three decoder-ready encoder outputs, read-only float32:
            ``image_embeddings.0`` ``(1, 32, 256, 256)``,
            ``image_embeddings.1`` ``(1, 64, 128, 128)``,
            ``image_embeddings.2`` ``(1, 256, 64, 64)``.
        geometry: the original image size behind the features, and the crop
            of it that was encoded (``geometry.crop``), if only a crop was.
    """

    features: tuple[NDArray[np.float32], ...]
    geometry: Geometry

    def __post_init__(self) -> None:
        object.__setattr__(self, "features", tuple(_frozen(np.ascontiguousarray(f, dtype=np.float32))
                                                   for f in self.features))

    @property
    def original_hw(self) -> tuple[int, int]:
        return self.geometry.original_hw

    @property
    def nbytes(self) -> int:
        """Memory held by the features, in bytes."""
        return sum(f.nbytes for f in self.features)


@dataclass(frozen=True, eq=False)
class MaskResult:
    """The decoder's answer for one object.

    Masks at any resolution are derived on demand from the low-res logits, so
    that a click costs the same for a 1 MP and a 24 MP photo; full-resolution
    masks are computed only when asked for (and then cached).

    A result decoded on a crop's embedding (``geometry.crop`` set) has logits
    that cover the crop only: its masks, at any size, are the logits upsampled
    over the crop's place in the image and False everywhere else.

    Attributes:
        low_res_logits: ``(3, 256, 256)`` float32 mask logits in the model frame
            (positive = inside), one per candidate.
        scores: ``(3,)`` float32 predicted IoU of each candidate, in [0, 1].
        object_score_logit: logit that an object is present at all.
        geometry: the image the prompts referred to (and the crop decoded, if any).
    """

    low_res_logits: NDArray[np.float32]
    scores: NDArray[np.float32]
    object_score_logit: float
    geometry: Geometry = field(repr=False)

    def __post_init__(self) -> None:
        logits = np.ascontiguousarray(self.low_res_logits, dtype=np.float32)
        scores = np.ascontiguousarray(self.scores, dtype=np.float32)
        if logits.ndim != 3 or logits.shape[0] != NUM_CANDIDATES or scores.shape != (NUM_CANDIDATES,):
            raise ValueError(f"expected (3, h, w) logits and (3,) scores, got {logits.shape} and {scores.shape}")
        object.__setattr__(self, "low_res_logits", _frozen(logits))
        object.__setattr__(self, "scores", _frozen(scores))
        object.__setattr__(self, "object_score_logit", float(self.object_score_logit))

    @property
    def best_index(self) -> int:
        """Index of the candidate with the highest predicted IoU."""
        return int(np.argmax(self.scores))

    @property
    def object_score(self) -> float:
        """Probability that an object is present: ``sigmoid(object_score_logit)``."""
        return float(1.0 / (1.0 + math.exp(-max(min(self.object_score_logit, 60.0), -60.0))))

    def mask(self, index: int | None = None, hw: tuple[int, int] | None = None) -> NDArray[np.bool_]:
        """One candidate as a boolean mask.

        Args:
            index: candidate 0..2; ``None`` = :attr:`best_index`.
            hw: output ``(h, w)``; ``None`` = the original image size. Any size
                can be asked for, e.g. a UI's display size.

        Returns:
            ``(h, w)`` bool, ``True`` inside: the logits upsampled with
            half-pixel bilinear interpolation in one step, thresholded at 0
            (over the crop's place only, for a result of a crop).
        """
        k = self._candidate(index)
        if (hw is None or tuple(hw) == self.geometry.original_hw) and "masks" in self.__dict__:
            return self.masks[k]
        out_hw = self.geometry.original_hw if hw is None else hw
        return mask_from_logits(self.low_res_logits[k], out_hw, self._spans(out_hw))

    def mask_crop(self, index: int | None = None, hw: tuple[int, int] | None = None
                  ) -> tuple[NDArray[np.bool_], tuple[int, int]]:
        """The part of :meth:`mask` that can be True, computed only there (cheap for a small object).

        Returns:
            ``(crop, (row0, col0))`` as :func:`sam_onnx.postprocess.mask_crop_from_logits`:
            ``mask(index, hw)[row0:row0 + h', col0:col0 + w'] == crop``, False elsewhere.
        """
        out_hw = self.geometry.original_hw if hw is None else hw
        return mask_crop_from_logits(self.low_res_logits[self._candidate(index)], out_hw,
                                     spans=self._spans(out_hw))

    def mask_box(self, index: int | None = None) -> tuple[int, int, int, int] | None:
        """Bounding box of a candidate's mask at the original size: ``(x0, y0, x1, y1)`` whole pixels,
        columns ``x0 .. x1 - 1`` and rows ``y0 .. y1 - 1``; ``None`` when the mask is empty."""
        crop, (row0, col0) = self.mask_crop(index)
        rows, cols = np.flatnonzero(crop.any(axis=1)), np.flatnonzero(crop.any(axis=0))
        if rows.size == 0:
            return None
        return col0 + int(cols[0]), row0 + int(rows[0]), col0 + int(cols[-1]) + 1, row0 + int(rows[-1]) + 1

    def _candidate(self, index: int | None) -> int:
        k = self.best_index if index is None else int(index)
        if not 0 <= k < NUM_CANDIDATES:
            raise IndexError(f"candidate index must be 0..{NUM_CANDIDATES - 1}, got {index}")
        return k

    def _spans(self, out_hw: tuple[int, int]):
        """Where the logits lie in an output grid of ``out_hw`` (``None``: everywhere, no crop)."""
        return None if self.geometry.crop is None else self.geometry.spans(out_hw)

    @cached_property
    def masks(self) -> NDArray[np.bool_]:
        """All three candidates at the original size: ``(3, H, W)`` bool (computed once)."""
        hw = self.geometry.original_hw
        return _frozen(mask_from_logits(self.low_res_logits, hw, self._spans(hw)))

    @property
    def best_mask(self) -> NDArray[np.bool_]:
        """The best candidate at the original size, ``(H, W)`` bool."""
        return self.mask()


LOCAL_SOURCE = "local files"
"""What :meth:`ModelInfo.summary` says of model files that are not a hub download (a folder, files, sessions)."""
_HUB_SOURCE = re.compile(r"[A-Za-z0-9][\w.-]*/[\w.-]+@[\w.-]+")
"""A hub source as :mod:`sam_onnx.hub` names it: ``owner/repo@revision`` (public, no server path)."""


def public_source(source: str) -> str:
    """``source`` if it names a public hub download (``owner/repo@revision``), else :data:`LOCAL_SOURCE`: a
    folder's or a file's path on the server is nobody's business but the server's (its logs have it)."""
    return source if _HUB_SOURCE.fullmatch(source) else LOCAL_SOURCE


@dataclass(frozen=True)
class ModelInfo:
    """What a predictor runs, for logs and the UI.

    Attributes:
        source: where the files came from (hub repo and revision, or a folder).
        encoder_path: the file the encoder engine runs (the int8 copy for ``int8``).
        decoder_path: the decoder file.
        providers: onnxruntime execution providers of the decoder (and of
            onnxruntime encoders), in priority order.
        encoder_dtype: ``"float32"`` or ``"float16"`` (the encoder's input type).
        repaired_concats: prompt Concat nodes repaired in the decoder (see
            :mod:`sam_onnx.graph_repair`).
        threads: intra-op threads per session.
        encoder_name: the encoder variant in use (``"fp32"``, ``"int8"``,
            ``"openvino-bf16"``, ...; see :mod:`sam_onnx.encoders`).
        encoder_description: the engine in one line, e.g. ``"OpenVINO 2026.4.1 CPU bf16"``.
        encoder_selection: how the variant was chosen (``"forced"``, or the
            ``auto`` check's summary).
        model: the model's name in the model table (``"sam2.1-hiera-small"``; :mod:`sam_onnx.models`),
            or ``""`` when built from files without one.
    """

    source: str
    encoder_path: str
    decoder_path: str
    providers: tuple[str, ...]
    encoder_dtype: str
    repaired_concats: int
    threads: int
    encoder_name: str
    encoder_description: str
    encoder_selection: str
    model: str = ""

    def summary(self) -> dict[str, object]:
        """The JSON-ready facts a user or an API client may see (no file paths: :func:`public_source`)."""
        return {"model": self.model, "source": public_source(self.source), "providers": list(self.providers),
                "encoder_dtype": self.encoder_dtype,
                "threads": self.threads, "encoder": self.encoder_name,
                "encoder_description": self.encoder_description, "encoder_selection": self.encoder_selection}

    def describe(self) -> str:
        """One line for the log, e.g. "sam2.1-hiera-small from onnx-community/...@a7df49d8de14 on CPU..., 2 threads"."""
        repaired = f", {self.repaired_concats} Concat node(s) repaired" if self.repaired_concats else ""
        model = f"{self.model} from " if self.model else ""
        return (f"{model}{self.source} on {', '.join(self.providers)}, {self.threads} thread(s), "
                f"{self.encoder_name} encoder ({self.encoder_description}; {self.encoder_selection}){repaired}")
