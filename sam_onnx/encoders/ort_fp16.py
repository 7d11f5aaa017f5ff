"""onnxruntime on the published half-precision encoder file (``vision_encoder_fp16.onnx``).

Half the download (82 vs 163 MB); on CPUs without native float16 arithmetic
onnxruntime runs it through casts and it is slower than fp32 (bench/README.md).
``--encoder auto`` tries it only when the file is already on this machine.
"""

from __future__ import annotations

from .base import EncoderSource, EncoderUnavailable, Variant
from .ort_fp32 import FP16, OrtEncoder, load_file


def load(source: EncoderSource) -> OrtEncoder:
    if source.fp16_encoder_path is None:
        raise EncoderUnavailable("the fp16 encoder file is not on this machine (--encoder fp16 downloads it)")
    return load_file(source.fp16_encoder_path, source, name=FP16)


VARIANTS = (Variant(FP16, load),)
