"""Safe image loading and normalisation to upright RGB ``uint8`` arrays.

Everything a user hands us (an uploaded file, raw bytes, a numpy array from Gradio,
a PIL image) passes through this module before the model sees it. The result is
always a NEW, writable, C-contiguous ``uint8`` array of shape ``(H, W, 3)`` in
original-image pixels, RGB channel order, with the EXIF orientation applied.

Two entry points:

* :func:`load_image` decodes an untrusted file. It opens lazily with an allowlist of
  formats (the format comes from the magic bytes, never from the file name), checks
  the byte size and the header's width and height with :func:`check_size` *before*
  decoding, decodes only the first frame, applies the EXIF orientation and normalises
  the mode. Every failure raises :class:`~sam_onnx.errors.InvalidImageError` with a
  short user-facing message (no paths, no tracebacks); the original exception is
  chained and its class logged. :func:`load_upright` does the same and keeps the pixels
  as a Pillow image (for callers that resize and hash them with Pillow: no array copy).
* :func:`to_rgb_uint8` normalises an in-memory numpy array or PIL image of any common
  dtype and shape. It applies no size limits (that is :func:`check_size`).

Normalisation rules (shared by both):

* 16-bit grey (``I;16*`` modes, ``uint16`` arrays): ``value / 257``, so 65535 -> 255
  and mid-grey stays mid-grey (``convert("RGB")`` would clip it to white).
* Pillow mode ``I`` (32-bit grey): ``value / 257`` when all values lie in 0..65535,
  otherwise min-max.
* Other integer arrays: kept when all values lie in 0..255, otherwise min-max.
* Floats: ``x 255`` when all finite values lie in [0, 1], otherwise min-max;
  NaN and +-inf become 0.
* Min-max of a constant image cannot stretch anything: the value is clipped to 0..255.
* Alpha (``LA``, ``RGBA``, ``PA``, ``P``/``L``/``RGB`` with a transparency key,
  ``(H, W, 2)`` and ``(H, W, 4)`` arrays) is composited on WHITE, as transformers does.
  (A transparency key on a 16-bit grey PNG is ignored.)
* ``CMYK``, ``YCbCr``, ``LAB``, ``HSV``, ``1``, ``L``, ``P`` -> RGB via Pillow.

This module never changes Pillow's process-wide settings (``Image.MAX_IMAGE_PIXELS``,
``ImageFile.LOAD_TRUNCATED_IMAGES``, warning filters) and does no work at import time.
"""

from __future__ import annotations

import contextlib
import enum
import functools
import io
import logging
import os
import re
import stat
import struct
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import BinaryIO, Final, TypeVar

import numpy as np
from numpy.typing import NDArray
from PIL import Image, UnidentifiedImageError

from sam_onnx.errors import InvalidImageError

logger = logging.getLogger(__name__)

_T = TypeVar("_T")

RGB_CHUNK_BYTES = 256 * 1024
"""Piece size of :func:`rgb_chunks`: small enough to stay in the core's cache between packing and hashing."""

# --------------------------------------------------------------------------- limits


@dataclass(frozen=True)
class ImageLimits:
    """Bounds on what :func:`load_image` accepts; all sizes in original-image pixels.

    Attributes:
        max_pixels: reject images with more than this many pixels (``width * height``,
            read from the header before any decode).
        max_side: reject images whose longer side exceeds this.
        min_side: reject images whose shorter side is below this.
        max_aspect: reject images whose long side exceeds ``max_aspect`` times the
            short side (20.0 accepts 20:1 and rejects 21:1).
        max_bytes: reject files larger than this many bytes; ``None`` disables the check.

    Note: Pillow's own ``Image.MAX_IMAGE_PIXELS`` (about 89.5 MP; an error above twice
    that) stays in force behind these limits, so ``max_pixels`` above about 179 MP
    cannot take effect.
    """

    max_pixels: int = 40_000_000
    max_side: int = 12_000
    min_side: int = 16
    max_aspect: float = 20.0
    max_bytes: int | None = 20 * 1024 * 1024

    def __post_init__(self) -> None:
        if self.min_side < 1:
            raise ValueError(f"min_side must be >= 1, got {self.min_side}")
        if self.max_side < self.min_side:
            raise ValueError(f"max_side ({self.max_side}) must be >= min_side ({self.min_side})")
        if self.max_pixels < self.min_side * self.min_side:
            raise ValueError(f"max_pixels ({self.max_pixels}) must be >= min_side**2")
        if not self.max_aspect >= 1.0:  # also rejects NaN
            raise ValueError(f"max_aspect must be >= 1, got {self.max_aspect}")
        if self.max_bytes is not None and self.max_bytes < 1:
            raise ValueError(f"max_bytes must be >= 1 or None, got {self.max_bytes}")


DEFAULT_LIMITS: Final = ImageLimits()

#: Pillow format names that :func:`load_image` decodes, most common first (Pillow tries
#: them in this order). AVIF is deliberately absent even though Pillow 12 wheels can
#: decode it: that keeps the decode surface small (docs/reliability.md, rows A6-A8) and
#: behaves the same on every Pillow build. AVIF files get a message naming AVIF.
ALLOWED_FORMATS: Final[tuple[str, ...]] = ("JPEG", "PNG", "WEBP", "GIF", "BMP")

#: Pillow reports a JPEG holding several pictures (as some cameras write) as "MPO";
#: it is a JPEG file, its first picture is the photo, and we report it as JPEG.
_FORMAT_ALIASES: Final[dict[str, str]] = {"MPO": "JPEG"}
_NOT_ANIMATED_FORMATS: Final[frozenset[str]] = frozenset({"MPO"})

