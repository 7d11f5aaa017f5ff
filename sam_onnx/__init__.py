"""sam_onnx: SAM 2.1 (Hiera-Small) image segmentation on onnxruntime.

Public API::

    from sam_onnx import Sam2Predictor, Prompts, Point, Box

    predictor = Sam2Predictor.from_pretrained()   # pinned hub revision, or SAM_ONNX_MODEL_DIR
    embedding = predictor.encode(rgb)              # (H, W, 3) uint8 -> ImageEmbedding
    result = predictor.decode(embedding, Prompts(points=(Point(410, 220),)))
    result.best_mask                               # (H, W) bool at the original size

Importing the package does no I/O: nothing is loaded or downloaded until a
predictor is built.
"""

from .abort import Abort
from .errors import Aborted, InferenceError, InvalidImageError, InvalidPromptError, ModelLoadError, SamOnnxError
from .geometry import LOW_RES_SIDE, MODEL_SIDE, CropFrame, DisplayFrame, Geometry
from .models import DEFAULT_MODEL, SAM21_HIERA_SMALL, ModelSpec
from .predictor import Sam2Predictor
from .types import (
    MAX_POINTS_PER_OBJECT,
    NEGATIVE,
    POSITIVE,
    Box,
    ImageEmbedding,
    MaskResult,
    ModelInfo,
    Point,
    Prompts,
)

__all__ = [
    "DEFAULT_MODEL",
    "LOW_RES_SIDE",
    "MAX_POINTS_PER_OBJECT",
    "MODEL_SIDE",
    "NEGATIVE",
    "POSITIVE",
    "SAM21_HIERA_SMALL",
    "Abort",
    "Aborted",
    "Box",
    "CropFrame",
    "DisplayFrame",
    "Geometry",
    "ImageEmbedding",
    "InferenceError",
    "InvalidImageError",
    "InvalidPromptError",
    "MaskResult",
    "ModelInfo",
    "ModelLoadError",
    "ModelSpec",
    "Point",
    "Prompts",
    "Sam2Predictor",
    "SamOnnxError",
]
