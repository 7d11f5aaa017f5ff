"""The mask decoder: load it (repaired and verified) and run it on an image embedding.

The decoder is the small half of SAM 2.1 (20 MB, ~30-50 ms a call on 2 cores).
:func:`load_decoder` reads the file, repairs the onnxruntime Concat quirk in
memory (:mod:`sam_onnx.graph_repair`), builds the session, checks its I/O
against the SAM 2.1 contract and proves on the live session that points-only
prompts are exact and repeatable. :func:`decode_many` turns prompts in original
pixels into masks: prompts -> model frame (:mod:`sam_onnx.prompts`) -> decoder
-> :class:`~sam_onnx.types.MaskResult` (whose masks are upsampled lazily).

The predictor composes this with an image encoder (:mod:`sam_onnx.encoders`);
``--encoder auto`` uses :func:`decode_many` to compare the candidates' masks.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from . import session as ort_session
from .errors import InferenceError, InvalidPromptError, ModelLoadError
from .graph_repair import RepairReport, load_repaired_decoder, verify_repair
from .prompts import DEFAULT_MAX_BATCH, encode_prompts
from .types import ImageEmbedding, MaskResult, Prompts

PROBE_SEED = 0
"""Seed of the random embeddings :func:`verify_decoder` decodes (any embedding shows the quirk)."""
PROBE_POINTS = np.array([[[[300.0, 400.0], [650.0, 210.0], [0.0, 0.0]]]], np.float32)
"""A points-only prompt in the model frame: a positive, a negative and a padding point."""
PROBE_LABELS = np.array([[[1, 0, -1]]], np.int64)
PROBE_OTHER = {"input_points": np.array([[[[100.0, 900.0]]]], np.float32),
               "input_labels": np.array([[[1]]], np.int64),
               "input_boxes": np.array([[[50.0, 600.0, 400.0, 1000.0]]], np.float32)}
"""An unrelated box + point prompt, run between two points-only runs to dirty onnxruntime's buffers."""


def load_decoder(path: str | Path, *, providers: Sequence[str] | None = None,
                 threads: int | None = None):
    """Read, repair, load and verify a decoder ``.onnx`` (external data beside it).

    Args:
        path: the decoder file.
        providers: onnxruntime execution providers in priority order; ``None`` = CPU.
        threads: intra-op threads; ``None`` = all cores of this process.

    Returns:
        ``(session, report)``: the onnxruntime session, ready and verified, and
        the :class:`~sam_onnx.graph_repair.RepairReport` (which Concat nodes were repaired).

    Raises:
        ModelLoadError: the file is missing, damaged or not SAM 2.1's decoder,
            a provider is unavailable, or the quirk could not be repaired.
    """
    path = Path(path)
    if not path.is_file():
        raise ModelLoadError(f"The decoder file {path} does not exist.")
    decoder_bytes, report = load_repaired_decoder(path)
    decoder = ort_session.create_session(decoder_bytes, label=f"decoder {path}", providers=providers,
                                         threads=threads)
    ort_session.check_contract(decoder, ort_session.DECODER_INPUTS, ort_session.DECODER_OUTPUTS,
                               label=f"decoder {path}")
    verify_decoder(decoder, report)
    return decoder, report


def decode_many(decoder, embedding: ImageEmbedding, objects: Sequence[Prompts], *,
                max_batch: int = DEFAULT_MAX_BATCH) -> tuple[MaskResult, ...]:
    """Masks for several objects, batched into as few decoder calls as the graph allows.

    Objects with the same layout (points only / box only / box + points) and
    the same number of points share a call (up to ``max_batch``).

    Args:
        decoder: an onnxruntime decoder session from :func:`load_decoder`.
        embedding: the image's :class:`~sam_onnx.types.ImageEmbedding`.
        objects: one :class:`~sam_onnx.types.Prompts` per object, in original pixels.

    Returns:
        One :class:`MaskResult` per object, in the order given.

    Raises:
        InvalidPromptError: not an embedding, empty prompts, or a prompt outside the image.
        InferenceError: the decoder failed or returned non-finite values.
    """
    if not isinstance(embedding, ImageEmbedding):
        raise InvalidPromptError(f"expected an ImageEmbedding from encode(), got {type(embedding).__name__}")
    if isinstance(objects, Prompts):
        objects = (objects,)
    if not objects:
        return ()
    geometry = embedding.geometry
    features = dict(zip(ort_session.EMBEDDING_NAMES, embedding.features))
    results: list[MaskResult | None] = [None] * len(objects)
    for batch in encode_prompts(objects, geometry, max_batch=max_batch):
        iou, logits, obj = ort_session.run(decoder, ort_session.DECODER_OUTPUT_NAMES,
                                           {**batch.feeds, **features}, label="mask decoder")
        if not (np.isfinite(iou).all() and np.isfinite(logits).all()):
            raise InferenceError("The mask decoder returned non-finite values; the model files may be damaged.")
        for q, index in enumerate(batch.object_indices):
            results[index] = MaskResult(logits[0, q], iou[0, q], float(obj[0, q, 0]), geometry)
    return tuple(results)  # type: ignore[arg-type]


def verify_decoder(decoder, report: RepairReport) -> None:
    """Check on the live decoder session that points-only prompts are exact and repeatable.

    1. Every repaired Concat ignores the empty box input (shape witnesses).
    2. A points-only prompt gives bit-identical outputs before and after an
       unrelated prompt has dirtied onnxruntime's buffers (the quirk's symptom).

    Raises:
        ModelLoadError: either check fails (the message says how to re-export).
    """
    rng = np.random.default_rng(PROBE_SEED)
    features = {name: rng.standard_normal((1, *chw), dtype=np.float32)
                for name, chw in zip(ort_session.EMBEDDING_NAMES, ort_session.EMBEDDING_CHW)}
    points_only = {"input_points": PROBE_POINTS, "input_labels": PROBE_LABELS,
                   "input_boxes": np.zeros((1, 0, 4), np.float32), **features}
    verify_repair(decoder, report, points_only)
    names = list(ort_session.DECODER_OUTPUT_NAMES)
    first = decoder.run(names, points_only)
    decoder.run(names, {**PROBE_OTHER, **features})
    second = decoder.run(names, points_only)
    for name, a, b in zip(names, first, second):
        if not (np.isfinite(a).all() and np.array_equal(a, b)):
            raise ModelLoadError(
                f"The decoder gives non-repeatable '{name}' for a points-only prompt (onnxruntime Concat quirk "
                "on empty input_boxes) and the graph could not be repaired automatically. "
                "Re-export the decoder so that empty prompt parts are reshaped before the Concat.")
