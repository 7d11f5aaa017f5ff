"""Masks that exercise the mask → polygon export: holes, several parts, one-pixel necks, diagonal neighbours,
the image border, and a smooth SAM-like blob. Used by tests/test_vector.py and bench/bench_vector.py.

Every mask is ``(H, W)`` bool at original resolution; no part is smaller than
``sam_onnx.vector.DEFAULT_MIN_AREA`` pixels, so the default export keeps all of it.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray
from PIL import Image

HW = (240, 320)


def _disc(cy: float, cx: float, r: float, hw=HW) -> NDArray[np.bool_]:
    yy, xx = np.ogrid[0:hw[0], 0:hw[1]]
    return (yy - cy) ** 2 + (xx - cx) ** 2 <= r * r


def ring_with_hole() -> NDArray[np.bool_]:
    """A disc of radius 80 with a hole of radius 40."""
    return _disc(120, 160, 80) & ~_disc(120, 160, 40)


def nested_islands() -> NDArray[np.bool_]:
    """A square frame holding a hole that holds an island that holds a hole (two levels of nesting)."""
    m = np.zeros(HW, bool)
    m[20:220, 40:280] = True
    m[50:190, 70:250] = False
    m[80:160, 100:220] = True
    m[105:135, 140:180] = False
    return m


def several_parts() -> NDArray[np.bool_]:
    """Three separate discs and a rectangle."""
    return _disc(60, 60, 40) | _disc(60, 250, 35) | _disc(180, 160, 50) | np.pad(
        np.ones((30, 40), bool), ((190, 20), (10, 270)))


def one_pixel_neck() -> NDArray[np.bool_]:
    """Two squares joined by a corridor one pixel high and a column one pixel wide (the necks must survive)."""
    m = np.zeros(HW, bool)
    m[40:120, 30:110] = True
    m[40:120, 200:280] = True
    m[80, 110:200] = True            # horizontal neck, 1 px high
    m[120:200, 240] = True           # vertical neck, 1 px wide, down to another square
    m[200:230, 220:260] = True
    return m


def diagonal_touch() -> NDArray[np.bool_]:
    """Squares that touch only at a corner (8-connected, not 4-connected), and a hole that touches its
    outer boundary only at a corner."""
    m = np.zeros(HW, bool)
    m[30:90, 30:90] = True
    m[90:150, 90:150] = True         # shares the corner (90, 90) with the first square
    m[150:210, 30:90] = True         # and the corner (150, 90) with the second
    frame = np.zeros(HW, bool)
    frame[40:200, 180:300] = True
    frame[60:180, 200:280] = False   # hole ...
    frame[40:60, 180:200] = False    # ... and a notch that meets the hole's corner diagonally
    return m | frame


def touching_border() -> NDArray[np.bool_]:
    """Parts on all four edges and in the corners of the image, one with a hole."""
    m = _disc(0, 0, 60) | _disc(HW[0] - 1, HW[1] - 1, 50)
    m[:, HW[1] - 25:] = True
    m[HW[0] - 20:, 60:200] = True
    m[100:140, HW[1] - 15:HW[1] - 5] = False  # a hole in the right-edge band
    return m


def checkerboard_block() -> NDArray[np.bool_]:
    """A 6 × 6 checkerboard of 4 × 4 cells (parts that touch only at corners, 18 of them) beside a solid square."""
    m = np.zeros(HW, bool)
    cells = (np.indices((6, 6)).sum(axis=0) % 2 == 0)
    m[40:64, 40:64] = np.kron(cells, np.ones((4, 4), bool))
    m[100:200, 150:280] = True
    return m


def sam_like_blob() -> NDArray[np.bool_]:
    """A smooth mask with holes and parts, made the way SAM makes masks: low-res logits upsampled bilinearly."""
    rng = np.random.default_rng(20)
    low = rng.normal(size=(12, 16)).astype(np.float32)
    up = np.asarray(Image.fromarray(low).resize((HW[1], HW[0]), Image.Resampling.BILINEAR))
    return up > 0.2


def full_image() -> NDArray[np.bool_]:
    """Every pixel: one rectangle that is the image's own border."""
    return np.ones(HW, bool)


SHAPES = {
    "ring_with_hole": ring_with_hole,
    "nested_islands": nested_islands,
    "several_parts": several_parts,
    "one_pixel_neck": one_pixel_neck,
    "diagonal_touch": diagonal_touch,
    "touching_border": touching_border,
    "checkerboard_block": checkerboard_block,
    "sam_like_blob": sam_like_blob,
    "full_image": full_image,
}
"""Name → function making the mask."""
