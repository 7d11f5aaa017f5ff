"""Big phone photos (issue 22 item 6): opened up to :data:`OPEN_MAX_PIXELS`, worked on at up to the working limit.

Many phones shoot 48-50 MP; the server's memory is budgeted for images up to
:attr:`sam_onnx.image.ImageLimits.max_pixels` (40 MP by default: the decoded
photo, its masks and its exports at full resolution, ~120 MB per image in the
intake). So the demo opens photos up to :data:`OPEN_MAX_PIXELS` and works on a
bigger one at the largest size within the working limits: the photo is
downscaled once at intake (same aspect, Lanczos, deterministic, so reading the
file again gives the same pixels and content hash), and everything after it
(prompts, masks, exports) is in the downscaled copy's pixels. The image's note
says so in the status line. The model and the page's display copy are
downscaled anyway (1024 px, 2048 px), so a user sees no difference there.

A photo above :data:`OPEN_MAX_PIXELS` is refused from its header before any
decode, with a message naming the limit.
"""

from __future__ import annotations

import math
from dataclasses import replace
from typing import Final

import numpy as np
from PIL import Image

from sam_onnx.image import DEFAULT_LIMITS, ImageLimits, LoadedImage, UprightImage

OPEN_MAX_PIXELS: Final = 64_000_000
"""The largest photo the demo opens (48-50 MP phones, 61 MP cameras), above the working limit's 40 MP. A 64 MP
photo costs ~190 MB decoded plus its ~120 MB working copy while it is read (one per intake slot)."""
OPEN_LIMITS: Final = replace(DEFAULT_LIMITS, max_pixels=OPEN_MAX_PIXELS)
"""What the demo's upload accepts (the file-size, side and aspect limits are the working ones)."""
_MP: Final = 1_000_000


def working_size(hw: tuple[int, int], limits: ImageLimits) -> tuple[int, int]:
    """The ``(h, w)`` an image of original size ``hw`` is worked on at: itself when it fits ``limits``' pixel
    count and longest side, else the largest size of the same aspect (floored) that does."""
    h, w = hw
    scale = min(1.0, math.sqrt(limits.max_pixels / (h * w)), limits.max_side / max(h, w))
    if scale >= 1.0:
        return h, w
    return max(1, int(h * scale)), max(1, int(w * scale))


def working_copy(loaded: LoadedImage, limits: ImageLimits) -> LoadedImage:
    """``loaded`` itself when it fits ``limits``, else downscaled to :func:`working_size` with a note saying so.

    Args:
        loaded: a decoded upright image, ``rgb`` ``(H, W, 3)`` uint8 in the file's (upright) pixels.
        limits: the working limits (``max_pixels``, ``max_side``).

    Returns:
        A :class:`LoadedImage` whose ``rgb`` is ``(h, w, 3)`` uint8; its pixels are the frame every prompt, mask
        and export of this image uses from here on ("original pixels" for the rest of the demo). The same
        pixels as :func:`working_upright` of the same file.
    """
    h, w = loaded.rgb.shape[:2]
    if working_size((h, w), limits) == (h, w):
        return loaded
    small, note = _shrink(Image.fromarray(loaded.rgb), limits)
    return replace(loaded, rgb=np.array(small), notes=(*loaded.notes, note))


def working_upright(loaded: UprightImage, limits: ImageLimits) -> UprightImage:
    """:func:`working_copy` for a Pillow image (:func:`sam_onnx.image.load_upright`): the same pixels."""
    if working_size(loaded.hw, limits) == loaded.hw:
        return loaded
    small, note = _shrink(loaded.upright(), limits)
    return replace(loaded, stored=small, orientation=None, notes=(*loaded.notes, note))


def _shrink(image: Image.Image, limits: ImageLimits) -> tuple[Image.Image, str]:
    """An RGB image downscaled to :func:`working_size` (Lanczos, deterministic), and the note for the status line."""
    w, h = image.size
    nh, nw = working_size((h, w), limits)
    small = image.resize((nw, nh), Image.Resampling.LANCZOS, reducing_gap=3.0)
    note = (f"This {w}×{h} photo ({h * w / _MP:.1f} MP) is used at {nw}×{nh} ({nh * nw / _MP:.1f} MP), the largest "
            f"this server works at ({limits.max_pixels // _MP} MP): masks and exports are at that size.")
    return small, note


def segment_size_message(width: int, height: int, limits: ImageLimits) -> str | None:
    """Why ``/segment`` refuses a ``width x height`` image the app opens (its answers are in the file's own pixels,
    so it cannot work on a downscaled copy), or ``None`` when it fits ``limits``."""
    if working_size((height, width), limits) == (height, width):
        return None
    nh, nw = working_size((height, width), limits)
    return (f"The image is {width}×{height} ({height * width / _MP:.1f} MP); /segment takes at most "
            f"{limits.max_pixels // _MP} MP and a longest side of {limits.max_side} px (answers are in the image's "
            f"own pixels): downscale it, for example to {nw}×{nh}.")
