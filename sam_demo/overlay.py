"""Draw masks, contours and prompt markers onto a display image (pure numpy + Pillow).

Everything here works in **display pixels** of the image being drawn on: the
``(h, w, 3)`` uint8 RGB array a UI shows (see
:class:`sam_onnx.geometry.DisplayFrame`), with the pixel-index convention of
:mod:`sam_onnx.geometry` (pixel ``(row, col)`` has its centre at ``x = col``,
``y = row``). Functions never modify their inputs; read-only arrays are fine.

What the user sees:

* **fill**: each mask pixel moves toward the layer colour by ``opacity``
  (fixed point, ``a = round(opacity * 256)``):
  ``(base * (256 - a) + colour * a + 128) >> 8`` per channel, i.e. the
  rounded blend; opacity 0.5 gives ``(base + colour + 1) // 2``;
* **contour**: a band of about 2 px (scaled with the image size) just *inside*
  the mask boundary, in the layer colour;
* **selection**: the selected layer additionally gets a white halo just
  *outside* its boundary with a thin dark rim beyond it, so it stands out on
  dark and bright backgrounds alike (drawn even when ``contour=False``);
* **points**: a disc in the layer colour with a dark rim and a white glyph:
  ``+`` for a positive click, ``-`` for a negative one (distinguishable
  without colour), centred on the clicked pixel, or moved inward just enough
  to be whole when the click is nearer to the image edge than its radius;
* **box**: a rectangle outline in the layer colour between two dark lines;
* **pending corner**: a white crosshair with a dark rim where the first corner
  of a box being drawn lies.

Drawing order: the fills of all layers in order (later on top, so where masks
overlap the colours blend in order); then the outlines in order, the selected
layer's last; then boxes and points of all layers, the selected layer's last;
then the pending corner. An outline or marker is thus never hidden under
another object's fill.

Speed: masks are handled inside their bounding box only (and may be given as
crops, see :meth:`MaskLayer.from_crop` and
:func:`sam_onnx.postprocess.mask_crop_from_logits`); blending is uint16
fixed-point maths per channel plane; thin bands are written through flat
indices; markers are drawn in small anti-aliased patches.
``bench/bench_overlay.py`` measures it.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray
from PIL import Image

RGB = tuple[int, int, int]

PALETTE: tuple[RGB, ...] = (
    (230, 159, 0),  # orange
    (86, 180, 233),  # sky blue
    (0, 158, 115),  # bluish green
    (240, 228, 66),  # yellow
    (0, 114, 178),  # blue
    (213, 94, 0),  # vermillion
    (204, 121, 167),  # reddish purple
)
"""Okabe-Ito colour-blind-safe palette without black, as ``(r, g, b)`` uint8 values: the first 7 objects."""
PALETTE_SIZE = 256
"""Distinct object colours (:func:`palette`): as many as objects an image may have (``sam_demo.editor.MAX_OBJECTS``)."""
CANDIDATE_STEP = 17
"""sRGB grid step of the colours :func:`palette` chooses from (16 levels per channel)."""
MIN_LIGHTNESS, MAX_LIGHTNESS = 0.5, 0.8
MIN_CHROMA, MAX_CHROMA = 0.09, 0.22
"""OKLab bounds of the colours :func:`palette` adds (light enough for the dark rims, dark enough for the white
glyphs; the Okabe-Ito yellow is lighter)."""

WHITE: RGB = (255, 255, 255)
"""Glyphs on point markers, the selection halo and the pending-corner crosshair."""
DARK: RGB = (20, 20, 20)
"""Rims around markers, boxes and the selection halo (contrast on bright backgrounds)."""

POSITIVE_LABEL = 1
"""Point label drawn with a ``+`` glyph; any other label is drawn with ``-``."""

DEFAULT_OPACITY = 0.5
THUMBNAIL_SIDE = 160
"""Default long side of candidate thumbnails, in pixels."""

CONTOUR_PX_PER_SIDE = 1 / 640
"""Contour width per pixel of the image's long side (2 px at 1024-1536 px)."""
MAX_CONTOUR_PX = 4
MARKER_RADIUS_FRACTION = 0.013
"""Point marker radius as a fraction of the image's long side (about 20 px at 1536 px)."""
MIN_MARKER_RADIUS = 4.0
RIM_FRACTION = 0.16
"""Dark rim width of point markers and the crosshair, as a fraction of the marker radius."""
MIN_RIM_PX = 1.5
GLYPH_ARM_FRACTION = 0.55
"""Half length of the ``+``/``-`` bars, as a fraction of the marker radius."""
GLYPH_HALF_THICKNESS_FRACTION = 0.11
CROSSHAIR_ARM_FRACTION = 1.6
"""Half length of the pending-corner crosshair arms, as a fraction of the marker radius."""
CROSSHAIR_HALF_THICKNESS_FRACTION = 0.08
TIGHTEN_BELOW = 0.7
"""A mask crop is cut to its bounding box (a copy) only when that box is below this share of the crop."""
FIXED_POINT_BITS = 8
FIXED_POINT_ONE = 1 << FIXED_POINT_BITS
"""Blending weights are multiples of 1/256 (opacity 0.5 -> exactly 128/256)."""
THUMBNAIL_REDUCING_GAP = 2.0
"""Pillow ``reducing_gap`` for thumbnails: integer pre-reduction, then bilinear (fast, smooth)."""


