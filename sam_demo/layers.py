"""Mask layers for the page's view: one object's mask as a small 1-bit PNG with its place on the image.

The page colours and outlines each layer itself (``sam_demo/static/view/render.js``), so a layer is
only *where* the mask is: a PNG whose pixels are white (inside) or transparent (outside), cropped to
the mask's bounding box, plus the rectangle of the image it covers.

Frames: a layer's bitmap is in **display pixels** (``DisplayFrame.display_hw``), the same mask the
old server-drawn overlay showed (``mask_crop_from_logits`` of the shown candidate at the display
size). Its rectangle is given in **original pixel edges**: the image spans ``[0, W] x [0, H]`` and
original pixel ``(row, col)`` covers ``[col, col + 1) x [row, row + 1)`` (pixel-index coordinates,
as prompts use, are these minus 0.5). A display pixel ``i`` covers original edges
``[i * W / w, (i + 1) * W / w)`` (:class:`sam_onnx.geometry.DisplayFrame`), so the page draws the
bitmap stretched over the rectangle and each bitmap pixel lands exactly on the original pixels it
stands for, at any zoom.

A **refined** object (:mod:`sam_onnx.refine`: its logits cover a crop of the image at the crop's
resolution) is sharper than the display copy, so its layer's bitmap is in **original pixels** instead
(:func:`layer_frame`; scaled down only for a crop over :data:`REFINED_LAYER_MAX_PIXELS`): the same
rectangle rule places it, and zoomed in the page shows the edges the export has.

A layer's id is content-addressed: a hash of everything its pixels depend on (the image, the prompts,
the candidate shown, the bitmap size and the crop of a refined object), so a URL never changes meaning
and the page may cache it for good.
"""

from __future__ import annotations

import hashlib
import io
import math
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray
from PIL import Image

from sam_onnx.geometry import CropFrame, DisplayFrame
from sam_onnx.strokes import Stroke, in_frame, paint_crop
from sam_onnx.types import MaskResult, Prompts

LAYER_ID_HEX = 24
"""Hex digits of a layer id (96 bits of SHA-256: no collision among the layers one server ever holds)."""
PNG_PALETTE = (0, 0, 0, 255, 255, 255)
"""Palette of a layer PNG: index 0 (outside, fully transparent) and 1 (inside, white)."""
REFINED_LAYER_MAX_PIXELS = 4_000_000
"""Largest bitmap frame of a refined object's crop, in pixels: a crop up to 4 MP (2000 x 2000) is drawn at the
original resolution; a larger one is scaled down to this many pixels (its PNG stays a few tens of kB: 1 bit,
edges only)."""


@dataclass(frozen=True)
class LayerSpec:
    """What a layer's pixels depend on (small; kept so an evicted layer can be drawn again).

    Attributes:
        image_key: the image's content hash.
        prompts: the object's prompts (original pixels).
        candidate: the candidate shown, 0..2 (already resolved: ``None`` is never stored).
        display_hw: ``(h, w)`` of the display copy (the bitmap's frame, unless refined).
        crop: the crop a refined object is decoded on (:attr:`sam_demo.editor.ObjectState.crop`), or ``None``.
        strokes: the object's brush/eraser strokes in original pixels, applied after the candidate.
    """

    image_key: str
    prompts: Prompts
    candidate: int
    display_hw: tuple[int, int]
    crop: CropFrame | None = None
    strokes: tuple[Stroke, ...] = ()

    @property
    def layer_id(self) -> str:
        """The content address: SHA-256 of the fields' canonical text, :data:`LAYER_ID_HEX` hex digits."""
        fields = (self.image_key, self.prompts.to_dict(), int(self.candidate), tuple(self.display_hw))
        if self.crop is not None:
            fields += (self.crop.box,)
        if self.strokes:
            fields += (tuple(repr(s.to_dict()) for s in self.strokes),)
        return hashlib.sha256(repr(fields).encode()).hexdigest()[:LAYER_ID_HEX]


