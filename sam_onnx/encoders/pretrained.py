"""The image encoder on its own: any variant, from files or from the pinned model, without a decoder.

A Ray Serve replica, the app's local fallback for a lost cluster and the
benchmarks need only an encoder. Loading one here costs what the encoder
costs (one onnxruntime session for ``fp32``); a decoder is loaded only when
``auto`` has no stored decision and must run its check, which compares
masks (:mod:`.auto`). The predictor builds its encoder through the same
:func:`load_image_encoder`, handing it its own decoder for that check.

Names: ``encoder_path`` is the fp32 encoder file, ``fp16_encoder_path`` the
published half-precision file, ``variant`` an ``--encoder`` value
(``"auto"``, ``"fp32"``, ``"int8"``, ...), and the result an
:class:`~sam_onnx.encoders.ImageEncoder` (the engine object).
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Sequence
from pathlib import Path

from .. import session as ort_session
from ..errors import ModelLoadError
from ..hub import ModelFiles, resolve_model_files
from ..models import ModelSpec, requested_model
from . import auto
from .base import EncoderSource, EncoderUnavailable, ImageEncoder, default_cache_dir
from .ort_fp32 import FP16

logger = logging.getLogger(__name__)


def encoder_source(encoder_path: str | os.PathLike, *, fp16_encoder_path: str | os.PathLike | None = None,
                   providers: Sequence[str] | None = None, threads: int | None = None,
                   cache_dir: str | os.PathLike | None = None) -> EncoderSource:
    """What every engine builds from: the files, the derived-files folder and the machine's settings.

    Raises:
        ModelLoadError: the encoder file does not exist.
    """
    path = Path(encoder_path)
    if not path.is_file():
        raise ModelLoadError(f"The encoder file {path} does not exist.")
    return EncoderSource(path, Path(cache_dir).expanduser() if cache_dir else default_cache_dir(),
                         threads or ort_session.default_threads(), tuple(providers) if providers else None,
                         Path(fp16_encoder_path) if fp16_encoder_path else None)


def decoder_on_demand(decoder_path: str | os.PathLike, *, providers: Sequence[str] | None = None,
                      threads: int | None = None) -> auto.Decode:
    """``decode_many`` for the ``auto`` check that loads the decoder at its first call only (then keeps it)."""
    from .. import decoder as mask_decoder

    loaded: list = []
    lock = threading.Lock()

    def decode_many(embedding, objects):
        with lock:
            if not loaded:
                logger.info("loading the decoder for the encoder check")
                loaded.append(mask_decoder.load_decoder(decoder_path, providers=providers, threads=threads)[0])
        return mask_decoder.decode_many(loaded[0], embedding, objects)

    return decode_many


def load_image_encoder(variant: str | None, encoder_path: str | os.PathLike, *,
                       fp16_encoder_path: str | os.PathLike | None = None,
                       providers: Sequence[str] | None = None, threads: int | None = None,
                       cache_dir: str | os.PathLike | None = None,
                       decoder_path: str | os.PathLike | None = None, decode_many: auto.Decode | None = None,
                       check_later: bool = False) -> tuple[ImageEncoder, auto.Decision | None]:
    """Build the encoder engine ``variant`` on ``encoder_path``.

    Args:
        variant: an ``--encoder`` value; ``None`` = ``$SAM_ONNX_ENCODER``, else ``"auto"``.
        encoder_path: the fp32 encoder ``.onnx`` (external data beside it), the source of every variant.
        fp16_encoder_path: the published float16 encoder file, if on this machine (needed for ``"fp16"``).
        providers: onnxruntime execution providers; ``None`` = CPU.
        threads: intra-op threads; ``None`` = all cores of this process.
        cache_dir: folder for derived files (int8 copy, OpenVINO blobs, ``auto`` decisions); default
            ``$SAM_ONNX_CACHE_DIR`` or ``~/.cache/sam_onnx``.
        decoder_path: the decoder file. ``auto`` needs it: its decision is keyed by it, and when no
            decision is stored its check decodes with it (loaded then, not before).
        decode_many: a ready decoder for the ``auto`` check (the predictor passes its own), instead
            of loading ``decoder_path``.
        check_later: ``auto`` without a stored decision returns fp32 at once and its check in
            ``decision.pending`` (:func:`sam_onnx.encoders.auto.run_check` runs it), instead of checking now.

    Returns:
        The encoder, and the ``auto`` decision behind it (``None`` for a forced variant).

    Raises:
        ModelLoadError: a file is missing or bad, the name is unknown, or a forced variant cannot run here.
    """
    from . import AUTO, load_encoder, requested_encoder

    variant = requested_encoder(variant)
    source = encoder_source(encoder_path, fp16_encoder_path=fp16_encoder_path, providers=providers,
                            threads=threads, cache_dir=cache_dir)
    if variant == AUTO:
        if decoder_path is None:
            raise ModelLoadError("The auto encoder check needs the decoder file (decoder_path).")
        if decode_many is None:
            decode_many = decoder_on_demand(decoder_path, providers=providers, threads=source.threads)
        return auto.choose(source, decode_many, decoder_path=Path(decoder_path), later=check_later)
    try:
        return load_encoder(variant, source), None
    except EncoderUnavailable as exc:
        raise ModelLoadError(f"The {variant} encoder cannot run here: {exc}. Use --encoder auto or fp32.") from exc


def pretrained_files(spec: ModelSpec, *, model_dir: str | os.PathLike | None = None,
                     variant: str | None = None, cache_dir: str | os.PathLike | None = None,
                     local_files_only: bool = False) -> tuple[ModelFiles, Path | None]:
    """The model files ``variant`` needs: a local folder, else the pinned hub files (downloaded once).

    Returns:
        The encoder and decoder files, and the fp16 encoder's path: the file itself for ``"fp16"``
        (then ``files.encoder_path`` is it too, and no fp32 file is downloaded), an ``auto`` candidate
        when it is already on this machine (never downloaded for ``auto``), else ``None``.

    Raises:
        ModelLoadError: with the file, the reason and what to do.
    """
    from . import AUTO, requested_encoder

    variant = requested_encoder(variant)
    kwargs = {"spec": spec, "cache_dir": cache_dir, "local_files_only": local_files_only}
    if variant == FP16:  # the half-precision file alone: no fp32 download
        files = resolve_model_files(model_dir, fp16_encoder=True, **kwargs)
        return files, files.encoder_path
    files = resolve_model_files(model_dir, **kwargs)
    if variant != AUTO:
        return files, None
    try:
        fp16 = resolve_model_files(model_dir, fp16_encoder=True, **{**kwargs, "local_files_only": True})
    except ModelLoadError:
        return files, None
    return files, fp16.encoder_path


def from_pretrained(spec: ModelSpec | None = None, *, model: str | None = None,
                    model_dir: str | os.PathLike | None = None,
                    variant: str | None = None, cache_dir: str | os.PathLike | None = None,
                    local_files_only: bool = False, providers: Sequence[str] | None = None,
                    threads: int | None = None, encoder_cache_dir: str | os.PathLike | None = None) -> ImageEncoder:
    """The image encoder alone, of the pinned hub model or a local folder (like ``Sam2Predictor.from_pretrained``).

    Args:
        spec: model table entry (revision pinned there); default: the one ``model`` names.
        model: a size (``"tiny"``, ``"small"``, ``"base-plus"``, ``"large"``; :mod:`sam_onnx.models`); default
            ``$SAM_ONNX_MODEL``, else ``"small"``.
        model_dir: a local folder with the ONNX files (or with one subfolder per size); default
            ``$SAM_ONNX_MODEL_DIR``; when set, nothing is downloaded.
        variant: the encoder variant (see :mod:`sam_onnx.encoders`); default ``$SAM_ONNX_ENCODER``, else
            ``"auto"`` (which loads the decoder only when no decision is stored for this machine).
        cache_dir: huggingface_hub cache folder.
        local_files_only: never download.
        providers, threads: as for :func:`load_image_encoder`.
        encoder_cache_dir: folder for derived files and ``auto`` decisions.

    Raises:
        ModelLoadError: files missing or bad, or the variant cannot run here.
    """
    files, fp16_path = pretrained_files(spec or requested_model(model), model_dir=model_dir, variant=variant,
                                        cache_dir=cache_dir,
                                        local_files_only=local_files_only)
    encoder, _ = load_image_encoder(variant, files.encoder_path, fp16_encoder_path=fp16_path, providers=providers,
                                    threads=threads, cache_dir=encoder_cache_dir, decoder_path=files.decoder_path)
    return encoder
