"""Image encoder engines behind one seam, and ``--encoder auto``, which picks the fastest faithful one.

Variants (``--encoder`` / ``SAM_ONNX_ENCODER`` / ``from_pretrained(variant=...)``):

- ``auto`` (default): measure the candidates below against fp32 at start-up
  and keep the fastest whose masks agree (:mod:`.auto`).
- ``fp32``: onnxruntime on the published fp32 file (the reference).
- ``int8``: onnxruntime on an int8 copy made once by dynamic quantization.
- ``openvino``: OpenVINO on the fp32 file, ``openvino-bf16`` where the CPU has
  bf16, else ``openvino-f32`` (needs the ``openvino`` package).
- ``openvino-int8``: OpenVINO on an int8 copy made once with NNCF (needs ``nncf``).
- ``fp16``: onnxruntime on the published half-precision file.

Each engine is one module with a ``VARIANTS`` tuple; add a module to
``ENGINE_MODULES`` to add an engine.
"""

from __future__ import annotations

import os

from ..errors import ModelLoadError
from . import openvino_cpu, openvino_int8, ort_fp16, ort_fp32, ort_int8
from .base import (
    CACHE_DIR_ENV,
    EMBEDDING_SHAPES,
    PIXEL_SHAPE,
    EncoderSource,
    EncoderUnavailable,
    ImageEncoder,
    Variant,
    default_cache_dir,
)
from .ort_fp32 import FP16, FP32, OrtEncoder
from .pretrained import from_pretrained, load_image_encoder

ENGINE_MODULES = (ort_fp32, ort_int8, openvino_cpu, openvino_int8, ort_fp16)
"""Every engine module; each lists its variants in ``VARIANTS``."""

AUTO = "auto"
ENCODER_ENV = "SAM_ONNX_ENCODER"
"""Environment variable with the default ``--encoder`` value (``auto`` when unset)."""
ALIASES = {openvino_cpu.OPENVINO: openvino_cpu.default_variant}
"""Names that stand for the best concrete variant on this machine (resolved when used)."""


def variants() -> dict[str, Variant]:
    """Every concrete variant by name, in the order ``auto`` tries them."""
    return {v.name: v for module in ENGINE_MODULES for v in module.VARIANTS}


def encoder_choices() -> tuple[str, ...]:
    """Every value ``--encoder`` accepts."""
    return (AUTO, *variants(), *ALIASES)


def requested_encoder(value: str | None = None) -> str:
    """``value`` if given, else ``$SAM_ONNX_ENCODER``, else ``auto``; checked and lower-cased.

    Raises:
        ModelLoadError: not one of :func:`encoder_choices`.
    """
    name = (value or os.environ.get(ENCODER_ENV) or AUTO).strip().lower()
    if name not in encoder_choices():
        where = "" if value else f" (from {ENCODER_ENV})"
        raise ModelLoadError(f"Unknown encoder {name!r}{where}; choose one of {', '.join(encoder_choices())}.")
    return name


def load_encoder(name: str, source: EncoderSource) -> ImageEncoder:
    """Build one concrete variant (or an alias such as ``openvino``), no fallback.

    Raises:
        EncoderUnavailable: it cannot run here (the message says why).
        ModelLoadError: a file is bad, or the name is unknown.
    """
    name = ALIASES[name]() if name in ALIASES else name
    table = variants()
    if name not in table:
        raise ModelLoadError(f"Unknown encoder {name!r}; choose one of {', '.join(encoder_choices())}.")
    return table[name].load(source)


__all__ = [
    "ALIASES",
    "AUTO",
    "CACHE_DIR_ENV",
    "EMBEDDING_SHAPES",
    "ENCODER_ENV",
    "ENGINE_MODULES",
    "FP16",
    "FP32",
    "PIXEL_SHAPE",
    "EncoderSource",
    "EncoderUnavailable",
    "ImageEncoder",
    "OrtEncoder",
    "Variant",
    "default_cache_dir",
    "encoder_choices",
    "from_pretrained",
    "load_image_encoder",
    "load_encoder",
    "requested_encoder",
    "variants",
]
