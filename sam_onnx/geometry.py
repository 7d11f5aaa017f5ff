"""Coordinate frames and the one place where coordinates change frame.

Three frames exist, and every coordinate in this package names its frame:

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

Masks come back as 256 x 256 low-res logits in the model frame; they are
mapped to any output size by :func:`sam_onnx.postprocess.upsample_logits`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike, NDArray

MODEL_SIDE = 1024
"""Side of the square model frame (encoder input)."""

LOW_RES_SIDE = 256
"""Side of the square low-res mask logits returned by the decoder."""


def _hw(value: tuple[int, int], name: str) -> tuple[int, int]:
    h, w = (int(v) for v in value)
    if h < 1 or w < 1:
        raise ValueError(f"{name} must be positive (height, width), got {value}")
    return h, w


@dataclass(frozen=True)
class Geometry:
    """How an original image maps to the model frame.

    Made once by :func:`sam_onnx.preprocess.preprocess_image` and carried in
    the :class:`~sam_onnx.types.ImageEmbedding`; prompt mapping and mask
    un-mapping both read it, nobody recomputes sizes.

    Attributes:
        original_hw: ``(H, W)`` of the upright original image in pixels.
    """

    original_hw: tuple[int, int]

    def __post_init__(self) -> None:
        object.__setattr__(self, "original_hw", _hw(self.original_hw, "original_hw"))

    @property
    def scale_xy(self) -> tuple[float, float]:
        """``(sx, sy)`` with ``x_model = x_px * sx`` and ``y_model = y_px * sy``."""
        h, w = self.original_hw
        return MODEL_SIDE / w, MODEL_SIDE / h

    def to_model_xy(self, xy_px: ArrayLike) -> NDArray[np.float32]:
        """Map points from original pixels to the 1024 model frame.

        Args:
            xy_px: ``(..., 2)`` array-like of ``(x, y)`` in original pixels.

        Returns:
            A new ``(..., 2)`` float32 array of ``(x, y)`` in model pixels.
            The input is never modified (integer input is not truncated).
        """
        xy = np.array(xy_px, dtype=np.float64)  # always a copy
        if xy.shape[-1:] != (2,):
            raise ValueError(f"expected (..., 2) xy coordinates, got shape {xy.shape}")
        sx, sy = self.scale_xy
        xy[..., 0] *= sx
        xy[..., 1] *= sy
        return xy.astype(np.float32)

    def to_original_xy(self, xy_model: ArrayLike) -> NDArray[np.float64]:
        """Inverse of :meth:`to_model_xy`: ``(..., 2)`` model pixels → original pixels (float64)."""
        xy = np.array(xy_model, dtype=np.float64)
        sx, sy = self.scale_xy
        xy[..., 0] /= sx
        xy[..., 1] /= sy
        return xy


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
