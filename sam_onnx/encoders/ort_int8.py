"""onnxruntime on an int8 copy of the encoder, made once with dynamic quantization.

``onnxruntime.quantization.quantize_dynamic`` stores the MatMul weights as
int8 (per tensor, signed) and quantizes their activations to uint8 at run
time; convolutions and attention products stay float32 (quantizing the
convolutions too was no faster and less accurate on the stand-in; see
bench/README.md). No calibration data and no new dependency: 2-4 s for
the 163 MB Hiera-S stand-in (measured). The file is written once under
``<cache_dir>/int8/<model hash>-onnxruntime<version>/`` and reused by every
later start; a different encoder file or onnxruntime version gets its own.
"""

from __future__ import annotations

import logging
import os
import tempfile
import time
from pathlib import Path

from .. import session as ort_session
from ..errors import ModelLoadError
from .base import EncoderSource, Variant
from .fingerprint import model_fingerprint
from .ort_fp32 import OrtEncoder, load_file

logger = logging.getLogger(__name__)

INT8 = "int8"
QUANTIZED_OPS = ("MatMul",)
"""Op types whose weights are quantized. Conv is left float: ConvInteger was slower here."""
INT8_FILE_NAME = "encoder_int8.onnx"
DESCRIPTION = "onnxruntime {version} int8 (dynamic quantization of the MatMul weights)"


def int8_path(source: EncoderSource) -> Path:
    """Where the int8 copy of ``source.encoder_path`` lives (keyed by its hash and the onnxruntime version)."""
    key = f"{model_fingerprint(source.encoder_path)[:16]}-onnxruntime{ort_session.version()}"
    return source.cache_dir / "int8" / key / INT8_FILE_NAME


class _QuietQuantizer(logging.Filter):
    """Drops the quantizer's chatter, which it logs straight to the root logger (one line per tensor)."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "onnxruntime" not in record.pathname or record.levelno >= logging.ERROR


def quantize(encoder: Path, out: Path) -> Path:
    """Write the int8 copy of ``encoder`` to ``out`` (atomically: a crash leaves no half file).

    Raises:
        ModelLoadError: quantization failed or the folder is not writable.
    """
    from onnxruntime.quantization import QuantType, quantize_dynamic

    started = time.perf_counter()
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp_name = tempfile.mkstemp(prefix=".int8-", suffix=".onnx", dir=out.parent)
        os.close(fd)
    except OSError as exc:
        raise ModelLoadError(f"Cannot write the int8 encoder to {out.parent}: {exc.strerror or exc}. "
                             f"Point SAM_ONNX_CACHE_DIR at a writable folder.") from exc
    tmp = Path(tmp_name)
    quiet = _QuietQuantizer()
    logging.getLogger().addFilter(quiet)  # only records logged to the root logger itself pass through it
    try:
        quantize_dynamic(encoder, tmp, op_types_to_quantize=list(QUANTIZED_OPS), weight_type=QuantType.QInt8,
                         per_channel=False, reduce_range=False)
        tmp.replace(out)
    except Exception as exc:  # the quantizer raises many unrelated types
        raise ModelLoadError(f"Could not make the int8 encoder from {encoder}: "
                             f"{type(exc).__name__}: {str(exc).splitlines()[0][:200] if str(exc) else ''}") from exc
    finally:
        logging.getLogger().removeFilter(quiet)
        tmp.unlink(missing_ok=True)
    logger.info("made the int8 encoder %s in %.1f s", out, time.perf_counter() - started)
    return out


def load(source: EncoderSource) -> OrtEncoder:
    """onnxruntime on the int8 copy, quantizing first if this machine has none yet."""
    path = int8_path(source)
    description = DESCRIPTION.format(version=ort_session.version())
    if path.is_file():
        try:
            return load_file(path, source, name=INT8, description=description)
        except ModelLoadError as exc:  # e.g. truncated by a full disk: make it again, once
            logger.warning("the cached int8 encoder %s is unusable (%s); quantizing again", path, exc)
            path.unlink(missing_ok=True)
    quantize(source.encoder_path, path)
    return load_file(path, source, name=INT8, description=description)


VARIANTS = (Variant(INT8, load),)