# ------------------------------------------------------------------ user messages

SUPPORTED_HINT: Final = "use PNG, JPEG or WebP"
MSG_NOT_AN_IMAGE: Final = f"Could not read this image; {SUPPORTED_HINT}."
MSG_DAMAGED: Final = "The file is damaged or incomplete."
MSG_CANNOT_OPEN: Final = "Could not open the file."
MSG_EMPTY: Final = "The file is empty."
MSG_NO_SUCH_FILE: Final = "The file does not exist."
MSG_NOT_A_FILE: Final = "This is a folder, not a file."
MSG_NO_PERMISSION: Final = "The file cannot be read (permission denied)."
MSG_OUT_OF_MEMORY: Final = "The image is too large to load."
MSG_HEIC: Final = "HEIC photos are not supported; export the photo as JPEG."
MSG_AVIF: Final = f"AVIF images are not supported; {SUPPORTED_HINT}."
MSG_SVG: Final = f"SVG files are not supported; {SUPPORTED_HINT}."


class Note(str, enum.Enum):
    """What loading did to an image that the user should know, in the words the status line shows: the closed set
    :func:`load_image` and :func:`load_upright` put in ``notes`` (later steps, e.g. the demo's downscale, may add
    notes of their own). A member is its text (``str(note)``, ``f"{note}"``, ``==``, ``in``), as with
    ``enum.StrEnum``, which Python 3.10 lacks."""

    __str__ = str.__str__  # str() and f-strings give the text, not "Note.ROTATED"

    ANIMATED = "Animated image: the first frame is used."
    ROTATED = "Rotated upright from its EXIF orientation."
    SIXTEEN_BIT = "16-bit image scaled to 8 bits."
    THIRTY_TWO_BIT = "32-bit image scaled to 8 bits."
    FLOAT = "Floating-point image scaled to 8 bits."
    TRANSPARENT = "Transparent areas shown on white."


# ------------------------------------------------------------------ constants

_BYTES_PER_KB: Final = 1024
_BYTES_PER_MB: Final = 1024 * 1024
_PIXELS_PER_MP: Final = 1_000_000
_UINT8_MAX: Final = 255
_UINT16_MAX: Final = 65_535
_UINT16_TO_UINT8_DIVISOR: Final = 257  # 65535 / 255: maps 0..65535 exactly onto 0..255
_EXIF_ORIENTATION_TAG: Final = 0x0112  # 274
_ROTATING_ORIENTATIONS: Final = frozenset(range(2, 9))
_TRANSPOSE_OF_ORIENTATION: Final = {  # what ImageOps.exif_transpose does for each EXIF orientation
    2: Image.Transpose.FLIP_LEFT_RIGHT, 3: Image.Transpose.ROTATE_180, 4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE, 6: Image.Transpose.ROTATE_270, 7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_90}
_SWAPPING_TRANSPOSES: Final = frozenset({Image.Transpose.TRANSPOSE, Image.Transpose.ROTATE_270,
                                         Image.Transpose.TRANSVERSE, Image.Transpose.ROTATE_90})
_SNIFF_BYTES: Final = 4096  # enough for an XML prolog + DOCTYPE before <svg

_SIXTEEN_BIT_MODES: Final = frozenset({"I;16", "I;16L", "I;16B", "I;16N"})
_PREMULTIPLIED_GREY_ALPHA_MODE: Final = "La"

#: What Pillow's own fuzz tests accept from a decoder, plus what this module adds.
#: Anything raised while opening/decoding that is in this tuple means "bad file".
_DECODE_ERRORS: Final[tuple[type[BaseException], ...]] = (
    OSError,  # includes UnidentifiedImageError and "image file is truncated"
    ValueError,
    SyntaxError,
    struct.error,
    EOFError,
    IndexError,
    KeyError,
    TypeError,
    ZeroDivisionError,
    NotImplementedError,
    OverflowError,
)
_BOMB_ERRORS: Final[tuple[type[BaseException], ...]] = (
    Image.DecompressionBombError,
    # Only raised (rather than emitted) when the process escalates warnings to errors.
    Image.DecompressionBombWarning,
)

#: Magic bytes of formats we recognise but do not decode, for a message that names them.
_UNSUPPORTED_SIGNATURES: Final[tuple[tuple[bytes, str], ...]] = (
    (b"%PDF-", "PDF"),
    (b"II*\x00", "TIFF"),
    (b"MM\x00*", "TIFF"),
    (b"II+\x00", "TIFF"),  # BigTIFF
    (b"MM\x00+", "TIFF"),
    (b"8BPS", "PSD"),
    (b"%!PS", "EPS"),
    (b"\xc5\xd0\xd3\xc6", "EPS"),  # DOS EPS binary header
    (b"SIMPLE  =", "FITS"),
    (b"\x00\x00\x00\x0cjP  \r\n\x87\n", "JPEG 2000"),
    (b"\xff\x4f\xff\x51", "JPEG 2000"),
    (b"\x00\x00\x00\x0cJXL \r\n\x87\n", "JPEG XL"),
    (b"\xff\x0a", "JPEG XL"),
    (b"icns", "ICNS"),
    (b"DDS ", "DDS"),
    (b"qoif", "QOI"),
    (b"gimp xcf", "XCF"),
)
_ICO_SIGNATURE: Final = b"\x00\x00\x01\x00"
#: Magic bytes of allowed formats: a file that starts like one but fails to open is damaged.
_ALLOWED_SIGNATURES: Final[tuple[bytes, ...]] = (
    b"\x89PNG\r\n\x1a\n",
    b"\xff\xd8\xff",
    b"GIF87a",
    b"GIF89a",
)
_ISO_BMFF_FTYP: Final = b"ftyp"
_AVIF_BRANDS: Final = frozenset({b"avif", b"avis"})
_HEIF_BRANDS: Final = frozenset(
    {b"heic", b"heix", b"hevc", b"hevx", b"heim", b"heis", b"hevm", b"hevs", b"mif1", b"msf1"}
)
_BOMB_PIXELS_RE: Final = re.compile(r"\((\d+) pixels\)")


