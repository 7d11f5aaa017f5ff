"""Image → encoder input (pure numpy + Pillow).

The recipe of the reference (transformers ``Sam2ImageProcessor`` with the SAM
2.1 defaults, facebookresearch/sam2 ``SAM2Transforms``): squash the RGB image
to 1024 x 1024 with bilinear resampling (no aspect ratio kept, no padding),
scale to [0, 1], normalise with the ImageNet mean and std, channels first.

Pillow's BILINEAR resize antialiases when it shrinks, like transformers'
(torchvision's antialiased bilinear in uint8). Measured against transformers'
own ``Sam2ImageProcessor`` on a 3000 x 2000 image (tests/test_preprocess_reference.py):
0.3 % of the values differ, each by one grey level. When the image is enlarged
they agree exactly (tests/test_reference_fixture.py). A resize without
antialiasing (OpenCV's INTER_LINEAR) differs by tens of grey levels on
fine detail.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray
from PIL import Image

from .errors import InvalidImageError
from .geometry import MODEL_SIDE, CropFrame, Geometry
from .image import UprightImage, is_rgb_uint8

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
RESCALE_FACTOR = 1.0 / 255.0

# (x * RESCALE_FACTOR - mean) / std == x * _SCALE - _OFFSET, per channel.
_SCALE = (RESCALE_FACTOR / np.asarray(IMAGENET_STD, dtype=np.float64)).astype(np.float32)
_OFFSET = (np.asarray(IMAGENET_MEAN, dtype=np.float64) / np.asarray(IMAGENET_STD, dtype=np.float64)).astype(np.float32)


def check_rgb_uint8(rgb: np.ndarray) -> None:
    """Raise :class:`InvalidImageError` unless ``rgb`` is a ``(H, W, 3)`` uint8 array with H, W >= 1."""
    if not is_rgb_uint8(rgb):
        desc = f"{rgb.dtype} array of shape {rgb.shape}" if isinstance(rgb, np.ndarray) else type(rgb).__name__
        raise InvalidImageError(f"expected an RGB uint8 image of shape (H, W, 3), got a {desc}")
    if rgb.shape[0] < 1 or rgb.shape[1] < 1:
        raise InvalidImageError(f"the image is empty (shape {rgb.shape})")


def resize_to_model(rgb: NDArray[np.uint8], *, image: Image.Image | None = None) -> NDArray[np.uint8]:
    """Squash an ``(H, W, 3)`` uint8 RGB image to ``(1024, 1024, 3)`` uint8 with PIL bilinear.

    ``image``: the same pixels as an RGB PIL image, when the caller has one already (:func:`as_pil`; the
    conversion copies the whole image, ~40 ms at 12 MP); the result is the same.
    """
    check_rgb_uint8(rgb)
    if image is None:
        image = as_pil(rgb)
    elif image.mode != "RGB" or image.size != (rgb.shape[1], rgb.shape[0]):
        raise ValueError(f"the PIL image ({image.mode}, {image.size}) is not the RGB array's ({rgb.shape})")
    return _squash(image)


def _squash(image: Image.Image) -> NDArray[np.uint8]:
    """An RGB PIL image squashed (:func:`_squashed`) as a ``(1024, 1024, 3)`` uint8 array."""
    return np.asarray(_squashed(image))


def _squashed(image: Image.Image) -> Image.Image:
    """The one resize of every encoder input: an RGB PIL image to 1024 x 1024, bilinear."""
    return image.resize((MODEL_SIDE, MODEL_SIDE), Image.Resampling.BILINEAR)


def as_pil(rgb: NDArray[np.uint8]) -> Image.Image:
    """An ``(H, W, 3)`` uint8 RGB array as a PIL image (a copy), for callers that resize it more than once."""
    return Image.fromarray(np.ascontiguousarray(rgb), mode="RGB")


def normalize(resized: NDArray[np.uint8]) -> NDArray[np.float32]:
    """``(1024, 1024, 3)`` uint8 → ``(1, 3, 1024, 1024)`` float32, ImageNet-normalised, channels first,
    C-contiguous (what onnxruntime takes without a copy of its own; the channels-first copy made in one go
    also runs the two in-place steps on contiguous memory: 3.7 ms instead of 13 ms of CPU, the same values)."""
    chw = resized.transpose(2, 0, 1).astype(np.float32, order="C")
    chw *= _SCALE[:, None, None]
    chw -= _OFFSET[:, None, None]
    return chw[None]


def preprocess_image(rgb: NDArray[np.uint8], *,
                     image: Image.Image | None = None) -> tuple[NDArray[np.float32], Geometry]:
    """Make the encoder input ``pixel_values`` for an upright RGB image.

    Args:
        rgb: ``(H, W, 3)`` uint8 RGB in original pixels (see
            :func:`sam_onnx.image.to_rgb_uint8` for other inputs).
        image: ``rgb`` as a PIL image, if the caller made one (:func:`as_pil`); same result, one copy fewer.

    Returns:
        ``pixel_values``: ``(1, 3, 1024, 1024)`` float32 in the model frame, and
        the :class:`~sam_onnx.geometry.Geometry` recording the original size.
    """
    return normalize(resize_to_model(rgb, image=image)), Geometry(rgb.shape[:2])


def preprocess_pil(image: Image.Image) -> tuple[NDArray[np.float32], Geometry]:
    """:func:`preprocess_image` of an upright RGB PIL image, with no array of the whole image
    (:func:`sam_onnx.image.load_upright`): the same values, bit for bit.

    Returns:
        ``pixel_values`` ``(1, 3, 1024, 1024)`` float32 in the model frame, and the
        :class:`~sam_onnx.geometry.Geometry` recording the original size ``(H, W)``.

    Raises:
        ValueError: the image is not in mode ``"RGB"``.
    """
    if image.mode != "RGB":
        raise ValueError(f"expected an RGB image, got mode {image.mode}")
    return normalize(_squash(image)), Geometry((image.height, image.width))


_COLUMNS_FIRST_MAX_ASPECT = 100
"""Pillow (12) resizes columns first, then rows, except for an image over this many times taller than wide
(``Image.resize``): :func:`preprocess_upright` turns such an image whole instead of following the rule."""


def preprocess_upright(image: UprightImage) -> tuple[NDArray[np.float32], Geometry]:
    """:func:`preprocess_pil` of ``image.upright()``, bit for bit, without turning the whole photo upright.

    Pillow's bilinear resize is two passes, each rounded to uint8: first the width changes (each row is
    resampled), then the height (each column). Here the stored pixels are squashed and the 1 MP result is
    turned (instead of the 12 MP photo: ~40 ms of CPU less at 12 MP). Under a quarter turn the upright image's
    rows are the stored image's columns, so the stored height changes first, as a resize of its own, then the
    width: each pass sees the same pixels with the same weights as in the upright image. An image over 100
    times longer than wide, whose passes Pillow orders otherwise, is turned whole. Checked for every EXIF
    orientation on shrunk, enlarged, mixed and extreme sizes (tests/test_intake_upright.py).

    Returns:
        ``pixel_values`` ``(1, 3, 1024, 1024)`` float32 in the model frame, and the
        :class:`~sam_onnx.geometry.Geometry` recording the upright original size ``(H, W)``.

    Raises:
        ValueError: the stored image is not in mode ``"RGB"``.
    """
    stored = image.stored
    if stored.mode != "RGB":
        raise ValueError(f"expected an RGB image, got mode {stored.mode}")
    if image.swaps_axes:
        if max(image.hw) > _COLUMNS_FIRST_MAX_ASPECT * min(image.hw):
            return preprocess_pil(image.upright())  # Pillow's own pass order differs there; such an image is small
        # the upright image's first pass (its width) is the stored image's height
        stored = stored.resize((stored.width, MODEL_SIDE), Image.Resampling.BILINEAR)
    return normalize(np.asarray(image.turn(_squashed(stored)))), Geometry(image.hw)


def preprocess_crop(rgb: NDArray[np.uint8], crop: CropFrame) -> tuple[NDArray[np.float32], Geometry]:
    """Make the encoder input for a crop of an upright RGB image (refinement).

    The crop is treated exactly as a whole image: squashed to 1024 x 1024 with
    Pillow bilinear (enlarged when it is smaller), normalised.

    Args:
        rgb: ``(H, W, 3)`` uint8 RGB, the whole original image.
        crop: the rectangle to encode, of an image of that size.

    Returns:
        ``pixel_values`` ``(1, 3, 1024, 1024)`` float32 in the crop's model frame, and
        the :class:`~sam_onnx.geometry.Geometry` mapping original pixels to it.
    """
    check_rgb_uint8(rgb)
    geometry = Geometry(rgb.shape[:2], crop)  # checks that the crop is of this image
    return normalize(resize_to_model(rgb[crop.slices])), geometry
