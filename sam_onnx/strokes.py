"""Brush and eraser strokes: a polyline with a radius that adds pixels to a mask or erases them (pure numpy).

A :class:`Stroke` is in **original pixels** (pixel-index convention, pixel ``(c, r)`` has its centre at
``(c, r)``, :mod:`sam_onnx.geometry`). It paints exactly the pixels whose centre lies within ``radius`` of the
polyline (a single point paints a disc). Strokes are applied in order after the decoder's mask: an add stroke
sets its pixels, an erase stroke clears them, so a later stroke wins where two overlap.

Painting is exact and costs one interval per image row per segment: the set of points within ``radius`` of a
segment is convex, so on each pixel row it is one interval (the union of the two end discs' and the band's
intervals), and the pixels are filled run by run.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

from .errors import InvalidPromptError
from .geometry import DisplayFrame

MIN_RADIUS = 0.5
"""Smallest brush radius in original pixels (a dab on a pixel centre paints that one pixel)."""
MAX_RADIUS = 1000.0
"""Largest brush radius in original pixels (a 40 px screen brush on a 12 MP photo seen whole is ~160 px)."""
MAX_STROKE_POINTS = 1000
"""Points in one stroke as sent (a 16 s drag at 60 events per second)."""
SIMPLIFY_PX = 0.25
"""A stroke's polyline is simplified by this many original pixels when stored (Douglas–Peucker): its painted
edge moves by at most this much, and a straight drag of hundreds of pointer events keeps 2 points."""
_TIE = 1e-9
"""Pixel centres this close to the painted edge count as painted (the rule is distance ≤ radius)."""


@dataclass(frozen=True)
class Stroke:
    """One brush or eraser stroke in original pixels.

    Attributes:
        points: ``((x, y), ...)`` polyline, at least one point.
        radius: brush radius, :data:`MIN_RADIUS` .. :data:`MAX_RADIUS`.
        erase: ``True`` removes pixels (eraser), ``False`` adds them (brush).
    """

    points: tuple[tuple[float, float], ...]
    radius: float
    erase: bool = False

    # ------------------------------------------------------------------ checking
    @classmethod
    def from_dict(cls, data: Any, image_hw: tuple[int, int] | None = None) -> Stroke:
        """A stroke from ``{"points": [[x, y], ...], "radius": r, "erase": bool}``, checked before it is built.

        The number of points is checked before any point is read; each coordinate must be a finite number
        and each point within ``radius`` of the image (when ``image_hw`` is given). The polyline is
        simplified by :data:`SIMPLIFY_PX`.

        Raises:
            InvalidPromptError: with a message that says what is wrong.
        """
        if not isinstance(data, Mapping):
            raise InvalidPromptError('A stroke must be {"points": [[x, y], ...], "radius": r, "erase": false}.')
        raw = data.get("points")
        if not isinstance(raw, list) or not raw:
            raise InvalidPromptError("A stroke needs a list of at least one [x, y] point.")
        if len(raw) > MAX_STROKE_POINTS:
            raise InvalidPromptError(f"A stroke may have at most {MAX_STROKE_POINTS} points, got {len(raw)}.")
        radius = _number(data.get("radius"), "The brush radius")
        if not MIN_RADIUS <= radius <= MAX_RADIUS:
            raise InvalidPromptError(f"The brush radius must be from {MIN_RADIUS:g} to {MAX_RADIUS:g} pixels, "
                                     f"got {radius:g}.")
        erase = data.get("erase", False)
        if not isinstance(erase, bool):
            raise InvalidPromptError("A stroke's 'erase' must be true or false.")
        points = []
        for item in raw:
            if not isinstance(item, (list, tuple)) or len(item) != 2:
                raise InvalidPromptError("Each stroke point must be [x, y].")
            points.append((_number(item[0], "A stroke coordinate"), _number(item[1], "A stroke coordinate")))
        stroke = cls(simplify_polyline(points), radius, erase)
        if image_hw is not None:
            stroke.check_inside(image_hw)
        return stroke

    def check_inside(self, image_hw: tuple[int, int]) -> None:
        """Every point within ``radius`` of the image (pixel centres span ``[0, W - 1] × [0, H - 1]``).

        Raises:
            InvalidPromptError: a point is farther out.
        """
        h, w = image_hw
        xy = np.asarray(self.points, dtype=np.float64)
        margin = self.radius
        if (xy[:, 0] < -margin).any() or (xy[:, 0] > w - 1 + margin).any() or \
                (xy[:, 1] < -margin).any() or (xy[:, 1] > h - 1 + margin).any():
            raise InvalidPromptError("The stroke goes off the image; paint on the image.")

    def to_dict(self) -> dict[str, Any]:
        return {"points": [[x, y] for x, y in self.points], "radius": self.radius, "erase": self.erase}

    # ------------------------------------------------------------------ painting
    def runs(self, image_hw: tuple[int, int]) -> tuple[NDArray[np.intp], NDArray[np.intp], NDArray[np.intp]]:
        """The painted pixels as row runs ``(rows, starts, ends)`` (``ends`` exclusive), clipped to the image.

        Runs of different segments may overlap.
        """
        h, w = image_hw
        xy = np.asarray(self.points, dtype=np.float64)
        pairs = [(xy[0], xy[0])] if len(xy) == 1 else list(zip(xy[:-1], xy[1:]))
        out_rows, out_lo, out_hi = [], [], []
        for a, b in pairs:
            rows, lo, hi = _segment_intervals(a, b, self.radius, h)
            starts = np.maximum(np.ceil(lo - _TIE), 0).astype(np.intp)
            ends = np.minimum(np.floor(hi + _TIE), w - 1).astype(np.intp) + 1
            keep = ends > starts
            out_rows.append(rows[keep])
            out_lo.append(starts[keep])
            out_hi.append(ends[keep])
        return np.concatenate(out_rows), np.concatenate(out_lo), np.concatenate(out_hi)

    def box(self, image_hw: tuple[int, int]) -> tuple[int, int, int, int] | None:
        """``(row0, col0, row1, col1)`` (exclusive ends) of the pixels the stroke may paint, or ``None``."""
        h, w = image_hw
        xy = np.asarray(self.points, dtype=np.float64)
        r = self.radius
        row0, col0 = max(0, math.ceil(xy[:, 1].min() - r - _TIE)), max(0, math.ceil(xy[:, 0].min() - r - _TIE))
        row1, col1 = min(h, math.floor(xy[:, 1].max() + r + _TIE) + 1), min(w, math.floor(xy[:, 0].max() + r + _TIE) + 1)
        return None if row1 <= row0 or col1 <= col0 else (row0, col0, row1, col1)

    def mapped(self, to_xy: Callable[[NDArray[np.float64]], NDArray], scale: float) -> Stroke:
        """The stroke in another pixel grid: points through ``to_xy`` (``(N, 2)`` in, ``(N, 2)`` out, e.g.
        :meth:`sam_onnx.geometry.DisplayFrame.to_display_xy`), radius × ``scale`` (at least :data:`MIN_RADIUS`)."""
        xy = np.asarray(to_xy(np.asarray(self.points, dtype=np.float64)), dtype=np.float64).reshape(-1, 2)
        return Stroke(tuple((float(x), float(y)) for x, y in xy), max(MIN_RADIUS, self.radius * scale), self.erase)


def in_frame(strokes: Sequence[Stroke], frame: DisplayFrame) -> tuple[Stroke, ...]:
    """``strokes`` (original pixels) in a frame's display pixels: points through
    :meth:`~sam_onnx.geometry.DisplayFrame.to_display_xy`, radius × the frame's mean scale."""
    (h, w), (oh, ow) = frame.display_hw, frame.original_hw
    return tuple(s.mapped(frame.to_display_xy, (h / oh + w / ow) / 2) for s in strokes)