# ------------------------------------------------------------------ result type


@dataclass(frozen=True)
class LoadedImage:
    """A decoded, upright image.

    Attributes:
        rgb: ``uint8`` array of shape ``(H, W, 3)``, RGB order, original-image pixels
            after the EXIF orientation; writable, C-contiguous, owned by the caller.
        format: Pillow format name of the file, from its magic bytes ("JPEG", "PNG",
            "WEBP", "GIF", "BMP"; multi-picture JPEG/MPO is reported as "JPEG").
        notes: user-facing notes about what was done to the image, in order: :class:`Note` members (each is its
            text, e.g. ``"Animated image: the first frame is used."``).
    """

    rgb: NDArray[np.uint8]
    format: str
    notes: tuple[str, ...] = ()


@dataclass(frozen=True)
class UprightImage:
    """A decoded image as Pillow images, turned upright on demand (:func:`load_upright`).

    Attributes:
        stored: mode ``"RGB"`` Pillow image of the pixels as stored in the file (before the EXIF orientation);
            the caller's own (shared with nothing).
        orientation: the transposition that turns ``stored`` upright (the file's EXIF orientation), or None.
        format: as :attr:`LoadedImage.format`.
        notes: as :attr:`LoadedImage.notes`.
    """

    stored: Image.Image
    orientation: Image.Transpose | None
    format: str
    notes: tuple[str, ...] = ()

    @property
    def hw(self) -> tuple[int, int]:
        """``(H, W)`` of the upright image, original pixels."""
        return self.stored_hw((self.stored.height, self.stored.width))

    @property
    def swaps_axes(self) -> bool:
        """Whether turning upright swaps rows and columns (EXIF orientations 5-8: a quarter turn)."""
        return self.orientation in _SWAPPING_TRANSPOSES

    def stored_hw(self, hw: tuple[int, int]) -> tuple[int, int]:
        """An ``(h, w)`` size in the upright frame as a size in the stored frame, or back (the same swap)."""
        return (hw[1], hw[0]) if self.swaps_axes else hw

    def turn(self, image: Image.Image) -> Image.Image:
        """``image``, an image in the stored frame (e.g. a smaller copy of :attr:`stored`), turned upright."""
        if self.orientation is None:
            return image
        try:
            return image.transpose(self.orientation)
        except MemoryError as exc:
            raise _rejected(MSG_OUT_OF_MEMORY, exc) from exc

    def upright(self) -> Image.Image:
        """The upright original: the pixels :func:`load_image` returns as an array (a new 12 MP image when the
        file has an EXIF orientation, about 50 ms at 12 MP: call once; :attr:`stored` itself otherwise)."""
        return self.turn(self.stored)


# ------------------------------------------------------------------ public API


def check_size(width: int, height: int, limits: ImageLimits = DEFAULT_LIMITS) -> None:
    """Raise :class:`InvalidImageError` unless a ``width x height`` image fits ``limits``.

    Args:
        width: image width in pixels (as stored, before EXIF rotation; the checks are
            symmetric so the orientation does not matter).
        height: image height in pixels.
        limits: the bounds to apply.

    Checks, in order: pixel count, longest side, shortest side, aspect ratio.
    """
    long_side, short_side = max(width, height), min(width, height)
    pixels = width * height
    if pixels > limits.max_pixels:
        raise InvalidImageError(
            f"The image is {_ceil_units(pixels, _PIXELS_PER_MP)} MP; "
            f"the limit is {_floor_units(limits.max_pixels, _PIXELS_PER_MP)} MP."
        )
    if long_side > limits.max_side:
        raise InvalidImageError(
            f"The image is {width}×{height} pixels; the longest side must be at most {limits.max_side} pixels."
        )
    if short_side < limits.min_side:
        raise InvalidImageError(
            f"The image is {width}×{height} pixels; the smallest side must be at least {limits.min_side} pixels."
        )
    if long_side > limits.max_aspect * short_side:
        raise InvalidImageError(
            f"The image is {width}×{height} pixels; "
            f"the long side must be at most {limits.max_aspect:g} times the short side."
        )


def load_image(
    source: str | os.PathLike[str] | bytes | BinaryIO,
    *,
    limits: ImageLimits = DEFAULT_LIMITS,
) -> LoadedImage:
    """Decode an untrusted image file into an upright RGB ``uint8`` array.

    Args:
        source: a file path, the file's bytes, or a binary file object (read from its
            current position to the end; not closed).
        limits: size bounds, checked from the header before any pixel is decoded.

    Returns:
        A :class:`LoadedImage` whose ``rgb`` is ``(H, W, 3)`` ``uint8`` in original-image
        pixels after the EXIF orientation.

    Raises:
        InvalidImageError: for anything wrong with the file (too large, too many pixels,
            bad shape, damaged, unsupported format, not an image). The message is meant
            for the user; the original exception, if any, is chained.
            Also raised when ``source`` is not a path, bytes or a binary file object.
    """
    stream = _open_source(source, limits)
    try:
        rgb, format_name, notes = _load_from_stream(stream, limits, _upright_rgb)
    finally:
        stream.close()
    return LoadedImage(rgb=rgb, format=format_name, notes=notes)


