"""OpenVINO's CPU runtime on the fp32 encoder file, in bf16 (where the CPU has it) or f32.

OpenVINO reads the ONNX file directly, fixes the input to (1, 3, 1024, 1024)
and compiles it for this CPU; ``INFERENCE_PRECISION_HINT`` bf16 runs the
matrix products in bfloat16 on AVX512_BF16 or AMX (2026.4 picks bf16 by
default on such CPUs, so it is asked for explicitly either way). Compiled
blobs are kept under ``<cache_dir>/openvino/<model hash>`` (one folder per model file, so the
sizes never share blobs) and later starts skip most of the compilation.

This uses the ``openvino`` runtime package, not the onnxruntime plugin
``onnxruntime-ep-openvino``: the plugin (1.8.1) offers its execution provider
only for Intel devices (it skips hardware whose vendor id is not Intel's), so
on AMD CPUs it cannot run at all, while the runtime runs on both. The package
is optional: without it these variants are skipped with that reason.
"""

from __future__ import annotations

import logging
import threading
import time
from pathlib import Path

import numpy as np

from ..errors import InferenceError, ModelLoadError
from .base import PIXEL_SHAPE, EncoderSource, EncoderUnavailable, Variant, check_embeddings
from .fingerprint import model_fingerprint

logger = logging.getLogger(__name__)

OPENVINO = "openvino"
"""``--encoder openvino``: bf16 where the CPU supports it, else f32."""
PRECISIONS = {"bf16": "BF16", "f32": "FP32"}
"""Precision hint -> the CPU capability OpenVINO lists for it, best first."""
DEVICE = "CPU"
INPUT_NAME = "pixel_values"
OUTPUT_NAMES = ("image_embeddings.0", "image_embeddings.1", "image_embeddings.2")


def runtime():
    """The ``openvino`` module, or :class:`EncoderUnavailable` saying why it cannot be used."""
    try:
        import openvino
    except ImportError as exc:
        raise EncoderUnavailable("the openvino package is not installed (pip install openvino)") from exc
    except Exception as exc:  # a broken install: missing shared libraries, wrong platform
        raise EncoderUnavailable(f"the openvino package does not load ({type(exc).__name__}: {exc})") from exc
    return openvino


def supported_precisions() -> tuple[str, ...]:
    """The precisions OpenVINO can run on this CPU, best first (empty without openvino)."""
    try:
        capabilities = runtime().Core().get_property(DEVICE, "OPTIMIZATION_CAPABILITIES")
    except Exception:  # noqa: BLE001 - no openvino, or no CPU device: nothing supported
        return ()
    return tuple(hint for hint, capability in PRECISIONS.items() if capability in capabilities)


def default_variant() -> str:
    """What ``--encoder openvino`` means here: ``openvino-bf16`` where the CPU has bf16, else ``openvino-f32``."""
    return f"{OPENVINO}-{'bf16' if 'bf16' in supported_precisions() else 'f32'}"


