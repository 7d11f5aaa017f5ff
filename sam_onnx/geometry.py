"""Coordinate frames and the one place where coordinates change frame.

Four frames exist, and every coordinate in this package names its frame:

* **original** (``*_px``): pixels of the upright original image, ``(H, W)``.
  A point ``(x, y)`` is a pixel index: the pixel's centre is at ``(x, y)``
  and the image spans ``[-0.5, W - 0.5] x [-0.5, H - 0.5]``.
* **display** (``*_display``): pixels of the (possibly downscaled) copy of the
  image that a UI shows, ``(h, w)``; same pixel-index convention.
* **model** (``*_model``): the 1024 x 1024 square that SAM 2.1 sees. The image
  is *squashed* into it (no aspect ratio kept, no padding), so
  ``x_model = x_px * 1024 / W`` and ``y_model = y_px * 1024 / H``, exactly as
  transformers' ``Sam2Processor`` and facebookresearch/sam2 ``SAM2Transforms``
  map prompts. The decoder graph adds the 0.5 pixel-centre shift itself.
* **crop** (``*_crop``): pixels of a rectangle of whole original pixels
  (:class:`CropFrame`) that is encoded on its own to refine one object: crop
  pixel ``(u, v)`` is original pixel ``(x0 + u, y0 + v)``. Its model frame is the
  crop squashed to 1024 x 1024 exactly as a whole image is, so
  ``x_model = (x_px - x0) * 1024 / w_crop``; a :class:`Geometry` with a
  ``crop`` maps original pixels straight to that model frame.

Masks come back as 256 x 256 low-res logits in the model frame; they are
mapped to any output size by :func:`sam_onnx.postprocess.upsample_logits`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike, NDArray

MODEL_SIDE = 1024
"""Side of the square model frame (encoder input)."""

LOW_RES_SIDE = 256
"""Side of the square low-res mask logits returned by the decoder."""

EDGE_OFFSET = 0.5
"""Original pixels + ``EDGE_OFFSET`` = **pixel-edge** coordinates, the frame of exported polygons
(:mod:`sam_onnx.vector`), COCO, YOLO and SVG: pixel ``(c, r)`` is the square ``[c, c + 1] × [r, r + 1]`` and the
image spans ``[0, W] × [0, H]``."""


CROP_MARGIN = 0.2
"""Margin added on each side of an object's extent to make its refinement crop, as a fraction of the extent's
size along that axis (X-AnyLabeling's TinyObj crop, beyond-3.md §0 row 3): SAM sees the object's surroundings."""

MIN_CROP_SIDE = 256
"""Shortest side of a refinement crop, original pixels (or the image's side if it is shorter). At 256 px one of the
decoder's 256 x 256 low-res logit cells covers one original pixel; a smaller crop could not give a finer mask,
only a more blurred encoder input (it is enlarged more than 4x to reach 1024 px)."""

MAX_CROP_ASPECT = 2.0
"""Longest side of a refinement crop at most this many times its shortest (the short side is widened). The crop
is squashed to 1024 x 1024 like a whole image; photos are 4:3 to 16:9, so this keeps the squash within about what
the model sees on whole photos (reasoned, not measured: no published weights run here). A 2000 x 5 px line would
otherwise be stretched 9x across."""

Span = tuple[float, float]
"""``(start, stop)`` of an extent along one axis, in the continuous frame of an output grid (pixel ``i`` spans
``[i, i + 1)``)."""


def _hw(value: tuple[int, int], name: str) -> tuple[int, int]:
    h, w = (int(v) for v in value)
    if h < 1 or w < 1:
        raise ValueError(f"{name} must be positive (height, width), got {value}")
    return h, w


def _xy(xy: ArrayLike) -> NDArray[np.float64]:
    out = np.array(xy, dtype=np.float64)  # always a copy
    if out.shape[-1:] != (2,):
        raise ValueError(f"expected (..., 2) xy coordinates, got shape {out.shape}")
    return out


def _grow(lo: int, hi: int, length: int, side: int) -> tuple[int, int]:
    """``[lo, hi)`` widened about its centre to ``length`` (at most ``side``), shifted back inside ``[0, side)``."""
    length = min(length, side)
    extra = length - (hi - lo)
    if extra <= 0:
        return lo, hi
    lo, hi = lo - extra // 2, hi + extra - extra // 2
    if lo < 0:
        lo, hi = 0, hi - lo
    if hi > side:
        lo, hi = lo - (hi - side), side
    return lo, hi


@dataclass(frozen=True)
class CropFrame:
    """A rectangle of whole pixels of the original image, encoded on its own to refine one object.

    Crop pixel ``(u, v)`` is original pixel ``(x0 + u, y0 + v)`` (the pixel-index
    convention is kept); the crop is squashed to the 1024 model frame exactly as
    a whole image is (:attr:`geometry`), so its 256 x 256 low-res logits cover
    ``w_crop / 256`` original pixels per cell instead of ``W / 256``.

    Attributes:
        original_hw: ``(H, W)`` of the upright original image.
        box: ``(x0, y0, x1, y1)`` whole pixels, ``0 <= x0 < x1 <= W`` and
            ``0 <= y0 < y1 <= H``: columns ``x0 .. x1 - 1`` and rows ``y0 .. y1 - 1``.
            As a :class:`~sam_onnx.types.Box` (continuous edges) it is the same rectangle.
    """

    original_hw: tuple[int, int]
    box: tuple[int, int, int, int]

    def __post_init__(self) -> None:
        h, w = _hw(self.original_hw, "original_hw")
        object.__setattr__(self, "original_hw", (h, w))
        try:
            x0, y0, x1, y1 = (int(v) for v in self.box)
        except (TypeError, ValueError):
            raise ValueError(f"a crop box is (x0, y0, x1, y1) in whole pixels, got {self.box!r}") from None
        if any(int(v) != v for v in self.box) or not (0 <= x0 < x1 <= w and 0 <= y0 < y1 <= h):
            raise ValueError(f"crop box {self.box!r} must be whole pixels with 0 <= x0 < x1 <= {w} and "
                             f"0 <= y0 < y1 <= {h}")
        object.__setattr__(self, "box", (x0, y0, x1, y1))

    @classmethod
    def around(cls, original_hw: tuple[int, int], extent: tuple[float, float, float, float], *,
               margin: float = CROP_MARGIN, min_side: int = MIN_CROP_SIDE,
               max_aspect: float = MAX_CROP_ASPECT) -> CropFrame:
        """The refinement crop of an object whose extent is ``extent``.

        1. ``extent`` (``x0, y0, x1, y1`` in the continuous original frame, pixel ``i``
           spanning ``[i, i + 1)``, e.g. a mask's box) plus ``margin`` times its width
           (height) on the left and right (top and bottom), out to whole pixels;
        2. clamped to the image;
        3. each side widened about its centre to at least ``min_side`` (or the image's
           side), shifted back inside the image where it would cross an edge;
        4. the shorter side widened likewise until the longer is at most
           ``max_aspect`` times it (as far as the image allows).

        Raises:
            ValueError: ``extent`` is empty or not finite.
        """
        h, w = _hw(original_hw, "original_hw")
        ex0, ey0, ex1, ey1 = (float(v) for v in extent)
        if not all(math.isfinite(v) for v in (ex0, ey0, ex1, ey1)) or ex1 <= ex0 or ey1 <= ey0:
            raise ValueError(f"an object's extent must be a finite non-empty box, got {extent!r}")
        if margin < 0 or min_side < 1 or max_aspect < 1:
            raise ValueError("margin >= 0, min_side >= 1 and max_aspect >= 1 are required")
        spans = []
        for lo, hi, side in ((ex0, ex1, w), (ey0, ey1, h)):
            pad = margin * (hi - lo)
            a, b = max(0, math.floor(lo - pad)), min(side, math.ceil(hi + pad))
            if b <= a:  # the extent lies outside the image: keep the pixel nearest to it
                a = min(max(0, math.floor(lo)), side - 1)
                b = a + 1
            spans.append(_grow(a, b, min_side, side))
        (x0, x1), (y0, y1) = spans
        longest = max(x1 - x0, y1 - y0)
        shortest = math.ceil(longest / max_aspect)
        x0, x1 = _grow(x0, x1, shortest, w)
        y0, y1 = _grow(y0, y1, shortest, h)
        return cls((h, w), (x0, y0, x1, y1))

    @classmethod
    def for_view(cls, original_hw: tuple[int, int], view: tuple[float, float, float, float]) -> CropFrame:
        """The crop to encode for a zoomed view showing ``view`` (``x0, y0, x1, y1``, continuous original frame):
        the view out to whole pixels, clamped, with :meth:`around`'s minimum side and aspect but no margin
        (what is shown is what the user clicks in)."""
        return cls.around(original_hw, view, margin=0.0)

    @property
    def crop_hw(self) -> tuple[int, int]:
        """``(h, w)`` of the crop in pixels."""
        x0, y0, x1, y1 = self.box
        return y1 - y0, x1 - x0

    @property
    def offset_xy(self) -> tuple[int, int]:
        """``(x0, y0)``: the original pixel that is the crop's pixel ``(0, 0)``."""
        return self.box[0], self.box[1]

    @property
    def slices(self) -> tuple[slice, slice]:
        """``(rows, cols)`` to cut the crop out of an ``(H, W, ...)`` original array: ``rgb[crop.slices]``."""
        x0, y0, x1, y1 = self.box
        return slice(y0, y1), slice(x0, x1)

    @property
    def is_whole_image(self) -> bool:
        return self.box == (0, 0, self.original_hw[1], self.original_hw[0])

    @property
    def geometry(self) -> Geometry:
        """The crop as an image of its own: its (crop-pixel) ↔ 1024 model frame mapping."""
        return Geometry(self.crop_hw)

    def to_crop_xy(self, xy_px: ArrayLike) -> NDArray[np.float64]:
        """``(..., 2)`` original pixels → crop pixels (float64; not clamped: outside stays outside)."""
        xy = _xy(xy_px)
        xy -= self.offset_xy
        return xy

    def to_original_xy(self, xy_crop: ArrayLike) -> NDArray[np.float64]:
        """Inverse of :meth:`to_crop_xy`: ``(..., 2)`` crop pixels → original pixels (float64)."""
        xy = _xy(xy_crop)
        xy += self.offset_xy
        return xy

    def contains_xy(self, xy_px: ArrayLike) -> NDArray[np.bool_]:
        """``(...)`` bool: the points ``(..., 2)`` (original pixels) lie on a pixel of the crop.

        The same rule as :meth:`sam_onnx.types.Point.check_inside` on the crop:
        ``x0 <= x < x1`` and ``y0 <= y < y1``.
        """
        xy = _xy(xy_px)
        x0, y0, x1, y1 = self.box
        return (xy[..., 0] >= x0) & (xy[..., 0] < x1) & (xy[..., 1] >= y0) & (xy[..., 1] < y1)

    def clip_box(self, xyxy: tuple[float, float, float, float]) -> tuple[float, float, float, float] | None:
        """The part of a box (continuous original frame) inside the crop, or ``None`` if it has no area there."""
        x0, y0, x1, y1 = self.box
        bx0, by0, bx1, by1 = max(xyxy[0], x0), max(xyxy[1], y0), min(xyxy[2], x1), min(xyxy[3], y1)
        if bx1 <= bx0 or by1 <= by0:
            return None
        return bx0, by0, bx1, by1

    def spans(self, out_hw: tuple[int, int]) -> tuple[Span, Span]:
        """Where the crop lies in an output grid of ``out_hw`` that covers the whole original image.

        Returns:
            ``((row_start, row_stop), (col_start, col_stop))`` in that grid's continuous
            frame (``y0 * h / H`` ...), e.g. original pixels for ``out_hw = (H, W)``
            (then exactly the crop box) or display pixels for a display size.
        """
        out_h, out_w = _hw(out_hw, "out_hw")
        h, w = self.original_hw
        x0, y0, x1, y1 = self.box
        return (y0 * out_h / h, y1 * out_h / h), (x0 * out_w / w, x1 * out_w / w)


@dataclass(frozen=True)
class Geometry:
    """How an original image maps to the model frame (through a crop, if the embedding is of a crop).

    Made once by :func:`sam_onnx.preprocess.preprocess_image` (or
    :func:`~sam_onnx.preprocess.preprocess_crop`) and carried in the
    :class:`~sam_onnx.types.ImageEmbedding`; prompt mapping and mask
    un-mapping both read it, nobody recomputes sizes.

    Attributes:
        original_hw: ``(H, W)`` of the upright original image in pixels.
        crop: the rectangle of the original that was squashed into the model
            frame, or ``None`` for the whole image. Prompts and masks stay in
            original pixels either way.
    """

    original_hw: tuple[int, int]
    crop: CropFrame | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "original_hw", _hw(self.original_hw, "original_hw"))
        if self.crop is not None and self.crop.original_hw != self.original_hw:
            raise ValueError(f"the crop is of a {self.crop.original_hw} image, not {self.original_hw}")

    @property
    def input_hw(self) -> tuple[int, int]:
        """``(h, w)`` of the pixels squashed into the model frame: the crop's, or the whole image's."""
        return self.original_hw if self.crop is None else self.crop.crop_hw

    @property
    def scale_xy(self) -> tuple[float, float]:
        """``(sx, sy)`` with ``x_model = (x_px - x0) * sx`` and ``y_model = (y_px - y0) * sy``
        (``x0 = y0 = 0`` without a crop)."""
        h, w = self.input_hw
        return MODEL_SIDE / w, MODEL_SIDE / h

    def to_model_xy(self, xy_px: ArrayLike) -> NDArray[np.float32]:
        """Map points from original pixels to the 1024 model frame.

        Args:
            xy_px: ``(..., 2)`` array-like of ``(x, y)`` in original pixels.

        Returns:
            A new ``(..., 2)`` float32 array of ``(x, y)`` in model pixels.
            The input is never modified (integer input is not truncated).
        """
        xy = _xy(xy_px) if self.crop is None else self.crop.to_crop_xy(xy_px)
        sx, sy = self.scale_xy
        xy[..., 0] *= sx
        xy[..., 1] *= sy
        return xy.astype(np.float32)

    def to_original_xy(self, xy_model: ArrayLike) -> NDArray[np.float64]:
        """Inverse of :meth:`to_model_xy`: ``(..., 2)`` model pixels → original pixels (float64)."""
        xy = _xy(xy_model)
        sx, sy = self.scale_xy
        xy[..., 0] /= sx
        xy[..., 1] /= sy
        return xy if self.crop is None else self.crop.to_original_xy(xy)

    def spans(self, out_hw: tuple[int, int]) -> tuple[Span, Span]:
        """Where the model frame (and the decoder's low-res logits) lies in an output grid of ``out_hw``
        covering the whole original image: ``((0, h), (0, w))`` without a crop, else :meth:`CropFrame.spans`."""
        if self.crop is not None:
            return self.crop.spans(out_hw)
        out_h, out_w = _hw(out_hw, "out_hw")
        return (0.0, float(out_h)), (0.0, float(out_w))


@dataclass(frozen=True)
class DisplayFrame:
    """A downscaled copy of the original image, as a UI shows it.

    A display pixel ``i`` covers original pixels ``[i*W/w, (i+1)*W/w)``; its
    centre ``i + 0.5`` maps to original ``(i + 0.5) * W / w`` in the continuous
    frame, which is the original pixel-index coordinate ``(i + 0.5) * W / w - 0.5``.
    The two methods below are exact inverses of each other.

    Attributes:
        original_hw: ``(H, W)`` of the original image.
        display_hw: ``(h, w)`` of the displayed copy.
    """

    original_hw: tuple[int, int]
    display_hw: tuple[int, int]

    def __post_init__(self) -> None:
        object.__setattr__(self, "original_hw", _hw(self.original_hw, "original_hw"))
        object.__setattr__(self, "display_hw", _hw(self.display_hw, "display_hw"))

    @classmethod
    def fit(cls, original_hw: tuple[int, int], max_side: int | None) -> DisplayFrame:
        """The largest display size whose long side is at most ``max_side``.

        Never upscales; keeps the aspect ratio (each side rounded, at least 1 px).
        ``max_side=None`` means "show at full size".
        """
        h, w = _hw(original_hw, "original_hw")
        if max_side is None or max(h, w) <= max_side:
            return cls((h, w), (h, w))
        if max_side < 1:
            raise ValueError(f"max_side must be positive, got {max_side}")
        scale = max_side / max(h, w)
        return cls((h, w), (max(1, round(h * scale)), max(1, round(w * scale))))

    @property
    def is_identity(self) -> bool:
        """True when the display shows the original at full size."""
        return self.original_hw == self.display_hw

    def to_original_xy(self, xy_display: ArrayLike) -> NDArray[np.float64]:
        """Display pixels → original pixels, clamped to the image.

        Args:
            xy_display: ``(..., 2)`` of ``(x, y)`` in display pixels.

        Returns:
            ``(..., 2)`` float64 of ``(x, y)`` in original pixels, in
            ``[0, W-1] x [0, H-1]``.
        """
        return self._map(xy_display, self.display_hw, self.original_hw)

    def to_display_xy(self, xy_px: ArrayLike) -> NDArray[np.float64]:
        """Original pixels → display pixels (float64), clamped to the display."""
        return self._map(xy_px, self.original_hw, self.display_hw)

    @staticmethod
    def _map(xy: ArrayLike, src_hw: tuple[int, int], dst_hw: tuple[int, int]) -> NDArray[np.float64]:
        out = np.array(xy, dtype=np.float64)
        if out.shape[-1:] != (2,):
            raise ValueError(f"expected (..., 2) xy coordinates, got shape {out.shape}")
        for axis, (src, dst) in enumerate(((src_hw[1], dst_hw[1]), (src_hw[0], dst_hw[0]))):
            if src != dst:
                out[..., axis] = (out[..., axis] + 0.5) * (dst / src) - 0.5
            np.clip(out[..., axis], 0.0, dst - 1, out=out[..., axis])
        return out