def _oklab(rgb: NDArray) -> NDArray[np.float64]:
    """``(..., 3)`` sRGB uint8 values -> ``(..., 3)`` OKLab ``(L, a, b)`` (Björn Ottosson's definition)."""
    c = np.asarray(rgb, np.float64) / 255.0
    linear = np.where(c <= 0.04045, c / 12.92, ((c + 0.055) / 1.055) ** 2.4)
    return np.cbrt(linear @ _SRGB_TO_LMS.T) @ _LMS_TO_OKLAB.T


_SRGB_TO_LMS = np.array([[0.4122214708, 0.5363325363, 0.0514459929],
                         [0.2119034982, 0.6806995451, 0.1073969566],
                         [0.0883024619, 0.2817188376, 0.6299787005]])
_LMS_TO_OKLAB = np.array([[0.2104542553, 0.7936177850, -0.0040720468],
                          [1.9779984951, -2.4285922050, 0.4505937099],
                          [0.0259040371, 0.7827717662, -0.8086757660]])


@functools.cache
def palette() -> tuple[RGB, ...]:
    """:data:`PALETTE_SIZE` object colours: :data:`PALETTE` first, then each the one farthest from all before it.

    Candidates are an sRGB grid (step :data:`CANDIDATE_STEP`) kept to mid lightness and moderate chroma in
    OKLab (markers have dark rims and white glyphs, the selection halo is white, and a grey would look like
    the photo); each next colour is the candidate whose nearest already chosen colour is farthest (OKLab
    distance). So every object of an image (at most 256) has its own colour, and the first ones differ most:
    the first 12 at least as much as the Okabe-Ito colours among themselves (OKLab 0.156), the first 64 by at
    least 0.068, all 256 by at least 0.037. Only the first 7 are chosen for colour-blind viewers. Computed on
    first use (about 20 ms), then cached.
    """
    levels = np.arange(0, 256, CANDIDATE_STEP)
    grid = np.stack(np.meshgrid(levels, levels, levels, indexing="ij"), axis=-1).reshape(-1, 3)
    lab = _oklab(grid)
    lightness, chroma = lab[:, 0], np.hypot(lab[:, 1], lab[:, 2])
    keep = ((lightness >= MIN_LIGHTNESS) & (lightness <= MAX_LIGHTNESS)
            & (chroma >= MIN_CHROMA) & (chroma <= MAX_CHROMA))
    grid, lab = grid[keep], lab[keep]
    chosen = list(PALETTE)
    nearest = np.linalg.norm(lab[:, None, :] - _oklab(np.array(PALETTE))[None, :, :], axis=-1).min(axis=1)
    while len(chosen) < PALETTE_SIZE:
        k = int(np.argmax(nearest))
        chosen.append(tuple(int(v) for v in grid[k]))
        nearest = np.minimum(nearest, np.linalg.norm(lab - lab[k], axis=1))
    return tuple(chosen)