def load_upright(
    source: str | os.PathLike[str] | bytes | BinaryIO,
    *,
    limits: ImageLimits = DEFAULT_LIMITS,
) -> UprightImage:
    """:func:`load_image` without the array: the same pixels as Pillow images, turned upright on demand.

    For callers that resize and hash the pixels with Pillow anyway (the demo's upload intake): an RGB photo
    (every JPEG) is the decoded image itself, without the two 12 MP copies an array and a Pillow image of
    that array would cost (about 0.1 s at 12 MP on one core), and its EXIF orientation is left for the
    caller to apply (:meth:`UprightImage.upright`) where it costs least, e.g. beside other work on a
    second core. Same checks, messages, notes and pixels as :func:`load_image`
    (``np.asarray(load_upright(f).upright()) == load_image(f).rgb``).

    Raises:
        InvalidImageError: as :func:`load_image`.
    """
    stream = _open_source(source, limits)
    try:
        loaded, format_name, notes = _load_from_stream(stream, limits, _upright_image)
    finally:
        stream.close()
    return UprightImage(loaded.stored, loaded.orientation, format_name, notes)


def rgb_chunks(image: Image.Image, chunk_bytes: int = RGB_CHUNK_BYTES) -> Iterator[bytes]:
    """The pixels of an RGB-mode image as ``(H, W, 3)`` uint8 bytes in row-major order, in pieces of at most
    about ``chunk_bytes`` (at least one row each): what ``image.tobytes()`` returns, joined, without a buffer of the whole image (a
    content hash of 12 MP took 37 ms of CPU this way, 80 ms through ``tobytes``).

    Raises:
        ValueError: the image is not in mode ``"RGB"``.
    """
    if image.mode != "RGB":
        raise ValueError(f"expected an RGB image, got mode {image.mode}")
    try:
        encoder = Image._getencoder(image.mode, "raw", image.mode)
        encoder.setimage(image.im, (0, 0, image.width, image.height))
    except (AttributeError, TypeError, ValueError, OSError):  # pragma: no cover - other Pillow versions
        yield image.tobytes()
        return
    piece = max(chunk_bytes, image.width * _CHANNELS_RGB + _RAW_ENCODER_SLACK)  # it packs whole rows
    while True:
        _, status, data = encoder.encode(piece)
        if status < 0:  # pragma: no cover - the raw encoder does not fail on a loaded image
            raise ValueError("unexpected raw encoder output")
        yield data
        if status:
            return


def image_size(
    source: str | os.PathLike[str] | bytes | BinaryIO,
    *,
    limits: ImageLimits = DEFAULT_LIMITS,
) -> tuple[int, int]:
    """``(width, height)`` of an image file as stored, from its header only (no pixel is decoded).

    The same checks as :func:`load_image` apply to the file and the header, so
    a caller can bound the cost of work on an image before decoding it. The
    size is before the EXIF orientation (which may swap the two).

    Raises:
        InvalidImageError: as :func:`load_image` for the file and its header.
    """
    stream = _open_source(source, limits)
    try:
        image = _open_lazily(stream, limits)
        with image:
            check_size(image.width, image.height, limits)
            return image.width, image.height
    finally:
        stream.close()


def to_rgb_uint8(image: np.ndarray | Image.Image) -> NDArray[np.uint8]:
    """Normalise an in-memory image to a new ``(H, W, 3)`` ``uint8`` RGB array.

    Args:
        image: a numpy array of dtype bool, uint8..uint64, int8..int64 or
            float16/32/64 with shape ``(H, W)``, ``(H, W, 1)``, ``(H, W, 2)`` (grey +
            alpha), ``(H, W, 3)`` (RGB) or ``(H, W, 4)`` (RGBA); read-only and
            non-contiguous arrays are fine. Or a PIL image of any mode (its current
            frame; EXIF orientation is NOT applied here).

    Returns:
        A new (never aliasing the input), writable, C-contiguous ``uint8`` array of
        shape ``(H, W, 3)``. Alpha is composited on white. See the module docstring
        for the value-scaling rules. No size limits are applied.

    Raises:
        InvalidImageError: unsupported shape or dtype (the message names both), an
            empty array, a PIL image that cannot be decoded or converted, or an
            object that is neither a numpy array nor a PIL image.
    """
    if isinstance(image, Image.Image):
        try:
            image.load()
        except MemoryError as exc:
            raise _rejected(MSG_OUT_OF_MEMORY, exc) from exc
        except _DECODE_ERRORS as exc:
            raise _rejected(MSG_DAMAGED, exc) from exc
        rgb, _notes = _pil_to_rgb(image)
        return rgb
    if isinstance(image, np.ndarray):
        return _array_to_rgb(image)[0]
    raise InvalidImageError(f"Expected an image array or a PIL image, got {type(image).__name__}.")


def is_rgb_uint8(image: object) -> bool:
    """True for a numpy ``(H, W, 3)`` uint8 array (what the predictor takes without conversion)."""
    return isinstance(image, np.ndarray) and image.dtype == np.uint8 and image.ndim == 3 and image.shape[2] == 3


