"""The stateless predictor: encode an image once, decode any number of prompts.

``Sam2Predictor`` holds an image encoder (:class:`~sam_onnx.encoders.ImageEncoder`:
onnxruntime, OpenVINO or a remote deployment) and the decoder's onnxruntime
session, and nothing else that changes: per-image data lives in the :class:`~sam_onnx.types.ImageEmbedding`
value that :meth:`Sam2Predictor.encode` returns, so one predictor serves many
threads and users at once. It composes the pure steps (preprocess, prompts,
postprocess) and does no array maths of its own.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from . import encoders
from . import session as ort_session
from .encoders import auto
from .errors import InferenceError, InvalidImageError, InvalidPromptError, ModelLoadError
from .geometry import MODEL_SIDE, CropFrame, Geometry
from .graph_repair import RepairReport, load_repaired_decoder, verify_repair
from .hub import ModelFiles, resolve_model_files
from .image import as_rgb_uint8
from .models import DEFAULT_MODEL, ModelSpec
from .preprocess import preprocess_crop, preprocess_image
from .prompts import DEFAULT_MAX_BATCH, encode_prompts
from .types import ImageEmbedding, MaskResult, Prompts

logger = logging.getLogger(__name__)

_PROBE_SEED = 0
_PROBE_POINTS = np.array([[[[300.0, 400.0], [650.0, 210.0], [0.0, 0.0]]]], np.float32)
_PROBE_LABELS = np.array([[[1, 0, -1]]], np.int64)
_PROBE_OTHER = {"input_points": np.array([[[[100.0, 900.0]]]], np.float32),
                "input_labels": np.array([[[1]]], np.int64),
                "input_boxes": np.array([[[50.0, 600.0, 400.0, 1000.0]]], np.float32)}


@dataclass(frozen=True)
class ModelInfo:
    """What a predictor runs, for logs and the UI.

    Attributes:
        source: where the files came from (hub repo and revision, or a folder).
        encoder: the file the encoder engine runs (the int8 copy for ``int8``).
        decoder: decoder file path.
        providers: onnxruntime execution providers of the decoder (and of
            onnxruntime encoders), in priority order.
        encoder_dtype: ``"float32"`` or ``"float16"`` (the encoder's input type).
        repaired_concats: prompt Concat nodes repaired in the decoder (see
            :mod:`sam_onnx.graph_repair`).
        threads: intra-op threads per session.
        encoder_name: the encoder variant in use (``"fp32"``, ``"int8"``,
            ``"openvino-bf16"``, ...; see :mod:`sam_onnx.encoders`).
        encoder_description: the engine in one line, e.g. ``"OpenVINO 2026.4.1 CPU bf16"``.
        encoder_selection: how the variant was chosen (``"forced"``, or the
            ``auto`` check's summary).
    """

    source: str
    encoder: str
    decoder: str
    providers: tuple[str, ...]
    encoder_dtype: str
    repaired_concats: int
    threads: int
    encoder_name: str = encoders.FP32
    encoder_description: str = ""
    encoder_selection: str = "forced"

    def summary(self) -> dict[str, object]:
        """The JSON-ready facts a user or an API client may see (no file paths)."""
        return {"source": self.source, "providers": list(self.providers), "encoder_dtype": self.encoder_dtype,
                "threads": self.threads, "encoder": self.encoder_name,
                "encoder_description": self.encoder_description, "encoder_selection": self.encoder_selection}

    def describe(self) -> str:
        """One line for the log, e.g. "onnx-community/...@a7df49d8de14 on CPUExecutionProvider, 2 threads, ..."."""
        repaired = f", {self.repaired_concats} Concat node(s) repaired" if self.repaired_concats else ""
        return (f"{self.source} on {', '.join(self.providers)}, {self.threads} thread(s), "
                f"{self.encoder_name} encoder ({self.encoder_description}; {self.encoder_selection}){repaired}")


class Sam2Predictor:
    """SAM 2.1 image predictor: an image encoder and an onnxruntime decoder; stateless after construction.

    Typical use::

        predictor = Sam2Predictor.from_pretrained()        # downloads on first use
        embedding = predictor.encode(rgb)                  # ~2.5 s on 2 CPU cores (fp32)
        result = predictor.decode(embedding, Prompts((Point(410, 220),)))   # ~50 ms
        result.best_mask                                   # (H, W) bool, original size
    """

    __slots__ = ("_encoder", "_decoder", "_info", "_decision")

    def __init__(self, encoder, decoder_session, *, source: str = "sessions", encoder_path: str = "",
                 decoder_path: str = "", repaired_concats: int = 0, threads: int = 0,
                 decision: auto.Decision | None = None) -> None:
        """Wrap a ready encoder and decoder session (checked against the SAM 2.1 I/O contract).

        Prefer :meth:`from_pretrained` or :meth:`from_files`, which also repair
        and verify the decoder and build the encoder variant. Injecting is for
        tests and custom setups; the keyword arguments only describe the model
        in :attr:`info`.

        Args:
            encoder: an :class:`~sam_onnx.encoders.ImageEncoder`, or an
                onnxruntime encoder session (wrapped as ``fp32``, or ``fp16``
                for a float16 graph).
            decoder_session: the onnxruntime decoder session.
            decision: the ``auto`` check that chose ``encoder``, if any.

        Raises:
            ModelLoadError: a session's inputs or outputs are not SAM 2.1's.
        """
        if not isinstance(encoder, encoders.ImageEncoder):
            encoder = encoders.OrtEncoder(encoder, path=encoder_path)
        ort_session.check_contract(decoder_session, ort_session.DECODER_INPUTS, ort_session.DECODER_OUTPUTS,
                                   label=f"decoder {decoder_path}".strip())
        self._encoder = encoder
        self._decoder = decoder_session
        self._decision = decision
        self._info = ModelInfo(source, getattr(encoder, "path", "") or encoder_path, decoder_path,
                               tuple(decoder_session.get_providers()), getattr(encoder, "input_dtype", "float32"),
                               repaired_concats, threads, encoder.name, encoder.description,
                               decision.summary() if decision is not None else "forced")

    # ------------------------------------------------------------------ construction
    @classmethod
    def from_files(cls, encoder: str | os.PathLike, decoder: str | os.PathLike, *,
                   providers: Sequence[str] | None = None, threads: int | None = None,
                   source: str | None = None, variant: str = encoders.FP32,
                   fp16_encoder: str | os.PathLike | None = None,
                   encoder_cache_dir: str | os.PathLike | None = None,
                   image_encoder: encoders.ImageEncoder | None = None) -> Sam2Predictor:
        """Load an encoder and a decoder ``.onnx`` (external data beside them).

        The decoder is repaired against the onnxruntime Concat quirk in memory
        and then verified on the live session (plus a repeatability check).

        Args:
            encoder: the fp32 encoder file (any float32 or float16 encoder for ``fp32``).
            decoder: the decoder file.
            variant: the encoder engine (:mod:`sam_onnx.encoders`): ``"fp32"``
                (default here), ``"auto"``, ``"int8"``, ``"openvino"``,
                ``"openvino-bf16"``, ``"openvino-f32"`` or ``"fp16"``.
            fp16_encoder: the published float16 encoder file, if on this
                machine (needed for ``"fp16"``; an ``"auto"`` candidate).
            encoder_cache_dir: folder for derived files (int8 copy, OpenVINO
                blobs, ``auto`` decisions); default ``$SAM_ONNX_CACHE_DIR`` or
                ``~/.cache/sam_onnx``.
            image_encoder: a ready encoder to use instead of building ``variant``
                from ``encoder`` (e.g. a :class:`~sam_onnx.encoders.remote.RemoteEncoder`
                on a Ray Serve deployment); ``encoder`` is then only named in :attr:`info`.

        Raises:
            ModelLoadError: a file is missing, damaged or of the wrong kind, a
                provider is unavailable, or a forced variant cannot run here.
        """
        encoder, decoder = Path(encoder), Path(decoder)
        for path, what in ((encoder, "encoder"), (decoder, "decoder")):
            if not path.is_file():
                raise ModelLoadError(f"The {what} file {path} does not exist.")
        variant = encoders.requested_encoder(variant)
        threads = threads or ort_session.default_threads()
        started = time.perf_counter()
        decoder_bytes, report = load_repaired_decoder(decoder)
        dec = ort_session.create_session(decoder_bytes, label=f"decoder {decoder}", providers=providers,
                                         threads=threads)
        ort_session.check_contract(dec, ort_session.DECODER_INPUTS, ort_session.DECODER_OUTPUTS,
                                   label=f"decoder {decoder}")
        _verify_decoder(dec, report)
        enc_source = encoders.EncoderSource(
            encoder, Path(encoder_cache_dir).expanduser() if encoder_cache_dir else encoders.default_cache_dir(),
            threads, tuple(providers) if providers else None, Path(fp16_encoder) if fp16_encoder else None)
        decision = None
        if image_encoder is not None:
            logger.info("encoder: %s", image_encoder.description)
        elif variant == encoders.AUTO:
            image_encoder, decision = auto.choose(
                enc_source, lambda embedding, objects: _decode_many(dec, embedding, objects), decoder=decoder)
        else:
            try:
                image_encoder = encoders.load_encoder(variant, enc_source)
            except encoders.EncoderUnavailable as exc:
                raise ModelLoadError(f"The {variant} encoder cannot run here: {exc}. "
                                     "Use --encoder auto or fp32.") from exc
        predictor = cls(image_encoder, dec, source=source or str(encoder.parent), encoder_path=str(encoder),
                        decoder_path=str(decoder), repaired_concats=len(report.repaired), threads=threads,
                        decision=decision)
        logger.info("model ready in %.2f s: %s", time.perf_counter() - started, predictor.info.describe())
        return predictor

    @classmethod
    def from_model_files(cls, files: ModelFiles, **kwargs) -> Sam2Predictor:
        """:meth:`from_files` for a :class:`~sam_onnx.hub.ModelFiles`."""
        return cls.from_files(files.encoder, files.decoder, source=files.source, **kwargs)

    @classmethod
    def from_pretrained(cls, spec: ModelSpec = DEFAULT_MODEL, *, model_dir: str | os.PathLike | None = None,
                        fp16_encoder: bool = False, cache_dir: str | os.PathLike | None = None,
                        local_files_only: bool = False, providers: Sequence[str] | None = None,
                        threads: int | None = None, encoder: str | None = None,
                        encoder_cache_dir: str | os.PathLike | None = None,
                        image_encoder: encoders.ImageEncoder | None = None) -> Sam2Predictor:
        """The pinned hub model (downloaded once into the huggingface_hub cache), or a local folder.

        Args:
            spec: model table entry (revision pinned there).
            model_dir: a local folder with the ONNX files; default
                ``$SAM_ONNX_MODEL_DIR``; when set, nothing is downloaded.
            fp16_encoder: same as ``encoder="fp16"`` (half the download).
            cache_dir: huggingface_hub cache folder (default: its standard cache).
            local_files_only: never download (also implied by ``HF_HUB_OFFLINE=1``).
            providers: onnxruntime execution providers, e.g.
                ``["CUDAExecutionProvider", "CPUExecutionProvider"]``; default CPU.
            threads: intra-op threads per session; default all cores.
            encoder: the encoder variant (see :mod:`sam_onnx.encoders`); default
                ``$SAM_ONNX_ENCODER``, else ``"auto"``: at the first start the
                variants this machine runs are checked against fp32 (about a
                minute of work on 2 cores with the stand-in, measured), later
                starts reuse the decision.
            encoder_cache_dir: folder for the int8 copy, OpenVINO blobs and
                ``auto`` decisions; default ``$SAM_ONNX_CACHE_DIR`` or ``~/.cache/sam_onnx``.
            image_encoder: a ready encoder (e.g. a Ray Serve deployment's client,
                :class:`~sam_onnx.encoders.remote.RemoteEncoder`) instead of a local one.
        """
        variant = encoders.requested_encoder("fp16" if fp16_encoder else encoder)
        kwargs = {"spec": spec, "cache_dir": cache_dir, "local_files_only": local_files_only}
        if variant == "fp16":  # the half-precision file alone: no fp32 download
            files = resolve_model_files(model_dir, fp16_encoder=True, **kwargs)
            fp16_path: Path | None = files.encoder
        else:
            files = resolve_model_files(model_dir, **kwargs)
            fp16_path = _fp16_if_present(model_dir, **kwargs) if variant == encoders.AUTO else None
        return cls.from_model_files(files, providers=providers, threads=threads, variant=variant,
                                    fp16_encoder=fp16_path, encoder_cache_dir=encoder_cache_dir,
                                    image_encoder=image_encoder)

    @property
    def encoder(self) -> encoders.ImageEncoder:
        """The image encoder in use (:class:`~sam_onnx.encoders.ImageEncoder`)."""
        return self._encoder

    @property
    def decision(self) -> auto.Decision | None:
        """The ``auto`` check behind the encoder in use (``None`` when the variant was forced)."""
        return self._decision

    # ------------------------------------------------------------------ inference
    @property
    def info(self) -> ModelInfo:
        return self._info

    def encode(self, image: np.ndarray | Image.Image) -> ImageEmbedding:
        """Run the image encoder once for an image.

        Args:
            image: upright RGB ``(H, W, 3)`` uint8 in original pixels. Other
                arrays (grey, RGBA, 16-bit, float) and PIL images are converted
                by :func:`sam_onnx.image.to_rgb_uint8` (alpha on white).

        Returns:
            An immutable :class:`ImageEmbedding` (about 17 MB).

        Raises:
            InvalidImageError: the input is not an image.
            InferenceError: the encoder engine failed.
        """
        return self.encode_pixels(*preprocess_image(as_rgb_uint8(image)))

    def encode_crop(self, image: np.ndarray | Image.Image, crop: CropFrame) -> ImageEmbedding:
        """Run the image encoder on a crop of an image (one more encoder run), to refine an object there.

        Prompts decoded on the result stay in the whole image's original pixels
        (they are reduced to the crop, :func:`sam_onnx.prompts.prompts_for_crop`), and
        its masks are of the whole image's size, empty outside the crop. Choose
        the crop with :func:`sam_onnx.refine.crop_for`.

        Args:
            image: the whole upright image, as for :meth:`encode`.
            crop: a :class:`~sam_onnx.geometry.CropFrame` of an image of that size.

        Raises:
            InvalidImageError: the input is not an image.
            ValueError: the crop is of an image of another size.
            InferenceError: the encoder engine failed.
        """
        return self.encode_pixels(*preprocess_crop(as_rgb_uint8(image), crop))

    def encode_pixels(self, pixel_values: np.ndarray, geometry: Geometry) -> ImageEmbedding:
        """Run the encoder on input already made by :func:`sam_onnx.preprocess.preprocess_image`.

        For callers that preprocess themselves, e.g. beside other work on another
        core. ``encode(image)`` is ``encode_pixels(*preprocess_image(image))``.

        Args:
            pixel_values: ``(1, 3, 1024, 1024)`` float32, model frame, normalised.
            geometry: the original image's geometry from the same call (with the crop, for a crop).
        """
        if pixel_values.shape != (1, 3, MODEL_SIDE, MODEL_SIDE):
            raise InvalidImageError(f"expected pixel values of shape (1, 3, {MODEL_SIDE}, {MODEL_SIDE}), "
                                    f"got {pixel_values.shape}")
        started = time.perf_counter()
        outputs = self._encoder.encode(pixel_values)
        logger.debug("encode %s: %s encoder %.0f ms", geometry.original_hw, self._encoder.name,
                     (time.perf_counter() - started) * 1e3)
        return ImageEmbedding(outputs, geometry)

    def decode(self, embedding: ImageEmbedding, prompts: Prompts) -> MaskResult:
        """Masks for one object.

        Args:
            embedding: from :meth:`encode`.
            prompts: the object's points and/or box, in original pixels.

        Returns:
            A :class:`MaskResult`: 3 candidates, their IoU scores, the best
            index, the low-res logits and the object score.

        Raises:
            InvalidPromptError: empty prompts, or a prompt outside the image.
        """
        return self.decode_many(embedding, (prompts,))[0]

    def decode_many(self, embedding: ImageEmbedding, objects: Sequence[Prompts], *,
                    max_batch: int = DEFAULT_MAX_BATCH) -> tuple[MaskResult, ...]:
        """Masks for several objects, batched into as few decoder calls as the graph allows.

        Objects with the same layout (points only / box only / box + points)
        and the same number of points share a call (up to ``max_batch``).

        Returns:
            One :class:`MaskResult` per object, in the order given.
        """
        return _decode_many(self._decoder, embedding, objects, max_batch=max_batch)


def _decode_many(decoder, embedding: ImageEmbedding, objects: Sequence[Prompts], *,
                 max_batch: int = DEFAULT_MAX_BATCH) -> tuple[MaskResult, ...]:
    """:meth:`Sam2Predictor.decode_many` on a decoder session (also used by the ``auto`` check)."""
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
    return tuple(results)


def _fp16_if_present(model_dir, **kwargs) -> Path | None:
    """The fp16 encoder if it is already on this machine (never downloads it for ``auto``)."""
    try:
        return resolve_model_files(model_dir, fp16_encoder=True, **{**kwargs, "local_files_only": True}).encoder
    except ModelLoadError:
        return None


def _verify_decoder(decoder, report: RepairReport) -> None:
    """Check on the live decoder session that points-only prompts are exact and repeatable.

    1. Every repaired Concat ignores the empty box input (shape witnesses).
    2. A points-only prompt gives bit-identical outputs before and after an
       unrelated prompt has dirtied onnxruntime's buffers (the quirk's symptom).
    """
    rng = np.random.default_rng(_PROBE_SEED)
    features = {name: rng.standard_normal((1, *chw), dtype=np.float32)
                for name, chw in zip(ort_session.EMBEDDING_NAMES, ort_session.EMBEDDING_CHW)}
    points_only = {"input_points": _PROBE_POINTS, "input_labels": _PROBE_LABELS,
                   "input_boxes": np.zeros((1, 0, 4), np.float32), **features}
    verify_repair(decoder, report, points_only)
    names = list(ort_session.DECODER_OUTPUT_NAMES)
    first = decoder.run(names, points_only)
    decoder.run(names, {**_PROBE_OTHER, **features})
    second = decoder.run(names, points_only)
    for name, a, b in zip(names, first, second):
        if not (np.isfinite(a).all() and np.array_equal(a, b)):
            raise ModelLoadError(
                f"The decoder gives non-repeatable '{name}' for a points-only prompt (onnxruntime Concat quirk "
                "on empty input_boxes) and the graph could not be repaired automatically. "
                "Re-export the decoder so that empty prompt parts are reshaped before the Concat.")
