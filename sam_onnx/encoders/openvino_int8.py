"""OpenVINO on an int8 copy of the encoder, quantized once with NNCF (weights and activations, 8 bit).

NNCF's post-training quantization for transformers puts int8 on the linear
layers and on the attention products, which OpenVINO's CPU plugin runs with
AVX512-VNNI/AMX integer instructions; what stays in floating point runs in bf16
where the CPU has it. Activation ranges come from one bundled photo
(``quantization.jpg``, 451 x 300, scikit-image's ``chelsea.png``, CC0), not
from the photo the ``auto`` check compares masks on. Bias correction and
SmoothQuant are off: they multiplied the quantization time and changed
nothing measurable on the stand-in. Took 33-72 s (on a heavily shared 2-vCPU
machine) and 2.4 GB of memory for the Hiera-S stand-in, once; the IR is kept under
``<cache_dir>/openvino-int8/<model hash>-openvino<version>-nncf<version>/``.

Needs the optional ``nncf`` package (only to make the copy). NNCF sends usage
telemetry unless told it runs in CI; this module sets ``NNCF_CI=1`` for that.
"""

from __future__ import annotations

import contextlib
import io
import logging
import os
import shutil
import tempfile
import time
from pathlib import Path

from ..errors import ModelLoadError
from .base import EncoderSource, EncoderUnavailable, Variant, package_version
from .fingerprint import model_fingerprint
from .openvino_cpu import (
    OPENVINO,
    OpenVinoEncoder,
    compile_encoder,
    read_model,
    runtime,
    supported_precisions,
    version,
)

logger = logging.getLogger(__name__)

OPENVINO_INT8 = f"{OPENVINO}-int8"
QUANTIZATION_IMAGE = Path(__file__).with_name("quantization.jpg")
IR_NAME = "encoder.xml"


def _nncf():
    os.environ.setdefault("NNCF_CI", "1")  # nncf's own switch that keeps it from sending usage telemetry
    try:
        import nncf
    except ImportError as exc:
        raise EncoderUnavailable("the nncf package is not installed (pip install -r requirements-int8.txt); "
                                 "it makes the int8 copy") from exc
    except Exception as exc:  # a broken install
        raise EncoderUnavailable(f"the nncf package does not load ({type(exc).__name__}: {exc})") from exc
    return nncf


def int8_ir_path(source: EncoderSource) -> Path:
    """Where the int8 IR of ``source.encoder_path`` lives (keyed by its hash and the OpenVINO and NNCF versions)."""
    key = f"{model_fingerprint(source.encoder_path)[:16]}-openvino{version()}-nncf{package_version('nncf') or 'none'}"
    return source.cache_dir / "openvino-int8" / key / IR_NAME


def quantize(encoder: Path, out: Path) -> Path:
    """Write the int8 IR (``out`` + its ``.bin``) made from ``encoder``; the folder appears complete or not at all.

    Raises:
        EncoderUnavailable: nncf is missing.
        ModelLoadError: quantization failed or the folder is not writable.
    """
    nncf = _nncf()
    from nncf.quantization.advanced_parameters import AdvancedQuantizationParameters, AdvancedSmoothQuantParameters

    from ..image import load_image
    from ..preprocess import preprocess_image

    started = time.perf_counter()
    pixels, _ = preprocess_image(load_image(QUANTIZATION_IMAGE).rgb)
    try:
        out.parent.parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=".int8-", dir=out.parent.parent))
    except OSError as exc:
        raise ModelLoadError(f"Cannot write the OpenVINO int8 encoder under {out.parent.parent}: "
                             f"{exc.strerror or exc}. Point SAM_ONNX_CACHE_DIR at a writable folder.") from exc
    try:
        nncf.set_log_level(logging.ERROR)
        with contextlib.redirect_stdout(io.StringIO()):  # nncf's progress bars
            quantized = nncf.quantize(
                read_model(encoder), nncf.Dataset([pixels]), model_type=nncf.ModelType.TRANSFORMER, subset_size=1,
                advanced_parameters=AdvancedQuantizationParameters(
                    disable_bias_correction=True, smooth_quant_alphas=AdvancedSmoothQuantParameters(matmul=-1)))
        import openvino

        openvino.save_model(quantized, str(staging / IR_NAME), compress_to_fp16=False)
        try:
            staging.replace(out.parent)
        except OSError:
            if not out.is_file():  # else another process made it meanwhile: use theirs
                raise
    except Exception as exc:  # nncf and openvino raise many unrelated types
        raise ModelLoadError(f"Could not make the OpenVINO int8 encoder from {encoder}: "
                             f"{type(exc).__name__}: {str(exc).splitlines()[0][:200] if str(exc) else ''}") from exc
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    logger.info("made the OpenVINO int8 encoder %s in %.1f s", out, time.perf_counter() - started)
    return out


def load(source: EncoderSource) -> OpenVinoEncoder:
    """OpenVINO on the int8 IR, quantizing first if this machine has none yet."""
    precisions = supported_precisions()
    if not precisions:
        runtime()  # raises with the reason when openvino is missing
        raise EncoderUnavailable("OpenVINO offers no CPU device here")
    hint = precisions[0]  # for what stays floating point: bf16 where the CPU has it
    path = int8_ir_path(source)
    description = f"OpenVINO {version()} CPU int8 (NNCF, rest {hint})"
    if path.is_file():
        try:
            return compile_encoder(path, source, hint, name=OPENVINO_INT8, description=description)
        except ModelLoadError as exc:  # a damaged copy: make it again, once
            logger.warning("the cached OpenVINO int8 encoder %s is unusable (%s); quantizing again", path, exc)
            shutil.rmtree(path.parent, ignore_errors=True)
    quantize(Path(source.encoder_path), path)
    return compile_encoder(path, source, hint, name=OPENVINO_INT8, description=description)


VARIANTS = (Variant(OPENVINO_INT8, load),)