def color_for(index: int) -> RGB:
    """The colour of object ``index`` (0, 1, 2, ...): :func:`palette`, cycling after :data:`PALETTE_SIZE`."""
    return palette()[int(index) % PALETTE_SIZE]


def _check_color(color: Sequence[int]) -> RGB:
    values = tuple(int(v) for v in color)
    if len(values) != 3 or not all(0 <= v <= 255 for v in values):
        raise ValueError(f"colour must be three integers in 0..255, got {color!r}")
    return values  # type: ignore[return-value]


@dataclass(frozen=True, eq=False)
class MaskLayer:
    """One object to draw: its mask, colour and prompts, all in display pixels.

    The mask is either the full ``(h, w)`` bool mask of the display image
    (``offset=(0, 0)``, ``hw=None``) or a crop of it: ``mask`` is then
    ``(h', w')`` bool placed at ``offset = (row0, col0)`` in an image of size
    ``hw = (h, w)``, and everything outside the crop is outside the mask (see
    :meth:`from_crop`). An empty ``(0, 0)`` crop draws markers only.

    Attributes:
        mask: ``(h, w)`` or ``(h', w')`` bool (not copied; never modified).
        color: ``(r, g, b)`` uint8 values, e.g. :func:`color_for`.
        selected: the object being edited; drawn with a halo.
        points: ``(x, y, label)`` clicks in display pixels; label 1 = positive
            (drawn with ``+``), anything else negative (drawn with ``-``).
        box: ``(x0, y0, x1, y1)`` in display pixels, or ``None``.
        offset: ``(row0, col0)`` of the crop in display pixels.
        hw: ``(h, w)`` of the display image; ``None`` = ``mask.shape``.
    """

    mask: NDArray[np.bool_]
    color: RGB
    selected: bool = False
    points: tuple[tuple[float, float, int], ...] = ()
    box: tuple[float, float, float, float] | None = None
    offset: tuple[int, int] = (0, 0)
    hw: tuple[int, int] | None = None

    def __post_init__(self) -> None:
        mask = np.asarray(self.mask)
        if mask.ndim != 2:
            raise ValueError(f"a mask layer needs a 2-D mask, got shape {mask.shape}")
        object.__setattr__(self, "mask", mask.astype(bool, copy=False))
        object.__setattr__(self, "color", _check_color(self.color))
        object.__setattr__(self, "selected", bool(self.selected))
        points = tuple((float(x), float(y), int(label)) for x, y, label in self.points)
        object.__setattr__(self, "points", points)
        if self.box is not None:
            x0, y0, x1, y1 = (float(v) for v in self.box)
            object.__setattr__(self, "box", (min(x0, x1), min(y0, y1), max(x0, x1), max(y0, y1)))
        row0, col0 = (int(v) for v in self.offset)
        object.__setattr__(self, "offset", (row0, col0))
        if self.hw is None:
            if mask.size == 0:
                raise ValueError("an empty mask needs the image size `hw` (use MaskLayer.from_crop)")
            if (row0, col0) != (0, 0):
                raise ValueError("a cropped mask needs the full image size `hw`")
            object.__setattr__(self, "hw", mask.shape)
            return
        h, w = (int(v) for v in self.hw)
        object.__setattr__(self, "hw", (h, w))
        if h < 1 or w < 1:
            raise ValueError(f"hw must be positive, got {self.hw}")
        if mask.size and (row0 < 0 or col0 < 0 or row0 + mask.shape[0] > h or col0 + mask.shape[1] > w):
            raise ValueError(f"crop {mask.shape} at {self.offset} does not fit in an image of size {self.hw}")

    @classmethod
    def from_crop(
        cls,
        crop: NDArray[np.bool_],
        offset: tuple[int, int],
        hw: tuple[int, int],
        *,
        color: RGB,
        selected: bool = False,
        points: tuple[tuple[float, float, int], ...] = (),
        box: tuple[float, float, float, float] | None = None,
    ) -> MaskLayer:
        """A layer from a mask crop, e.g. the output of ``mask_crop_from_logits(logits, hw)``.

        Args:
            crop: ``(h', w')`` bool, the mask inside its window (may be ``(0, 0)``).
            offset: ``(row0, col0)`` of the window in display pixels.
            hw: ``(h, w)`` of the display image.
        """
        return cls(crop, color, selected, points, box, offset, hw)