@dataclass(frozen=True)
class Place:
    """Where a layer is, without its pixels: all the scene needs of an object's layer (a few dozen bytes, kept
    apart from the PNG, so that an edit of one object needs neither the PNGs nor the decoder results of the
    others, whatever the caches of those hold).

    Attributes:
        offset: ``(row0, col0)`` of the bitmap in display pixels.
        size: ``(h', w')`` of the bitmap in display pixels (``(0, 0)`` for an empty mask).
        rect: ``(x0, y0, x1, y1)`` the bitmap covers, in original pixel edges.
    """

    offset: tuple[int, int]
    size: tuple[int, int]
    rect: tuple[float, float, float, float]

    @property
    def empty(self) -> bool:
        return self.size == (0, 0)


@dataclass(frozen=True)
class Layer(Place):
    """A drawn layer: its place and its PNG.

    Attributes:
        png: the 1-bit PNG (white inside, transparent outside); ``b""`` for an empty mask.
    """

    png: bytes

    @property
    def place(self) -> Place:
        """The layer without its PNG."""
        return Place(self.offset, self.size, self.rect)


def encode_png(crop: NDArray[np.bool_]) -> bytes:
    """A ``(h, w)`` bool mask as a 1-bit palette PNG: white where True, fully transparent where False."""
    image = Image.fromarray(np.asarray(crop, dtype=np.uint8), mode="P")
    image.putpalette(PNG_PALETTE)
    out = io.BytesIO()
    image.save(out, "PNG", bits=1, transparency=0, optimize=True)
    return out.getvalue()


def decode_png(png: bytes) -> NDArray[np.bool_]:
    """The ``(h, w)`` bool mask of a layer PNG (True where opaque); for tests and checks."""
    rgba = np.asarray(Image.open(io.BytesIO(png)).convert("RGBA"))
    return rgba[..., 3] > 0


def rect_of(offset: tuple[int, int], size: tuple[int, int], frame: DisplayFrame) -> tuple[float, float, float, float]:
    """The original-pixel-edge rectangle of a display-pixel crop (see the module docstring)."""
    (row0, col0), (h, w) = offset, size
    (oh, ow), (dh, dw) = frame.original_hw, frame.display_hw
    return (col0 * ow / dw, row0 * oh / dh, (col0 + w) * ow / dw, (row0 + h) * oh / dh)


def layer_frame(result: MaskResult, frame: DisplayFrame) -> DisplayFrame:
    """The frame of a result's layer bitmap: the display copy's, or for a refined result (logits of a crop) the
    original pixels, scaled down so that the crop holds at most :data:`REFINED_LAYER_MAX_PIXELS`."""
    crop = result.geometry.crop
    if crop is None:
        return frame
    ch, cw = crop.crop_hw
    scale = min(1.0, math.sqrt(REFINED_LAYER_MAX_PIXELS / (ch * cw)))
    h, w = frame.original_hw
    return DisplayFrame((h, w), (max(1, round(h * scale)), max(1, round(w * scale))))


def draw_layer(result: MaskResult, candidate: int, frame: DisplayFrame, strokes: tuple[Stroke, ...] = ()) -> Layer:
    """The layer of one decoder result's candidate: at the display size (the mask the overlay drew), or in
    original pixels for a refined result (:func:`layer_frame`); the object's ``strokes`` (original pixels)
    applied after it."""
    frame = layer_frame(result, frame)
    crop, offset = result.mask_crop(candidate, frame.display_hw)
    if strokes:
        crop, offset = paint_crop(np.array(crop), offset, in_frame(strokes, frame), frame.display_hw)
    if crop.size == 0 or not crop.any():
        return Layer((0, 0), (0, 0), (0.0, 0.0, 0.0, 0.0), b"")
    rows, cols = np.nonzero(crop.any(axis=1))[0], np.nonzero(crop.any(axis=0))[0]
    tight = crop[rows[0]:rows[-1] + 1, cols[0]:cols[-1] + 1]
    offset = (offset[0] + int(rows[0]), offset[1] + int(cols[0]))
    size = (int(tight.shape[0]), int(tight.shape[1]))
    return Layer(offset, size, rect_of(offset, size, frame), encode_png(tight))