class OpenVinoEncoder:
    """A compiled OpenVINO model behind the :class:`~sam_onnx.encoders.ImageEncoder` seam.

    One infer request serves every call; a lock serialises them (an encode
    uses all the threads it was given anyway).
    """

    __slots__ = ("name", "description", "path", "_request", "_outputs", "_lock")

    def __init__(self, compiled, *, name: str, description: str, path: str) -> None:
        self.name = name
        self.description = description
        self.path = path
        self._request = compiled.create_infer_request()
        self._outputs = [compiled.output(n) for n in OUTPUT_NAMES]
        self._lock = threading.Lock()

    input_dtype = "float32"

    def encode(self, pixel_values: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        pixels = np.ascontiguousarray(pixel_values, dtype=np.float32)
        try:
            with self._lock:
                result = self._request.infer({INPUT_NAME: pixels})
                outputs = [np.array(result[o], dtype=np.float32, copy=True) for o in self._outputs]
        except Exception as exc:  # openvino raises RuntimeError and its own types
            logger.exception("%s failed", self.name)
            raise InferenceError(f"The {self.name} image encoder failed to run ({type(exc).__name__}); "
                                 "try again, or start with --encoder fp32.") from exc
        return check_embeddings(outputs, label=f"{self.name} image encoder")

    def __repr__(self) -> str:
        return f"OpenVinoEncoder({self.name!r}, {self.description!r})"


def load(source: EncoderSource, precision: str) -> OpenVinoEncoder:
    """Compile ``source.encoder_path`` for this CPU at ``precision`` (``"bf16"`` or ``"f32"``).

    Raises:
        EncoderUnavailable: no openvino package, no CPU device, or the CPU lacks ``precision``.
        ModelLoadError: OpenVINO cannot read or compile the file.
    """
    if precision not in supported_precisions():
        runtime()  # no openvino at all: say that
        raise EncoderUnavailable(f"this CPU has no {precision} support in OpenVINO "
                                 f"(it offers: {', '.join(supported_precisions()) or 'nothing'})")
    return compile_encoder(Path(source.encoder_path), source, precision, name=f"{OPENVINO}-{precision}")


def read_model(path: Path):
    """The encoder as an OpenVINO model with its input fixed to (1, 3, 1024, 1024)."""
    model = runtime().Core().read_model(str(path))
    model.reshape({INPUT_NAME: list(PIXEL_SHAPE)})
    return model


def compile_encoder(path: Path, source: EncoderSource, precision: str, *, name: str,
                    description: str = "") -> OpenVinoEncoder:
    """Compile an encoder file (ONNX, or OpenVINO IR ``.xml``) for this CPU with ``precision`` as the hint.

    Raises:
        ModelLoadError: OpenVINO cannot read or compile it, or its outputs are not SAM 2.1's.
    """
    ov = runtime()
    started = time.perf_counter()
    cache = blob_cache_dir(source, path)
    try:
        cache.mkdir(parents=True, exist_ok=True)
        compiled = ov.Core().compile_model(read_model(path), DEVICE, {
            "INFERENCE_PRECISION_HINT": precision,
            "INFERENCE_NUM_THREADS": int(source.threads),
            "PERFORMANCE_HINT": "LATENCY",
            "NUM_STREAMS": 1,
            "ENABLE_CPU_PINNING": False,  # shared machines: pinned threads wait for busy cores
            "CACHE_DIR": str(cache),
        })
        found = {tensor_name for output in compiled.outputs for tensor_name in output.get_names()}
        missing = [n for n in OUTPUT_NAMES if n not in found]
        if missing:
            raise ModelLoadError(f"the file has no output {', '.join(missing)}")
    except ModelLoadError as exc:
        raise ModelLoadError(f"OpenVINO cannot use the encoder {path}: {exc}") from exc
    except Exception as exc:
        raise ModelLoadError(f"OpenVINO could not compile the encoder {path} "
                             f"({type(exc).__name__}: {str(exc).splitlines()[0][:200] if str(exc) else ''})") from exc
    logger.info("compiled the %s encoder in %.1f s", name, time.perf_counter() - started)
    return OpenVinoEncoder(compiled, name=name, path=str(path),
                           description=description or f"OpenVINO {version()} CPU {precision}")


def blob_cache_dir(source: EncoderSource, path: Path) -> Path:
    """Where OpenVINO keeps the compiled blobs of the encoder file ``path``: one folder per model (its
    fingerprint, shared with the int8 copies' and ``auto``'s keys), so two sizes never share one."""
    return source.cache_dir / "openvino" / model_fingerprint(path)[:16]


def version() -> str:
    """The installed OpenVINO version, e.g. ``"2026.4.1"``."""
    return runtime().get_version().split("-")[0]


def _load_bf16(source: EncoderSource) -> OpenVinoEncoder:
    return load(source, "bf16")


def _load_f32(source: EncoderSource) -> OpenVinoEncoder:
    return load(source, "f32")


VARIANTS = (Variant(f"{OPENVINO}-bf16", _load_bf16), Variant(f"{OPENVINO}-f32", _load_f32))
