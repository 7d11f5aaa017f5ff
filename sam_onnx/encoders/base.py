"""What an image encoder is: the seam between :class:`~sam_onnx.Sam2Predictor` and the engines.

An encoder runs the SAM 2.1 image encoder once per image::

    pixel_values   float32 (1, 3, 1024, 1024)   the image squashed to the 1024 model frame and
                                                ImageNet-normalised (sam_onnx.preprocess)
 -> embeddings     float32 (1, 32, 256, 256), (1, 64, 128, 128), (1, 256, 64, 64)
                   (image_embeddings.0 / .1 / .2 of the decoder's inputs)

Whatever runs inside (onnxruntime on the fp32, int8 or fp16 file, OpenVINO, a
remote worker), the predictor sees only :class:`ImageEncoder`. A new engine is
one module with a ``VARIANTS`` tuple of :class:`Variant` (see
:mod:`sam_onnx.encoders`), listed once in ``ENGINE_MODULES`` there.
"""

from __future__ import annotations

import importlib.metadata
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol, runtime_checkable

import numpy as np

from ..errors import InferenceError, ModelLoadError
from ..geometry import MODEL_SIDE

PIXEL_SHAPE = (1, 3, MODEL_SIDE, MODEL_SIDE)
"""Shape of the encoder input, batch 1."""
EMBEDDING_SHAPES = ((1, 32, 256, 256), (1, 64, 128, 128), (1, 256, 64, 64))
"""Shapes of the three encoder outputs, batch 1 (the decoder's ``image_embeddings.0/1/2``)."""

CACHE_DIR_ENV = "SAM_ONNX_CACHE_DIR"
"""Environment variable naming the folder for derived files (int8 models, OpenVINO blobs, auto decisions)."""


@runtime_checkable
class ImageEncoder(Protocol):
    """Anything that turns model-frame pixels into the three SAM 2.1 image embeddings.

    Attributes:
        name: the variant, as ``--encoder`` spells it (``"fp32"``, ``"int8"``,
            ``"openvino-bf16"``, ...); also what the UI and the API report.
        description: one line for logs and the UI, e.g.
            ``"onnxruntime 1.32.0 int8 (dynamic, MatMul)"``.

    ``encode`` must be safe to call from several threads (it may serialise)
    and must raise :class:`~sam_onnx.errors.InferenceError` when the engine
    fails, never return wrong-shaped or non-finite arrays.
    """

    name: str
    description: str

    def encode(self, pixel_values: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``(1, 3, 1024, 1024)`` float32 model-frame pixels -> the three float32 embeddings (batch 1)."""
        ...


@dataclass(frozen=True)
class EncoderSource:
    """What an engine may use to build its encoder.

    Attributes:
        encoder_path: the fp32 encoder's ``.onnx`` file (external data beside it);
            the source of every derived variant.
        cache_dir: folder for derived files (created on demand).
        threads: CPU threads the encoder may use.
        providers: onnxruntime execution providers (``None`` = CPU).
        fp16_encoder_path: the published float16 encoder's ``.onnx`` file, or
            ``None`` when it is not on this machine.
    """

    encoder_path: Path
    cache_dir: Path
    threads: int
    providers: tuple[str, ...] | None = None
    fp16_encoder_path: Path | None = None


@dataclass(frozen=True)
class Variant:
    """One way to run the encoder, as listed by an engine module.

    Attributes:
        name: the ``--encoder`` value.
        load: builds the encoder; raises :class:`EncoderUnavailable` (with the
            reason) when it cannot run here, :class:`~sam_onnx.errors.ModelLoadError`
            when a file is bad.
        auto_candidate: whether ``--encoder auto`` tries it against fp32.
    """

    name: str
    load: Callable[[EncoderSource], ImageEncoder]
    auto_candidate: bool = True


class EncoderUnavailable(ModelLoadError):
    """This encoder variant cannot run here (package missing, CPU lacks a feature, file absent)."""


def package_version(name: str) -> str | None:
    """The installed version of a distribution (part of the keys of derived files and ``auto`` decisions)."""
    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return None


def default_cache_dir() -> Path:
    """``$SAM_ONNX_CACHE_DIR``, else ``$XDG_CACHE_HOME/sam_onnx`` (``~/.cache/sam_onnx``), beside the hub cache."""
    explicit = os.environ.get(CACHE_DIR_ENV)
    if explicit:
        return Path(explicit).expanduser()
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache").expanduser() / "sam_onnx"


def check_embeddings(outputs, *, label: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The engine's outputs as three C-contiguous float32 arrays of the contract's shapes.

    Raises:
        InferenceError: wrong count or shape, or a non-finite value (a broken
            engine must fail loudly instead of giving wrong masks).
    """
    outputs = tuple(outputs)
    shapes = tuple(tuple(o.shape) for o in outputs)
    if shapes != EMBEDDING_SHAPES:
        raise InferenceError(f"The {label} returned embeddings of shapes {shapes}, expected {EMBEDDING_SHAPES}.")
    converted = tuple(np.ascontiguousarray(o, dtype=np.float32) for o in outputs)
    if not all(np.isfinite(o).all() for o in converted):
        raise InferenceError(f"The {label} returned non-finite embeddings; the model file or the engine is broken.")
    return converted  # type: ignore[return-value]
