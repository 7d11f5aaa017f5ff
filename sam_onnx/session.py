"""onnxruntime sessions: options, providers and the I/O contract. The only importer of onnxruntime
(besides ``encoders.ort_int8``, which needs its quantization tool).

I/O contract of onnx-community/sam2.1-hiera-small-ONNX (docs/model-io.md)::

    encoder  pixel_values         float32 [B, 3, 1024, 1024]   (float16 in the fp16 variant)
          -> image_embeddings.0   float32 [B, 32, 256, 256]
             image_embeddings.1   float32 [B, 64, 128, 128]
             image_embeddings.2   float32 [B, 256, 64, 64]
    decoder  input_points         float32 [B, P, N, 2]
             input_labels         int64   [B, P, N]
             input_boxes          float32 [B, M, 4]
             image_embeddings.0/1/2 (as above)
          -> iou_scores           float32 [B, Q, 3]
             pred_masks           float32 [B, Q, 3, 256, 256]   (logits)
             object_score_logits  float32 [B, Q, 1]

Sessions are built once and shared: ``InferenceSession.run`` is thread-safe.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnxruntime as ort

from . import abort
from .errors import Aborted, InferenceError, ModelLoadError

logger = logging.getLogger(__name__)

CPU_PROVIDER = "CPUExecutionProvider"

EMBEDDING_NAMES = ("image_embeddings.0", "image_embeddings.1", "image_embeddings.2")
EMBEDDING_CHW = ((32, 256, 256), (64, 128, 128), (256, 64, 64))

FLOAT_TYPES = ("tensor(float)", "tensor(float16)")


@dataclass(frozen=True)
class TensorSpec:
    """What a graph input or output must look like: name, allowed ONNX types, rank, fixed dims."""

    name: str
    types: tuple[str, ...]
    dims: tuple[int | None, ...]  # None = dynamic


ENCODER_INPUTS = (TensorSpec("pixel_values", FLOAT_TYPES, (None, 3, 1024, 1024)),)
ENCODER_OUTPUTS = tuple(TensorSpec(n, FLOAT_TYPES, (None, *chw)) for n, chw in zip(EMBEDDING_NAMES, EMBEDDING_CHW))
DECODER_INPUTS = (
    TensorSpec("input_points", ("tensor(float)",), (None, None, None, 2)),
    TensorSpec("input_labels", ("tensor(int64)",), (None, None, None)),
    TensorSpec("input_boxes", ("tensor(float)",), (None, None, 4)),
    *(TensorSpec(n, ("tensor(float)",), (None, *chw)) for n, chw in zip(EMBEDDING_NAMES, EMBEDDING_CHW)),
)
DECODER_OUTPUTS = (
    TensorSpec("iou_scores", ("tensor(float)",), (None, None, 3)),
    TensorSpec("pred_masks", ("tensor(float)",), (None, None, 3, 256, 256)),
    TensorSpec("object_score_logits", ("tensor(float)",), (None, None, 1)),
)
DECODER_OUTPUT_NAMES = tuple(s.name for s in DECODER_OUTPUTS)


def default_threads() -> int:
    """CPU cores this process may use (the intra-op thread count we use)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        return max(1, os.cpu_count() or 1)


def version() -> str:
    """The installed onnxruntime version, e.g. ``"1.32.0"``."""
    return ort.__version__


def available_providers() -> list[str]:
    return list(ort.get_available_providers())


def check_providers(requested: Sequence[str] | None) -> list[str]:
    """Validate a provider list; ``None`` means CPU only.

    Raises:
        ModelLoadError: a requested provider is not in this onnxruntime build.
            Nothing falls back silently.
    """
    providers = list(requested) if requested else [CPU_PROVIDER]
    available = available_providers()
    missing = [p for p in providers if p not in available]
    if missing:
        raise ModelLoadError(
            f"Execution provider {', '.join(missing)} is not available in this onnxruntime build "
            f"(available: {', '.join(available)}). Install the matching onnxruntime package "
            f"(e.g. onnxruntime-gpu for CUDAExecutionProvider) or choose one of the available providers.")
    return providers


def session_options(threads: int | None = None) -> ort.SessionOptions:
    """Options for a latency-sensitive service on a few cores.

    ``intra_op_num_threads`` = cores, one inter-op thread, and spinning off:
    spin-waiting threads made a lone decode 51 ms instead of 33 ms on 2 vCPUs
    and doubled it while an encode ran (measured on the stand-in, 2 vCPUs).
    """
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads or default_threads()
    opts.inter_op_num_threads = 1
    opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
    opts.add_session_config_entry("session.inter_op.allow_spinning", "0")
    opts.log_severity_level = 3  # errors only; we report what matters ourselves
    return opts