@dataclass(frozen=True)
class _Sizes:
    """Stroke and marker sizes for one image, in display pixels."""

    contour: int
    halo: int
    box: int
    radius: float

    @classmethod
    def for_image(cls, hw: tuple[int, int], marker_scale: float) -> _Sizes:
        long_side = max(hw)
        contour = max(1, min(MAX_CONTOUR_PX, round(long_side * CONTOUR_PX_PER_SIDE)))
        radius = max(MIN_MARKER_RADIUS, long_side * MARKER_RADIUS_FRACTION) * marker_scale
        return cls(contour=contour, halo=contour, box=contour + 1, radius=max(radius, 1.0))


# --------------------------------------------------------------------------- masks


def _alpha_256(opacity: float) -> int:
    """Opacity in 1/256 steps (fixed-point blending weight, 0..256)."""
    return round(opacity * FIXED_POINT_ONE)


def _dilate(mask: NDArray[np.bool_], radius: int) -> NDArray[np.bool_]:
    """Dilation by a ``(2r+1)`` square (separable); pixels beyond the array count as outside."""
    out = mask.copy()
    for k in range(1, radius + 1):
        out[k:, :] |= mask[:-k, :]
        out[:-k, :] |= mask[k:, :]
    rows = out.copy()
    for k in range(1, radius + 1):
        out[:, k:] |= rows[:, :-k]
        out[:, :-k] |= rows[:, k:]
    return out


def _inner_band(mask: NDArray[np.bool_], width: int) -> NDArray[np.bool_]:
    """Mask pixels within ``width`` px (square neighbourhood) of an outside pixel.

    The caller pads ``mask`` with at least ``width`` False pixels on every side.
    """
    return mask & _dilate(~mask, width)


def _paint_pixels(out: NDArray[np.uint8], where: NDArray[np.bool_], row0: int, col0: int, color: RGB) -> None:
    """Set ``out[row0 + r, col0 + c] = color`` wherever ``where[r, c]``; ``out`` is C-contiguous.

    Flat indices are much faster than a broadcast ``np.copyto(..., where=)``
    for thin bands such as contours.
    """
    local = np.flatnonzero(where)
    if local.size == 0:
        return
    rows, cols = np.divmod(local, where.shape[1])
    out.reshape(-1, 3)[(rows + row0) * out.shape[1] + (cols + col0)] = color


@dataclass(frozen=True)
class _Placed:
    """A layer's mask, cut to (about) its bounding box: ``tight`` ``(h', w')`` bool at display ``(row0, col0)``.

    ``tight`` is C-contiguous; it is the layer's own crop when that is within
    :data:`TIGHTEN_BELOW` of the bounding box already, so it may have a few
    False rows/columns at its edges.
    """

    layer: MaskLayer
    tight: NDArray[np.bool_]
    row0: int
    col0: int

    @classmethod
    def of(cls, layer: MaskLayer) -> _Placed | None:
        """``None`` when the layer has no mask pixel."""
        crop = layer.mask
        if crop.size == 0:
            return None
        rows = np.flatnonzero(crop.any(axis=1))
        if rows.size == 0:
            return None
        cols = np.flatnonzero(crop.any(axis=0))
        top, bottom = int(rows[0]), int(rows[-1]) + 1
        left, right = int(cols[0]), int(cols[-1]) + 1
        if crop.flags.c_contiguous and (bottom - top) * (right - left) >= TIGHTEN_BELOW * crop.size:
            # Nearly tight already (e.g. from mask_crop_from_logits): skip the copy.
            return cls(layer, crop, *layer.offset)
        # Contiguous: masked copies with a strided `where` are about twice as slow.
        tight = np.ascontiguousarray(crop[top:bottom, left:right])
        return cls(layer, tight, layer.offset[0] + top, layer.offset[1] + left)