def _number(value: Any, what: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise InvalidPromptError(f"{what} must be a number, got {type(value).__name__}.")
    number = float(value)
    if not math.isfinite(number):
        raise InvalidPromptError(f"{what} must be a finite number.")
    return number


def simplify_polyline(points: Sequence[tuple[float, float]], tolerance: float = SIMPLIFY_PX
                      ) -> tuple[tuple[float, float], ...]:
    """Douglas–Peucker on a polyline (through Shapely); consecutive duplicates go, the ends stay."""
    unique = [points[0]] + [p for prev, p in zip(points, points[1:]) if p != prev]
    if len(unique) <= 2:
        return tuple((float(x), float(y)) for x, y in unique)
    import shapely

    line = shapely.simplify(shapely.LineString(unique), tolerance, preserve_topology=False)
    return tuple((float(x), float(y)) for x, y in line.coords)


def _segment_intervals(a: NDArray[np.float64], b: NDArray[np.float64], radius: float, height: int
                       ) -> tuple[NDArray[np.intp], NDArray[np.float64], NDArray[np.float64]]:
    """Per image row, the x interval of points within ``radius`` of segment ``ab`` (``lo > hi`` = none)."""
    r0 = max(0, math.ceil(min(a[1], b[1]) - radius - _TIE))
    r1 = min(height - 1, math.floor(max(a[1], b[1]) + radius + _TIE))
    rows = np.arange(r0, r1 + 1)
    y = rows.astype(np.float64)
    lo = np.full(rows.shape, np.inf)
    hi = np.full(rows.shape, -np.inf)
    for cx, cy in (a, b):  # the end discs
        dy = y - cy
        inside = np.abs(dy) <= radius
        half = np.sqrt(np.maximum(radius * radius - dy * dy, 0.0))
        lo = np.where(inside, np.minimum(lo, cx - half), lo)
        hi = np.where(inside, np.maximum(hi, cx + half), hi)
    d = b - a
    length = float(np.hypot(*d))
    if length > 0:  # the band: 0 <= t <= length and |s| <= radius, both linear in x on a row
        ux, uy = d / length
        band_lo, band_hi = np.full(rows.shape, -np.inf), np.full(rows.shape, np.inf)
        # t(x) = (x - ax) ux + (y - ay) uy ; s(x) = -(x - ax) uy + (y - ay) ux
        for coef, const, low, high in ((ux, (y - a[1]) * uy, 0.0, length),
                                       (-uy, (y - a[1]) * ux, -radius, radius)):
            if abs(coef) < 1e-12:
                ok = (const >= low - _TIE) & (const <= high + _TIE)
                band_lo = np.where(ok, band_lo, np.inf)
            else:
                x_low = a[0] + (low - const) / coef
                x_high = a[0] + (high - const) / coef
                band_lo = np.maximum(band_lo, np.minimum(x_low, x_high))
                band_hi = np.minimum(band_hi, np.maximum(x_low, x_high))
        some = band_lo <= band_hi
        lo = np.where(some, np.minimum(lo, band_lo), lo)
        hi = np.where(some, np.maximum(hi, band_hi), hi)
    return rows, lo, hi


def paint(mask: NDArray[np.bool_], strokes: Sequence[Stroke], image_hw: tuple[int, int],
          origin: tuple[int, int] = (0, 0)) -> NDArray[np.bool_]:
    """Apply ``strokes`` in order to ``mask`` (a window of an image of size ``image_hw``), in place.

    Args:
        mask: ``(h, w)`` bool, writable; its pixel ``(0, 0)`` is image pixel ``origin = (row0, col0)``.
        strokes: in the image's pixel grid.
        image_hw: ``(H, W)`` of the image the strokes are in.
        origin: ``(row0, col0)`` of the window.

    Returns:
        ``mask`` (painted where the strokes reach into the window).
    """
    h, w = mask.shape
    row0, col0 = origin
    for stroke in strokes:
        rows, starts, ends = stroke.runs(image_hw)
        rows, starts, ends = rows - row0, np.clip(starts - col0, 0, w), np.clip(ends - col0, 0, w)
        keep = (rows >= 0) & (rows < h) & (ends > starts)
        if not keep.any():
            continue
        rows, starts, ends = rows[keep], starts[keep], ends[keep]
        diff = np.zeros((h, w + 1), np.int32)
        np.add.at(diff, (rows, starts), 1)
        np.add.at(diff, (rows, ends), -1)
        painted = np.cumsum(diff[:, :w], axis=1) > 0
        if stroke.erase:
            mask &= ~painted
        else:
            mask |= painted
    return mask


def paint_crop(crop: NDArray[np.bool_], origin: tuple[int, int], strokes: Sequence[Stroke],
               image_hw: tuple[int, int]) -> tuple[NDArray[np.bool_], tuple[int, int]]:
    """Apply ``strokes`` to a mask crop, growing it to hold what the add strokes paint.

    Args:
        crop: ``(h, w)`` bool window of the mask (``(0, 0)``-shaped for an empty mask).
        origin: ``(row0, col0)`` of the window in the image.
        strokes: in the image's pixel grid.
        image_hw: ``(H, W)`` of the image.

    Returns:
        ``(crop, origin)``: a new window holding every painted pixel (``False`` elsewhere).
    """
    if not strokes:
        return crop, origin
    boxes = [stroke.box(image_hw) for stroke in strokes if not stroke.erase]
    boxes = [b for b in boxes if b is not None]
    if crop.size:
        boxes.append((origin[0], origin[1], origin[0] + crop.shape[0], origin[1] + crop.shape[1]))
    if not boxes:
        return np.zeros((0, 0), bool), (0, 0)
    row0, col0 = min(b[0] for b in boxes), min(b[1] for b in boxes)
    row1, col1 = max(b[2] for b in boxes), max(b[3] for b in boxes)
    out = np.zeros((row1 - row0, col1 - col0), bool)
    if crop.size:
        out[origin[0] - row0:origin[0] - row0 + crop.shape[0], origin[1] - col0:origin[1] - col0 + crop.shape[1]] = crop
    return paint(out, strokes, image_hw, (row0, col0)), (row0, col0)


def strokes_from_list(value: Any, image_hw: tuple[int, int], max_strokes: int) -> tuple[Stroke, ...]:
    """A saved list of strokes (``null`` = none), checked: at most ``max_strokes``, each by :meth:`Stroke.from_dict`.

    Raises:
        InvalidPromptError: not a list, too long, or a bad stroke.
    """
    if value is None:
        return ()
    if not isinstance(value, list):
        raise InvalidPromptError("'strokes' must be a list of strokes or null.")
    if len(value) > max_strokes:
        raise InvalidPromptError(f"At most {max_strokes} strokes per object, got {len(value)}.")
    return tuple(Stroke.from_dict(item, image_hw) for item in value)