def as_rgb_uint8(image: np.ndarray | Image.Image) -> NDArray[np.uint8]:
    """``image`` itself when it is already ``(H, W, 3)`` uint8 RGB (no copy), else :func:`to_rgb_uint8` of it."""
    return image if is_rgb_uint8(image) else to_rgb_uint8(image)


# ------------------------------------------------------------------ loading internals


def _open_source(source: object, limits: ImageLimits) -> io.BufferedIOBase | io.BytesIO:
    """Return a seekable binary stream over the file's bytes, after the byte-size check."""
    if isinstance(source, (bytes, bytearray, memoryview)):
        data = bytes(source)
        _check_bytes(len(data), limits)
        return io.BytesIO(data)
    if isinstance(source, (str, os.PathLike)):
        return _open_path(os.fspath(source), limits)
    if hasattr(source, "read"):
        return io.BytesIO(_read_stream(source, limits))
    raise InvalidImageError(f"Expected a file path, bytes or a binary file object, got {type(source).__name__}.")


def _open_path(path: str | bytes, limits: ImageLimits) -> io.BufferedIOBase:
    try:
        handle = open(path, "rb")  # noqa: SIM115 - closed by load_image
    except FileNotFoundError as exc:
        raise _rejected(MSG_NO_SUCH_FILE, exc) from exc
    except IsADirectoryError as exc:
        raise _rejected(MSG_NOT_A_FILE, exc) from exc
    except PermissionError as exc:
        raise _rejected(MSG_NO_PERMISSION, exc) from exc
    except OSError as exc:
        raise _rejected(MSG_CANNOT_OPEN, exc) from exc
    try:
        info = os.fstat(handle.fileno())
        if not stat.S_ISREG(info.st_mode):  # a FIFO or /dev/zero would never end
            raise _rejected(MSG_CANNOT_OPEN)
        _check_bytes(info.st_size, limits)
    except BaseException:
        handle.close()
        raise
    return handle


def _read_stream(stream: object, limits: ImageLimits) -> bytes:
    """Read a caller's binary stream from its position, never more than max_bytes + 1."""
    remaining = _remaining_size(stream)
    if remaining is not None:
        _check_bytes(remaining, limits)
    read_limit = -1 if limits.max_bytes is None else limits.max_bytes + 1  # -1: to the end
    try:
        data = stream.read(read_limit)  # type: ignore[attr-defined]
    except OSError as exc:
        raise _rejected(MSG_CANNOT_OPEN, exc) from exc
    if not isinstance(data, (bytes, bytearray)):
        raise InvalidImageError("Could not read the file; open it in binary mode.")
    if limits.max_bytes is not None and len(data) > limits.max_bytes:
        raise _rejected(_file_size_message(None, limits.max_bytes))
    if not data:
        raise _rejected(MSG_EMPTY)
    return bytes(data)


def _remaining_size(stream: object) -> int | None:
    """Bytes left in a seekable stream, or None if it cannot tell."""
    try:
        if not stream.seekable():  # type: ignore[attr-defined]
            return None
        position = stream.tell()  # type: ignore[attr-defined]
        end = stream.seek(0, io.SEEK_END)  # type: ignore[attr-defined]
        stream.seek(position)  # type: ignore[attr-defined]
    except (AttributeError, OSError, ValueError):
        return None
    return max(0, end - position)


def _check_bytes(size: int, limits: ImageLimits) -> None:
    if size == 0:
        raise _rejected(MSG_EMPTY)
    if limits.max_bytes is not None and size > limits.max_bytes:
        raise _rejected(_file_size_message(size, limits.max_bytes))


def _file_size_message(size: int | None, max_bytes: int) -> str:
    """E.g. "The file is 25 MB; the limit is 20 MB." KB for limits under 1 MB.

    ``size`` is None when unknown (a stream that cannot tell its length).
    """
    unit, unit_name = (_BYTES_PER_MB, "MB") if max_bytes >= _BYTES_PER_MB else (_BYTES_PER_KB, "KB")
    limit = f"the limit is {_floor_units(max_bytes, unit)} {unit_name}."
    if size is None:
        return f"The file is too large; {limit}"
    return f"The file is {_ceil_units(size, unit)} {unit_name}; {limit}"


def _load_from_stream(stream: BinaryIO, limits: ImageLimits,
                      finish: Callable[[Image.Image, Image.Transpose | None], tuple[_T, tuple[str, ...]]]
                      ) -> tuple[_T, str, tuple[str, ...]]:
    """Decode the first frame and ``finish`` it with its EXIF orientation (turn it upright, normalise the
    mode): the result, the format and the notes."""
    image = _open_lazily(stream, limits)
    with image:
        try:
            check_size(image.width, image.height, limits)  # header only, nothing decoded yet
        except InvalidImageError as exc:
            logger.info("Rejected image: %s", exc)
            raise
        format_name = _FORMAT_ALIASES.get(image.format or "", image.format or "")
        notes: list[str] = []
        with _decoding(limits):
            # Before load(): for GIF this seeks to frame 1 and back, which is cheap only
            # while frame 0 is not decoded yet. Never count all frames (n_frames).
            animated = bool(getattr(image, "is_animated", False))
            image.load()  # decodes the first frame only
        if animated and image.format not in _NOT_ANIMATED_FORMATS:
            notes.append(Note.ANIMATED)
        orientation = _exif_orientation(image)
        if orientation is not None:
            notes.insert(0, Note.ROTATED)
        finished, mode_notes = finish(image, orientation)
    return finished, format_name, (*notes, *mode_notes)