def _fill(out: NDArray[np.uint8], placed: _Placed, alpha: int) -> None:
    """Tint the mask pixels: ``(v * (256 - alpha) + colour * alpha + 128) >> 8`` per channel.

    Works inside the bounding box only, one channel plane at a time, in
    uint16 (at most ``255 * 256 + 128``, no overflow).
    """
    tight = placed.tight
    region = out[placed.row0 : placed.row0 + tight.shape[0], placed.col0 : placed.col0 + tight.shape[1]]
    blended = np.empty(tight.shape, dtype=np.uint16)
    for channel, value in enumerate(placed.layer.color):
        plane = region[..., channel]
        np.multiply(plane, np.uint16(FIXED_POINT_ONE - alpha), out=blended)
        blended += np.uint16(value * alpha + FIXED_POINT_ONE // 2)
        blended >>= FIXED_POINT_BITS
        np.copyto(plane, blended, where=tight, casting="unsafe")


def _outline(out: NDArray[np.uint8], placed: _Placed, contour: bool, sizes: _Sizes) -> None:
    """Contour band inside the mask boundary; for the selected layer also a white + dark halo outside it."""
    halo = sizes.halo + 1 if placed.layer.selected else 0  # white band + 1 px dark rim
    if not contour and not halo:
        return
    h, w = out.shape[:2]
    tight, row0, col0 = placed.tight, placed.row0, placed.col0
    pad = max(sizes.contour, halo) + 1  # False border: erosion/dilation see "outside" around the mask
    local = np.zeros((tight.shape[0] + 2 * pad, tight.shape[1] + 2 * pad), dtype=bool)
    local[pad:-pad, pad:-pad] = tight
    # The part of `local` inside the image; its top-left pixel is display (top_row, left_col).
    r_lo, c_lo = max(0, pad - row0), max(0, pad - col0)
    r_hi = local.shape[0] - max(0, row0 - pad + local.shape[0] - h)
    c_hi = local.shape[1] - max(0, col0 - pad + local.shape[1] - w)
    top_row, left_col = row0 - pad + r_lo, col0 - pad + c_lo

    def paint(where: NDArray[np.bool_], color: RGB) -> None:
        _paint_pixels(out, where[r_lo:r_hi, c_lo:c_hi], top_row, left_col, color)

    if halo:
        inner = _dilate(local, sizes.halo)
        paint(inner & ~local, WHITE)
        paint(_dilate(inner, 1) & ~inner, DARK)
    if contour:
        paint(_inner_band(local, sizes.contour), placed.layer.color)


# --------------------------------------------------------------------------- markers


def _patch(out: NDArray[np.uint8], x: float, y: float, reach: float) -> tuple[slice, slice, NDArray, NDArray] | None:
    """Rows/cols within ``reach`` of ``(x, y)`` clipped to the image, with per-pixel offsets dx, dy."""
    h, w = out.shape[:2]
    r_lo, r_hi = max(0, math.floor(y - reach)), min(h, math.ceil(y + reach) + 1)
    c_lo, c_hi = max(0, math.floor(x - reach)), min(w, math.ceil(x + reach) + 1)
    if r_lo >= r_hi or c_lo >= c_hi:
        return None
    dy = (np.arange(r_lo, r_hi, dtype=np.float32) - np.float32(y))[:, None]
    dx = (np.arange(c_lo, c_hi, dtype=np.float32) - np.float32(x))[None, :]
    return slice(r_lo, r_hi), slice(c_lo, c_hi), dx, dy


def _coverage(distance_beyond: NDArray[np.float32]) -> NDArray[np.float32]:
    """Approximate pixel coverage of a shape edge: 1 inside, 0 outside, linear over one pixel."""
    return np.clip(0.5 - distance_beyond, 0.0, 1.0)


def _bar(dx: NDArray, dy: NDArray, half_length: float, half_thickness: float) -> NDArray[np.float32]:
    """Coverage of an axis-aligned bar centred at ``dx = dy = 0`` (horizontal: length along x)."""
    return _coverage(np.abs(dx) - half_length) * _coverage(np.abs(dy) - half_thickness)


def _composite(out: NDArray[np.uint8], rows: slice, cols: slice, strokes: Sequence[tuple[NDArray, RGB]]) -> None:
    """Paint ``(coverage, colour)`` strokes in order onto ``out[rows, cols]`` (anti-aliased)."""
    patch = out[rows, cols].astype(np.float32)
    for coverage, color in strokes:
        alpha = np.broadcast_to(coverage, patch.shape[:2])[..., None]
        patch += (np.asarray(color, np.float32) - patch) * alpha
    out[rows, cols] = np.clip(np.rint(patch), 0, 255).astype(np.uint8)


def _inside(value: float, radius: float, size: int) -> float:
    """``value`` moved into ``[radius, size - 1 - radius]`` (the middle when the image is narrower)."""
    if size - 1 < 2 * radius:
        return (size - 1) / 2
    return min(max(value, radius), size - 1 - radius)


def _draw_point(out: NDArray[np.uint8], x: float, y: float, label: int, color: RGB, radius: float) -> None:
    """A disc in ``color`` with a dark rim and a white ``+`` (positive) or ``-`` (negative).

    Centred on ``(x, y)``; a point nearer to the image edge than ``radius`` has its disc moved inward just
    enough to be drawn whole (the point then lies under its rim, or just beyond it in a corner).
    """
    h, w = out.shape[:2]
    if -0.5 <= x <= w - 0.5 and -0.5 <= y <= h - 0.5:  # on the image (points off it are drawn clipped)
        x, y = _inside(x, radius, w), _inside(y, radius, h)
    found = _patch(out, x, y, radius + 1)
    if found is None:
        return
    rows, cols, dx, dy = found
    distance = np.sqrt(dx * dx + dy * dy)
    rim = max(MIN_RIM_PX, radius * RIM_FRACTION)
    arm = radius * GLYPH_ARM_FRACTION
    half_thickness = max(0.5, radius * GLYPH_HALF_THICKNESS_FRACTION)
    glyph = _bar(dx, dy, arm, half_thickness)
    if label == POSITIVE_LABEL:
        glyph = np.maximum(glyph, _bar(dy, dx, arm, half_thickness))
    _composite(out, rows, cols, (
        (_coverage(distance - radius), DARK),
        (_coverage(distance - (radius - rim)), color),
        (glyph, WHITE),
    ))


def _draw_crosshair(out: NDArray[np.uint8], x: float, y: float, radius: float) -> None:
    """A white crosshair with a dark rim: the first corner of a box being drawn."""
    arm = radius * CROSSHAIR_ARM_FRACTION
    rim = max(MIN_RIM_PX, radius * RIM_FRACTION)
    found = _patch(out, x, y, arm + rim + 1)
    if found is None:
        return
    rows, cols, dx, dy = found
    half_thickness = max(0.5, radius * CROSSHAIR_HALF_THICKNESS_FRACTION)

    def cross(grow: float) -> NDArray[np.float32]:
        length, thickness = arm + grow, half_thickness + grow
        return np.maximum(_bar(dx, dy, length, thickness), _bar(dy, dx, length, thickness))

    _composite(out, rows, cols, ((cross(rim), DARK), (cross(0.0), WHITE)))


def _fill_rect(out: NDArray[np.uint8], r0: int, r1: int, c0: int, c1: int, color: RGB) -> None:
    """Fill rows ``r0..r1`` and cols ``c0..c1`` (inclusive), clipped to the image."""
    h, w = out.shape[:2]
    r0, r1, c0, c1 = max(r0, 0), min(r1, h - 1), max(c0, 0), min(c1, w - 1)
    if r0 <= r1 and c0 <= c1:
        out[r0 : r1 + 1, c0 : c1 + 1] = color


def _frame(out: NDArray[np.uint8], x0: int, y0: int, x1: int, y1: int, before: int, after: int, color: RGB) -> None:
    """Lines through rows y0, y1 and cols x0, x1, spanning ``before`` px before and ``after`` px after each."""
    _fill_rect(out, y0 - before, y0 + after, x0 - before, x1 + after, color)
    _fill_rect(out, y1 - before, y1 + after, x0 - before, x1 + after, color)
    _fill_rect(out, y0 - before, y1 + after, x0 - before, x0 + after, color)
    _fill_rect(out, y0 - before, y1 + after, x1 - before, x1 + after, color)


def _draw_box(out: NDArray[np.uint8], box: tuple[float, float, float, float], color: RGB, width: int) -> None:
    """Box outline centred on the box's edge pixels: a ``color`` line between two 1 px dark lines."""
    if not all(math.isfinite(v) for v in box):
        return
    x0, y0, x1, y1 = (round(v) for v in box)
    before = (width - 1) // 2
    after = width - 1 - before
    _frame(out, x0, y0, x1, y1, before + 1, after + 1, DARK)
    _frame(out, x0, y0, x1, y1, before, after, color)


# --------------------------------------------------------------------------- public


def _check_rgb(base_rgb: NDArray[np.uint8]) -> NDArray[np.uint8]:
    base = np.asarray(base_rgb)
    if base.ndim != 3 or base.shape[2] != 3 or base.dtype != np.uint8:
        raise ValueError(f"expected an (h, w, 3) uint8 RGB image, got shape {base.shape} dtype {base.dtype}")
    if base.shape[0] < 1 or base.shape[1] < 1:
        raise ValueError(f"image must not be empty, got shape {base.shape}")
    return base


def render_overlay(
    base_rgb: NDArray[np.uint8],
    layers: Sequence[MaskLayer],
    *,
    opacity: float = DEFAULT_OPACITY,
    contour: bool = True,
    pending_corner: tuple[float, float] | None = None,
    marker_scale: float = 1.0,
) -> NDArray[np.uint8]:
    """Draw objects and their prompts on a copy of a display image.

    Args:
        base_rgb: ``(h, w, 3)`` uint8 RGB display image (not modified; may be read-only).
        layers: objects to draw, bottom first; every layer's ``hw`` must be ``(h, w)``.
        opacity: fill strength in ``[0, 1]``; 0 draws no fill (contour only).
        contour: draw a ~2 px outline inside each mask boundary.
        pending_corner: ``(x, y)`` display pixels of a box's first corner, or ``None``.
        marker_scale: multiplies the size of points and the crosshair (they
            scale with the image's long side already).

    Returns:
        A new ``(h, w, 3)`` uint8 array.
    """
    base = _check_rgb(base_rgb)
    if not 0.0 <= opacity <= 1.0:
        raise ValueError(f"opacity must be in [0, 1], got {opacity}")
    if not marker_scale > 0:
        raise ValueError(f"marker_scale must be positive, got {marker_scale}")
    hw = base.shape[:2]
    for layer in layers:
        if tuple(layer.hw) != hw:
            raise ValueError(f"layer drawn for an image of size {layer.hw}, but the image is {hw}")
    out = np.array(base, dtype=np.uint8, order="C", copy=True)
    sizes = _Sizes.for_image(hw, marker_scale)
    placed = [p for p in (_Placed.of(layer) for layer in layers) if p is not None]
    alpha = _alpha_256(float(opacity))
    if alpha:
        for item in placed:
            _fill(out, item, alpha)
    for item in sorted(placed, key=lambda item: item.layer.selected):  # stable: the selected outline last
        _outline(out, item, contour, sizes)
    on_top = sorted(layers, key=lambda layer: layer.selected)  # stable: the selected layer last
    for layer in on_top:
        if layer.box is not None:
            _draw_box(out, layer.box, layer.color, sizes.box)
    for layer in on_top:
        for x, y, label in layer.points:
            if math.isfinite(x) and math.isfinite(y):
                _draw_point(out, x, y, label, layer.color, sizes.radius)
    if pending_corner is not None:
        x, y = (float(v) for v in pending_corner)
        if math.isfinite(x) and math.isfinite(y):
            _draw_crosshair(out, x, y, sizes.radius)
    return out


def thumbnail_hw(hw: tuple[int, int], size: int = THUMBNAIL_SIDE) -> tuple[int, int]:
    """``(h, w)`` of a thumbnail whose long side is ``size`` with the aspect ratio of ``hw`` (each side >= 1)."""
    h, w = (int(v) for v in hw)
    if h < 1 or w < 1 or size < 1:
        raise ValueError(f"sizes must be positive, got hw={hw} size={size}")
    scale = size / max(h, w)
    return max(1, round(h * scale)), max(1, round(w * scale))


def thumbnail_base(base_rgb: NDArray[np.uint8], size: int = THUMBNAIL_SIDE) -> NDArray[np.uint8]:
    """``base_rgb`` shrunk to :func:`thumbnail_hw` (returned as is when it is that size already).

    Callers that draw thumbnails on every click can make this once per image and
    pass it to :func:`candidate_thumbnails`, which then skips the resize.
    """
    base = _check_rgb(base_rgb)
    thumb_hw = thumbnail_hw(base.shape[:2], size)
    if thumb_hw == base.shape[:2]:
        return base
    image = Image.fromarray(np.ascontiguousarray(base))
    return np.asarray(image.resize((thumb_hw[1], thumb_hw[0]), Image.Resampling.BILINEAR,
                                   reducing_gap=THUMBNAIL_REDUCING_GAP))


def _resize_nearest(mask: NDArray[np.bool_], hw: tuple[int, int]) -> NDArray[np.bool_]:
    """Nearest-neighbour resize by pixel centres: ``(H, W)`` bool -> ``hw`` bool."""
    src_h, src_w = mask.shape
    rows = np.minimum(((np.arange(hw[0]) + 0.5) * (src_h / hw[0])).astype(np.intp), src_h - 1)
    cols = np.minimum(((np.arange(hw[1]) + 0.5) * (src_w / hw[1])).astype(np.intp), src_w - 1)
    return mask[rows[:, None], cols[None, :]]


def candidate_thumbnails(
    base_rgb: NDArray[np.uint8],
    masks: Sequence[NDArray[np.bool_]],
    color: RGB,
    *,
    size: int = THUMBNAIL_SIDE,
    opacity: float = DEFAULT_OPACITY,
    contour: bool = True,
) -> list[NDArray[np.uint8]]:
    """Small previews of candidate masks (e.g. SAM's 3) for a chooser.

    The base image is downscaled once (long side ``size``, aspect kept, see
    :func:`thumbnail_hw`). Masks may come at any size and are resized to the
    thumbnail by nearest neighbour, but the fastest and smoothest is to ask for
    them at the thumbnail size directly:
    ``result.mask(k, hw=thumbnail_hw(base_rgb.shape[:2], size))`` upsamples
    the 256 x 256 logits straight to about 160 px.

    Args:
        base_rgb: ``(h, w, 3)`` uint8 display (or original) image.
        masks: ``(H, W)`` bool masks of the same image, any size each.
        color: ``(r, g, b)`` colour to tint with.

    Returns:
        One new ``(th, tw, 3)`` uint8 array per mask, ``(th, tw) = thumbnail_hw(base_rgb.shape[:2], size)``.
    """
    if not masks:
        return []
    small = thumbnail_base(base_rgb, size)
    thumb_hw = small.shape[:2]
    thumbs = []
    for mask in masks:
        mask = np.asarray(mask, dtype=bool)
        if mask.ndim != 2:
            raise ValueError(f"expected (H, W) masks, got shape {mask.shape}")
        if mask.shape != thumb_hw:
            mask = _resize_nearest(mask, thumb_hw)
        thumbs.append(render_overlay(small, [MaskLayer(mask, color)], opacity=opacity, contour=contour))
    return thumbs
