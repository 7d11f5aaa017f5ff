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
from pathlib import Path

import numpy as np
from PIL import Image

from . import decoder as mask_decoder
from . import encoders
from . import session as ort_session
from .abort import Abort, scope as abort_scope
from .encoders import auto, pretrained
from .errors import InvalidImageError, ModelLoadError
from .geometry import MODEL_SIDE, CropFrame, Geometry
from .hub import ModelFiles
from .image import as_rgb_uint8
from .models import ModelSpec, requested_model
from .preprocess import preprocess_crop, preprocess_image
from .prompts import DEFAULT_MAX_BATCH
from .types import ImageEmbedding, MaskResult, ModelInfo, Prompts

logger = logging.getLogger(__name__)


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
                 decision: auto.Decision | None = None, model: str = "") -> None:
        """Wrap a ready encoder and decoder session (checked against the SAM 2.1 I/O contract).

        Prefer :meth:`from_pretrained` or :meth:`from_files`, which also repair and verify the decoder and
        build the encoder variant; the keyword arguments here only describe the model in :attr:`info`.

        Args:
            encoder: an :class:`~sam_onnx.encoders.ImageEncoder`, or an onnxruntime encoder session (wrapped
                as ``fp32``, or ``fp16`` for a float16 graph).
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
                               decision.summary() if decision is not None else "forced", model)

    # ------------------------------------------------------------------ construction
    @classmethod
    def from_files(cls, encoder_path: str | os.PathLike, decoder_path: str | os.PathLike, *,
                   providers: Sequence[str] | None = None, threads: int | None = None,
                   source: str | None = None, variant: str = encoders.FP32,
                   fp16_encoder_path: str | os.PathLike | None = None,
                   encoder_cache_dir: str | os.PathLike | None = None,
                   image_encoder: encoders.ImageEncoder | None = None, model: str = "",
                   check_later: bool = False) -> Sam2Predictor:
        """Load an encoder and a decoder ``.onnx`` (external data beside them); ``model`` names them in :attr:`info`.

        The decoder is repaired against the onnxruntime Concat quirk in memory
        and verified on the live session (:func:`sam_onnx.decoder.load_decoder`);
        the encoder variant is built by :func:`sam_onnx.encoders.pretrained.load_image_encoder`.

        Args:
            encoder_path: the fp32 encoder file (any float32 or float16 encoder for ``fp32``).
            decoder_path: the decoder file.
            variant: the encoder engine (:mod:`sam_onnx.encoders`); ``"fp32"`` by default here.
            fp16_encoder_path, encoder_cache_dir: as ``fp16_encoder_path`` and ``cache_dir`` of
                :func:`~sam_onnx.encoders.pretrained.load_image_encoder`.
            image_encoder: a ready encoder to use instead of building ``variant`` (e.g. a
                :class:`~sam_onnx.encoders.remote.RemoteEncoder`); ``encoder_path`` is then only named in :attr:`info`.
            check_later: ``auto`` without a stored decision starts on fp32 and leaves its check in
                ``decision.pending`` (for a server, :mod:`sam_demo.encoder_check`); else it checks now.

        Raises:
            ModelLoadError: a file is missing, damaged or of the wrong kind, a
                provider is unavailable, or a forced variant cannot run here.
        """
        encoder_path, decoder_path = Path(encoder_path), Path(decoder_path)
        if not encoder_path.is_file():
            raise ModelLoadError(f"The encoder file {encoder_path} does not exist.")
        variant = encoders.requested_encoder(variant)
        threads = threads or ort_session.default_threads()
        started = time.perf_counter()
        decoder, report = mask_decoder.load_decoder(decoder_path, providers=providers, threads=threads)
        decision = None
        if image_encoder is not None:
            logger.info("encoder: %s", image_encoder.description)
        else:
            image_encoder, decision = pretrained.load_image_encoder(
                variant, encoder_path, fp16_encoder_path=fp16_encoder_path, providers=providers, threads=threads,
                cache_dir=encoder_cache_dir, decoder_path=decoder_path, check_later=check_later,
                decode_many=lambda embedding, objects: mask_decoder.decode_many(decoder, embedding, objects))
        predictor = cls(image_encoder, decoder, source=source or str(encoder_path.parent),
                        encoder_path=str(encoder_path), decoder_path=str(decoder_path),
                        repaired_concats=len(report.repaired), threads=threads, decision=decision, model=model)
        logger.info("model ready in %.2f s: %s", time.perf_counter() - started, predictor.info.describe())
        return predictor

    @classmethod
    def from_model_files(cls, files: ModelFiles, **kwargs) -> Sam2Predictor:
        """:meth:`from_files` for a :class:`~sam_onnx.hub.ModelFiles`."""
        return cls.from_files(files.encoder_path, files.decoder_path, source=files.source, model=files.model, **kwargs)

    @classmethod
    def from_pretrained(cls, spec: ModelSpec | None = None, *, model: str | None = None,
                        model_dir: str | os.PathLike | None = None,
                        fp16_encoder: bool = False, cache_dir: str | os.PathLike | None = None,
                        local_files_only: bool = False, providers: Sequence[str] | None = None,
                        threads: int | None = None, variant: str | None = None,
                        encoder_cache_dir: str | os.PathLike | None = None,
                        image_encoder: encoders.ImageEncoder | None = None, check_later: bool = False) -> Sam2Predictor:
        """A pinned hub model (downloaded once into the huggingface_hub cache), or a local folder.

        The arguments are :func:`sam_onnx.encoders.from_pretrained`'s (``model`` a size, ``"tiny"``,
        ``"small"``, ``"base-plus"``, ``"large"``, default ``$SAM_ONNX_MODEL``, else small; ``model_dir`` default
        ``$SAM_ONNX_MODEL_DIR``; ``variant`` default ``$SAM_ONNX_ENCODER``, else ``"auto"``, whose first
        start checks the variants against fp32, about half a minute on 2 cores with the stand-in), plus
        ``fp16_encoder`` (same as ``variant="fp16"``, half the download), and ``image_encoder`` and
        ``check_later`` as for :meth:`from_files`.
        """
        variant = encoders.requested_encoder(encoders.FP16 if fp16_encoder else variant)
        files, fp16_path = pretrained.pretrained_files(spec or requested_model(model), model_dir=model_dir,
                                                       variant=variant, cache_dir=cache_dir,
                                                       local_files_only=local_files_only)
        return cls.from_model_files(files, providers=providers, threads=threads, variant=variant,
                                    fp16_encoder_path=fp16_path, encoder_cache_dir=encoder_cache_dir,
                                    image_encoder=image_encoder, check_later=check_later)

    def with_encoder(self, encoder: encoders.ImageEncoder, decision: auto.Decision | None) -> Sam2Predictor:
        """This predictor with another image encoder (same decoder), e.g. after ``auto``'s check ran later."""
        i = self._info
        return type(self)(encoder, self._decoder, source=i.source, encoder_path=i.encoder_path,
                          decoder_path=i.decoder_path, repaired_concats=i.repaired_concats, threads=i.threads,
                          decision=decision, model=i.model)

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

    def encode(self, image: np.ndarray | Image.Image, *, abort: Abort | None = None) -> ImageEmbedding:
        """Run the image encoder once for an image: an immutable :class:`ImageEmbedding` (about 17 MB).

        Args:
            image: upright RGB ``(H, W, 3)`` uint8 in original pixels. Other arrays (grey, RGBA, 16-bit,
                float) and PIL images are converted by :func:`sam_onnx.image.to_rgb_uint8` (alpha on white).
            abort: stops the run from another thread (see :meth:`encode_pixels`; raises ``Aborted``).

        Raises:
            InvalidImageError: the input is not an image.
            InferenceError: the encoder engine failed.
        """
        return self.encode_pixels(*preprocess_image(as_rgb_uint8(image)), abort=abort)

    def encode_crop(self, image: np.ndarray | Image.Image, crop: CropFrame) -> ImageEmbedding:
        """Run the image encoder on a crop of an image (one more encoder run), to refine an object there.

        Prompts decoded on the result stay in the whole image's original pixels (they are reduced to the crop,
        :func:`sam_onnx.prompts.prompts_for_crop`), and its masks are of the whole image's size, empty outside
        the crop. Choose the crop with :func:`sam_onnx.refine.crop_for`.

        Args:
            image: the whole upright image, as for :meth:`encode`.
            crop: a :class:`~sam_onnx.geometry.CropFrame` of an image of that size.

        Raises:
            InvalidImageError: the input is not an image.
            ValueError: the crop is of an image of another size.
            InferenceError: the encoder engine failed.
        """
        return self.encode_pixels(*preprocess_crop(as_rgb_uint8(image), crop))

    def encode_pixels(self, pixel_values: np.ndarray, geometry: Geometry, *,
                      abort: Abort | None = None) -> ImageEmbedding:
        """Run the encoder on input made by :func:`sam_onnx.preprocess.preprocess_image` (for callers that
        preprocess themselves): ``encode(image)`` is ``encode_pixels(*preprocess_image(image))``.

        Args:
            pixel_values: ``(1, 3, 1024, 1024)`` float32, model frame, normalised.
            geometry: the original image's geometry from the same call (with the crop, for a crop).
            abort: when another thread sets it, the run stops at its next safe point (onnxruntime: between
                two nodes, :mod:`sam_onnx.abort`) and raises :class:`~sam_onnx.errors.Aborted`.

        Raises:
            InferenceError: the encoder engine failed.
        """
        if pixel_values.shape != (1, 3, MODEL_SIDE, MODEL_SIDE):
            raise InvalidImageError(f"expected pixel values of shape (1, 3, {MODEL_SIDE}, {MODEL_SIDE}), "
                                    f"got {pixel_values.shape}")
        started = time.perf_counter()
        with abort_scope(abort):
            outputs = self._encoder.encode(pixel_values)
        logger.debug("encode %s: %s encoder %.0f ms", geometry.original_hw, self._encoder.name,
                     (time.perf_counter() - started) * 1e3)
        return ImageEmbedding(outputs, geometry)

    def decode(self, embedding: ImageEmbedding, prompts: Prompts) -> MaskResult:
        """Masks for one object (its points and/or box, in original pixels) on an embedding from :meth:`encode`.

        Returns:
            A :class:`MaskResult`: 3 candidates, their IoU scores, the best index, the low-res logits and the
            object score.

        Raises:
            InvalidPromptError: empty prompts, or a prompt outside the image.
        """
        return self.decode_many(embedding, (prompts,))[0]

    def decode_many(self, embedding: ImageEmbedding, objects: Sequence[Prompts], *,
                    max_batch: int = DEFAULT_MAX_BATCH) -> tuple[MaskResult, ...]:
        """Masks for several objects, batched into as few decoder calls as the graph allows
        (:func:`sam_onnx.decoder.decode_many`).

        Returns:
            One :class:`MaskResult` per object, in the order given.
        """
        return mask_decoder.decode_many(self._decoder, embedding, objects, max_batch=max_batch)