def _upright_rgb(image: Image.Image,
                 orientation: Image.Transpose | None) -> tuple[NDArray[np.uint8], tuple[str, ...]]:
    """:func:`load_image`'s finish: the decoded image turned upright, as a new ``(H, W, 3)`` uint8 array + notes."""
    return _pil_to_rgb(UprightImage(image, orientation, "").upright())


def _upright_image(image: Image.Image,
                   orientation: Image.Transpose | None) -> tuple[UprightImage, tuple[str, ...]]:
    """:func:`load_upright`'s finish: an RGB photo without transparency as decoded, turned upright later
    (no copy now); any other mode turned upright and normalised now (:func:`_pil_to_rgb`), as an RGB image."""
    if image.mode == "RGB" and not image.has_transparency_data:
        return UprightImage(image, orientation, ""), ()
    rgb, notes = _upright_rgb(image, orientation)
    return UprightImage(Image.fromarray(rgb, mode="RGB"), None, ""), notes


@contextlib.contextmanager
def _decoding(limits: ImageLimits):
    """Turn what Pillow raises while reading a file into one :class:`InvalidImageError` each."""
    try:
        yield
    except InvalidImageError:
        raise
    except _BOMB_ERRORS as exc:
        raise _rejected(_bomb_message(exc, limits), exc) from exc
    except MemoryError as exc:
        raise _rejected(MSG_OUT_OF_MEMORY, exc) from exc
    except _DECODE_ERRORS as exc:
        raise _rejected(MSG_DAMAGED, exc) from exc


def _open_lazily(stream: BinaryIO, limits: ImageLimits) -> Image.Image:
    """Image.open restricted to ALLOWED_FORMATS; reads the header only."""
    with _decoding(limits):
        try:
            return Image.open(stream, formats=ALLOWED_FORMATS)
        except UnidentifiedImageError as exc:
            raise _rejected(_unidentified_message(stream), exc) from exc


def _exif_orientation(image: Image.Image) -> Image.Transpose | None:
    """The transposition that turns the image upright by its EXIF orientation, or None (already upright).

    Broken EXIF metadata is not a reason to refuse a photo whose pixels decoded: the
    image is then used as stored.
    """
    try:
        orientation = image.getexif().get(_EXIF_ORIENTATION_TAG, 1)
    except MemoryError as exc:
        raise _rejected(MSG_OUT_OF_MEMORY, exc) from exc
    except _DECODE_ERRORS as exc:
        logger.info("Ignoring unreadable EXIF orientation (%s)", type(exc).__name__)
        return None
    return _TRANSPOSE_OF_ORIENTATION.get(orientation) if orientation in _ROTATING_ORIENTATIONS else None


def _unidentified_message(stream: BinaryIO) -> str:
    """Name the format of a file Pillow was not allowed to (or could not) identify."""
    try:
        stream.seek(0)
        head = stream.read(_SNIFF_BYTES)
    except (OSError, ValueError):
        return MSG_NOT_AN_IMAGE
    return _message_for_unsupported(head)


def _message_for_unsupported(head: bytes) -> str:
    iso_brand_message = _iso_bmff_message(head)
    if iso_brand_message is not None:
        return iso_brand_message
    name = _unsupported_format_name(head)
    if name is not None:
        return f"{name} files are not supported; {SUPPORTED_HINT}."
    if _looks_like_svg(head):
        return MSG_SVG
    if head.startswith(_ALLOWED_SIGNATURES) or (head[:4] == b"RIFF" and head[8:12] == b"WEBP"):
        return MSG_DAMAGED
    return MSG_NOT_AN_IMAGE


def _unsupported_format_name(head: bytes) -> str | None:
    for signature, name in _UNSUPPORTED_SIGNATURES:
        if head.startswith(signature):
            return name
    # ICO: reserved 0, type 1, at least one entry. The count matters: an uncompressed
    # TGA without a colour map also starts with 00 00 01|02 00, but its next two bytes are 0.
    if head.startswith(_ICO_SIGNATURE) and int.from_bytes(head[4:6], "little") > 0:
        return "ICO"
    return None


def _iso_bmff_message(head: bytes) -> str | None:
    """HEIC/AVIF files are ISO-BMFF: a ``ftyp`` box listing brands. None if neither."""
    if head[4:8] != _ISO_BMFF_FTYP:
        return None
    box_size = int.from_bytes(head[:4], "big")
    box_end = min(max(box_size, 16), len(head))
    brands = {head[8:12]} | {head[i : i + 4] for i in range(16, box_end - 3, 4)}
    if brands & _AVIF_BRANDS:
        return MSG_AVIF
    if brands & _HEIF_BRANDS:
        return MSG_HEIC
    return None


def _looks_like_svg(head: bytes) -> bool:
    text = head.lstrip(b"\xef\xbb\xbf \t\r\n").lower()
    return text.startswith(b"<") and b"<svg" in text


def _bomb_message(exc: BaseException, limits: ImageLimits) -> str:
    limit = _floor_units(limits.max_pixels, _PIXELS_PER_MP)
    match = _BOMB_PIXELS_RE.search(str(exc))
    if match is None:
        return f"The image has too many pixels; the limit is {limit} MP."
    pixels = int(match.group(1))
    return f"The image is {_ceil_units(pixels, _PIXELS_PER_MP)} MP; the limit is {limit} MP."