def _describe_load_failure(label: str, exc: Exception) -> str:
    text = str(exc)
    if "External data path does not exist" in text or "external data" in text.lower() and "exist" in text:
        return "its external-data file (.onnx_data) is missing next to it"
    if "file_length" in text or "GetExtDataFromTensorProto" in text:
        return "its external-data file (.onnx_data) is truncated or does not belong to it"
    if "Protobuf parsing failed" in text or "INVALID_PROTOBUF" in text:
        return "it is not a valid ONNX file (damaged, truncated, or e.g. an HTML error page)"
    if "No graph was found" in text:
        return "it is empty"
    if "NO_SUCHFILE" in text or "No such file" in text:
        return "it does not exist"
    return f"onnxruntime could not load it ({type(exc).__name__}: {text.splitlines()[0][:200]})"


def create_session(model: Path | bytes, *, label: str, providers: Sequence[str] | None = None,
                   threads: int | None = None) -> ort.InferenceSession:
    """Build one inference session and log the providers actually in use.

    Args:
        model: path of an ``.onnx`` file (external data is read from its folder)
            or the serialized model bytes.
        label: what the file is, for messages (e.g. ``"decoder /path/decoder.onnx"``).
        providers: execution providers in order of preference; ``None`` = CPU.
        threads: intra-op threads; ``None`` = all cores of this process.

    Raises:
        ModelLoadError: the file cannot be loaded, or a provider was requested
            but the session did not get it.
    """
    providers = check_providers(providers)
    try:
        source = str(model) if isinstance(model, Path) else model
        session = ort.InferenceSession(source, sess_options=session_options(threads), providers=providers)
    except Exception as exc:  # onnxruntime raises several unrelated types
        raise ModelLoadError(
            f"Could not load the {label}: {_describe_load_failure(label, exc)}. "
            "Delete the file so that it is downloaded again, or point --model-dir / SAM_ONNX_MODEL_DIR "
            "at a folder with intact files.") from exc
    in_use = session.get_providers()
    if in_use[0] != providers[0]:
        raise ModelLoadError(
            f"The {label} was asked to run on {providers[0]} but onnxruntime gave it {in_use[0]}; "
            "check the provider's installation (drivers, CUDA libraries) or choose CPUExecutionProvider.")
    logger.info("loaded %s on %s", label, ", ".join(in_use))
    return session


def check_contract(session: ort.InferenceSession, inputs: Sequence[TensorSpec],
                   outputs: Sequence[TensorSpec], *, label: str) -> None:
    """Raise :class:`ModelLoadError` unless the session's I/O matches the SAM 2.1 contract.

    Names must match exactly; types must be allowed; fixed dims must agree
    (dynamic dims in the file are accepted wherever we expect a fixed one).
    """
    problems = []
    for kind, specs, actual in (("input", inputs, session.get_inputs()), ("output", outputs, session.get_outputs())):
        by_name = {a.name: a for a in actual}
        for spec in specs:
            arg = by_name.get(spec.name)
            if arg is None:
                problems.append(f"missing {kind} '{spec.name}' (it has: {', '.join(by_name) or 'none'})")
                continue
            if arg.type not in spec.types:
                problems.append(f"{kind} '{spec.name}' has type {arg.type}, expected {' or '.join(spec.types)}")
            shape = list(arg.shape)
            if len(shape) != len(spec.dims):
                problems.append(f"{kind} '{spec.name}' has rank {len(shape)}, expected {len(spec.dims)}")
                continue
            for axis, (want, got) in enumerate(zip(spec.dims, shape)):
                if want is not None and isinstance(got, int) and got != want:
                    problems.append(f"{kind} '{spec.name}' has size {got} on axis {axis}, expected {want}")
    if problems:
        raise ModelLoadError(
            f"The {label} does not look like the SAM 2.1 file it should be: {'; '.join(problems)}. "
            "Check that the encoder and decoder files are not swapped and come from "
            "onnx-community/sam2.1-hiera-small-ONNX (or an export with the same inputs and outputs).")


def input_type(session: ort.InferenceSession, name: str) -> type[np.floating]:
    """numpy dtype of a float input (float16 for the fp16 encoder, else float32)."""
    for arg in session.get_inputs():
        if arg.name == name:
            return np.float16 if arg.type == "tensor(float16)" else np.float32
    raise KeyError(name)


def run(session: ort.InferenceSession, output_names: Sequence[str] | None,
        feeds: Mapping[str, np.ndarray], *, label: str) -> list[np.ndarray]:
    """``session.run`` with onnxruntime failures turned into :class:`InferenceError`.

    Under an :func:`sam_onnx.abort.scope`, the run gets its own ``RunOptions`` whose ``terminate`` flag the
    abort raises when it is set: onnxruntime then stops between two nodes and this raises
    :class:`~sam_onnx.errors.Aborted`.
    """
    names = list(output_names) if output_names else None
    stop = abort.current()
    try:
        if stop is None:
            return session.run(names, dict(feeds))
        options = ort.RunOptions()
        with stop.watching(lambda: setattr(options, "terminate", True)):
            return session.run(names, dict(feeds), options)
    except Aborted:
        raise
    except Exception as exc:
        if stop is not None and stop.is_set():
            logger.info("%s stopped on request", label)
            raise Aborted() from None
        logger.exception("%s failed", label)
        raise InferenceError(f"The {label} failed to run ({type(exc).__name__}); try again. "
                             "If it keeps failing, the model files may not match each other.") from exc