def _rejected(message: str, cause: BaseException | None = None) -> InvalidImageError:
    """Log a rejection (class only, no content) and build the user-facing error."""
    if cause is None:
        logger.info("Rejected image: %s", message)
    else:
        logger.info("Rejected image: %s (%s)", message, type(cause).__name__)
    return InvalidImageError(message)


def _ceil_units(value: int, unit: int) -> str:
    """``value / unit`` rounded UP to one decimal, as text ("100", "20.1")."""
    tenths = -(-value * 10 // unit)
    return f"{tenths / 10:g}"


def _floor_units(value: int, unit: int) -> str:
    """``value / unit`` rounded DOWN to one decimal, as text."""
    return f"{value * 10 // unit / 10:g}"


# ------------------------------------------------------------------ mode normalisation


def _pil_to_rgb(image: Image.Image) -> tuple[NDArray[np.uint8], tuple[str, ...]]:
    """Convert a loaded PIL image (any mode) to a new (H, W, 3) uint8 array + notes."""
    mode = image.mode
    try:
        if mode == "RGB" and not image.has_transparency_data:
            # The common case (every JPEG photo): one copy out of Pillow, already what we return.
            # convert("RGB") + a second copy would cost about 30 ms more at 12 MP.
            return _owned_rgb(image), ()
        if mode in _SIXTEEN_BIT_MODES:
            return _array_to_rgb(np.asarray(image))[0], (Note.SIXTEEN_BIT,)
        if mode == "I":
            grey = np.asarray(image)
            if grey.size and grey.min() >= 0 and grey.max() <= _UINT16_MAX:
                return _array_to_rgb(grey.astype(np.uint16))[0], (Note.SIXTEEN_BIT,)
            return _array_to_rgb(grey)[0], (Note.THIRTY_TWO_BIT,)
        if mode == "F":
            return _array_to_rgb(np.asarray(image))[0], (Note.FLOAT,)
        if mode == _PREMULTIPLIED_GREY_ALPHA_MODE:
            rgb, transparent = _premultiplied_grey_alpha_on_white(np.asarray(image))
        elif image.has_transparency_data:
            rgb, transparent = _array_to_rgb(np.asarray(image.convert("RGBA")))
        else:
            rgb = _array_to_rgb(np.asarray(image.convert("RGB")))[0]
            transparent = False
    except MemoryError as exc:
        raise _rejected(MSG_OUT_OF_MEMORY, exc) from exc
    except (ValueError, OSError) as exc:
        if isinstance(exc, InvalidImageError):
            raise
        message = f"Images in mode {mode} are not supported; {SUPPORTED_HINT}."
        raise _rejected(message, exc) from exc
    return rgb, ((Note.TRANSPARENT,) if transparent else ())


def _owned_rgb(image: Image.Image) -> NDArray[np.uint8]:
    """A new, writable, C-contiguous ``(H, W, 3)`` uint8 array of an RGB-mode image's pixels.

    ``np.array(image)`` goes through ``Image.tobytes``, which packs the pixels in
    64 KiB pieces and joins them: about 37 ms at 12 MP. Packing in one piece with
    the same raw encoder gives the same bytes in about 20 ms; if Pillow's
    encoder interface ever changes, the public route is used.
    """
    height, width = image.height, image.width
    try:
        encoder = Image._getencoder(image.mode, "raw", image.mode)
        encoder.setimage(image.im, (0, 0, width, height))
        chunks = []
        while True:
            _, status, data = encoder.encode(width * height * _CHANNELS_RGB + _RAW_ENCODER_SLACK)
            chunks.append(data)
            if status:
                break
        if status < 0 or sum(map(len, chunks)) != width * height * _CHANNELS_RGB:
            raise ValueError("unexpected raw encoder output")
    except (AttributeError, TypeError, ValueError, OSError):  # pragma: no cover - other Pillow versions
        return np.array(image, dtype=np.uint8, order="C", copy=True)
    packed = chunks[0] if len(chunks) == 1 else b"".join(chunks)
    return np.frombuffer(packed, dtype=np.uint8).reshape(height, width, _CHANNELS_RGB).copy()


def _premultiplied_grey_alpha_on_white(
    grey_alpha: NDArray[np.uint8],
) -> tuple[NDArray[np.uint8], bool]:
    """(H, W, 2) premultiplied grey + alpha -> (H, W, 3) on white: ``g + (255 - a)``."""
    grey = grey_alpha[..., 0].astype(np.uint16)
    alpha = grey_alpha[..., 1].astype(np.uint16)
    on_white = np.minimum(grey + (_UINT8_MAX - alpha), _UINT8_MAX).astype(np.uint8)
    rgb = np.empty((*on_white.shape, 3), dtype=np.uint8)
    rgb[...] = on_white[..., None]
    return rgb, bool((alpha < _UINT8_MAX).any())


# ------------------------------------------------------------------ array normalisation

_CHANNELS_GREY: Final = 1
_CHANNELS_GREY_ALPHA: Final = 2
_CHANNELS_RGB: Final = 3
_CHANNELS_RGBA: Final = 4
_SUPPORTED_KINDS: Final = frozenset("biuf")  # bool, signed int, unsigned int, float
_RAW_ENCODER_SLACK: Final = 1024  # bytes beyond the pixel data offered to Pillow's raw encoder (one-piece output)


def _array_to_rgb(array: np.ndarray) -> tuple[NDArray[np.uint8], bool]:
    """Normalise an array to a new (H, W, 3) uint8 RGB array.

    Returns the array and whether any pixel was not fully opaque (alpha < 255).
    """
    colour, alpha = _split_channels(array)
    colour8 = _scale_to_uint8(colour)
    height, width = array.shape[:2]
    rgb = np.empty((height, width, _CHANNELS_RGB), dtype=np.uint8)
    if alpha is None:
        rgb[...] = colour8  # broadcasts (H, W, 1) grey to three channels
        return rgb, False
    alpha8 = _scale_to_uint8(alpha)
    if alpha8.min() == _UINT8_MAX:  # fully opaque: nothing to blend
        rgb[...] = colour8
        return rgb, False
    rgb[...] = _composite_on_white(colour8, alpha8)
    return rgb, True


def _split_channels(array: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
    """Validate shape and dtype; return colour (H, W, 1|3) and alpha (H, W, 1) or None."""
    if array.dtype.kind not in _SUPPORTED_KINDS or array.size == 0 or array.ndim not in (2, 3):
        raise _unsupported_array(array)
    if array.ndim == 2:
        return array[..., None], None
    channels = array.shape[2]
    if channels in (_CHANNELS_GREY, _CHANNELS_RGB):
        return array, None
    if channels == _CHANNELS_GREY_ALPHA:
        return array[..., :1], array[..., 1:]
    if channels == _CHANNELS_RGBA:
        return array[..., :3], array[..., 3:]
    raise _unsupported_array(array)


def _unsupported_array(array: np.ndarray) -> InvalidImageError:
    return InvalidImageError(
        f"Cannot use an image array of shape {tuple(array.shape)} and dtype {array.dtype}; "
        "expected shape (H, W), (H, W, 1), (H, W, 2), (H, W, 3) or (H, W, 4) "
        "with a boolean, integer or floating-point dtype."
    )


def _scale_to_uint8(values: np.ndarray) -> NDArray[np.uint8]:
    """Map values of any supported dtype to uint8 by the module's rules (may be a view)."""
    if not values.dtype.isnative:  # e.g. big-endian uint16 from Pillow's I;16B
        values = values.astype(values.dtype.newbyteorder("="))
    kind = values.dtype.kind
    if values.dtype == np.uint8:
        return values
    if kind == "b":
        return values.astype(np.uint8) * np.uint8(_UINT8_MAX)
    if values.dtype == np.uint16:
        widened = values.astype(np.uint32)
        return ((widened + _UINT16_TO_UINT8_DIVISOR // 2) // _UINT16_TO_UINT8_DIVISOR).astype(np.uint8)
    if kind in "iu":
        low, high = values.min(), values.max()
        if low >= 0 and high <= _UINT8_MAX:
            return values.astype(np.uint8)
        return _min_max(values.astype(_work_float(values.dtype)), float(low), float(high))
    return _scale_float(values)


def _work_float(dtype: np.dtype) -> type[np.floating]:
    """float32 where it is exact enough (<= 16-bit ints, <= 32-bit floats), else float64."""
    return np.float32 if dtype.itemsize <= 2 or dtype == np.float32 else np.float64


def _scale_float(values: np.ndarray) -> NDArray[np.uint8]:
    work = values.astype(_work_float(values.dtype))
    finite = np.isfinite(work)
    if not finite.all():
        work[~finite] = 0.0
        if not finite.any():
            return np.zeros(values.shape, dtype=np.uint8)
        low, high = float(work[finite].min()), float(work[finite].max())
    else:
        low, high = float(work.min()), float(work.max())
    result = np.rint(work * _UINT8_MAX).astype(np.uint8) if low >= 0.0 and high <= 1.0 else _min_max(work, low, high)
    result[~finite] = 0
    return result


def _min_max(work: np.ndarray, low: float, high: float) -> NDArray[np.uint8]:
    """Stretch [low, high] to [0, 255]; a constant image keeps its value, clipped."""
    if high == low:
        return np.full(work.shape, np.clip(np.rint(low), 0, _UINT8_MAX), dtype=np.uint8)
    # Halves keep (high - low) finite even for values near the dtype's extremes.
    half_span = high / 2 - low / 2
    with np.errstate(over="ignore", invalid="ignore"):
        scaled = (work / 2 - low / 2) * (_UINT8_MAX / half_span)
    return np.clip(np.rint(scaled), 0, _UINT8_MAX).astype(np.uint8)


def _composite_on_white(colour: NDArray[np.uint8], alpha: NDArray[np.uint8]) -> NDArray[np.uint8]:
    """``colour * a + 255 * (1 - a)`` rounded to nearest; returns (H, W, C) uint8.

    ``colour`` is (H, W, C) uint8, ``alpha`` (H, W, 1) uint8 with 255 = opaque.

    A 64 KiB lookup table indexed by ``(alpha << 8) | colour`` does it in one gather:
    about 10x faster than the integer arithmetic on a 25 MP RGBA image.
    """
    index = alpha.astype(np.uint16) << 8
    index = index | colour  # broadcasts alpha over the colour channels
    return _on_white_table()[index]


@functools.cache
def _on_white_table() -> NDArray[np.uint8]:
    """Flat table: entry ``(a << 8) | c`` = round((c * a + 255 * (255 - a)) / 255)."""
    levels = np.arange(_UINT8_MAX + 1, dtype=np.uint32)
    alpha, colour = levels[:, None], levels[None, :]
    blended = colour * alpha + _UINT8_MAX * (_UINT8_MAX - alpha) + _UINT8_MAX // 2
    table = (blended // _UINT8_MAX).astype(np.uint8).reshape(-1)
    table.setflags(write=False)
    return table
