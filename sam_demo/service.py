"""The shared engine of the demo: image intake, caches, decoding, the stateless API, segment everything.

No UI code: a front end (the Gradio app, a test, a benchmark) keeps a small
:class:`ImageRecord` and an :class:`~sam_demo.editor.Editor` per user and
calls this service, which is shared by all users and thread-safe. Drawing is
in :mod:`sam_demo.view`, the files users download and load in
:mod:`sam_demo.bundle`, estimates and cancel flags in :mod:`sam_demo.jobs`.

Memory is bounded by construction: embeddings and display images live in one
process-wide LRU keyed by the SHA-256 of the image's file, decoder results in
another keyed by (image, prompts), the object list's scores in a small third,
the page's files (display and full-resolution JPEGs, mask layers of :mod:`sam_demo.layers`)
in byte-bounded LRUs; nothing large is kept per user. A cache miss (eviction) is
handled by re-reading the image file and encoding again, or by decoding and drawing again.

Fairness: every decoder call and every group of objects drawn runs in a turn of
:attr:`SegmentationService.compute`, and every encoder run in a turn of
:attr:`SegmentationService.encoder_gate` (:mod:`sam_demo.fair`), so one user's large
job is cut into pieces that alternate with other users' clicks. An edit decodes
and draws only what changed: the selected object, plus whatever is not cached.

Frames: ``ImageRecord.frame`` maps display pixels (the display copy the page loads, and the
frame of mask layers' bitmaps) to original pixels (what prompts, clicks and exports use).
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
import os
import re
import threading
import time
from collections.abc import Callable, Hashable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
from numpy.typing import NDArray
from PIL import Image

from sam_onnx import amg, export, refine, vector
from sam_onnx.abort import Abort
from sam_onnx.errors import Aborted, InvalidImageError, InvalidPromptError
from sam_onnx.geometry import CropFrame, DisplayFrame, Geometry
from sam_onnx.image import (DEFAULT_LIMITS, ImageLimits, UprightImage, image_size, load_image, load_upright,
                            rgb_chunks)
from sam_onnx.predictor import Sam2Predictor
from sam_onnx.preprocess import preprocess_crop, preprocess_upright
from sam_onnx.strokes import Stroke
from sam_onnx.types import ImageEmbedding, MaskResult, Point, Prompts, short_repr

from . import big_photos, bundle, fair, grants, jobs, layers, limits, view
from .cache import BoundedCache
from .editor import Editor, ObjectState
from .encoder_check import EncoderCheck
from .layers import Layer, LayerSpec, Place
from .page_decoder import PageDecoderAssets
from .view import Summary, View, ViewOptions

logger = logging.getLogger(__name__)

DEFAULT_DISPLAY_SIDE = 1536
"""Long side of the image the UI shows; clicks come back in this frame."""
DEFAULT_IMAGE_CACHE_MB = 1024
DEFAULT_RESULT_CACHE_MB = 256
RECEIVED_CACHE_MB = 64
"""Uploads shown and waiting for their encoder run (:class:`Received`, about 18 MB each at 1536 px): three
waiting at once; one pushed out is read again from its file when its turn comes."""
PAGE_FILES_CACHE_MB = 96
"""The page's files (:mod:`sam_demo.routes`): display JPEGs (~0.3 MB at 1536 px), full-resolution JPEGs
(~2-4 MB at 12 MP)."""
LAYER_CACHE_MB = 32
"""Mask layers (1-bit PNGs of a few kB each, :mod:`sam_demo.layers`)."""
PLACES_MB = 4
PLACE_BYTES = 200
"""Where each drawn layer is (:class:`sam_demo.layers.Place`, with its key): 20,000 layers, so that an edit of
one object finds every other object's place without its PNG or decoder result (those caches hold far fewer
objects of detailed masks: the 32 MB of PNGs about 250 of the stand-in's noise masks, the results cache 324)."""
DISPLAY_JPEG_QUALITY = 90
FULL_JPEG_QUALITY = 92
"""JPEG quality of the display and full-resolution copies the page loads."""
RECORD_BYTES = 1024
"""Bytes counted per remembered image record or layer spec (small values: a path, prompts)."""
RECORDS_MB = 4
SUMMARY_CACHE_MB = 16
SUMMARY_BYTES = 400
"""Bytes counted per cached object-list score (a key with its prompts and four floats)."""
DECODE_PIECE = 1
"""Objects per decoder call when many are decoded: the decoder's cost is linear in the objects on CPU
(about 20-26 ms each on 2 cores, bench/README.md), so small pieces cost nothing and let other users' clicks in."""
MAX_SEGMENT_MEGAPIXELS = 512
"""Full-resolution masks one ``/segment`` request may ask for, in megapixels (objects × image size):
256 objects of a 2 MP photo, 42 of a 12 MP one. Bounds the request's time and memory before any work."""
MAX_SEGMENT_RESPONSE_BYTES = 32 * 1024 * 1024
"""Largest ``/segment`` answer (COCO RLE grows with a mask's detail, not only its size)."""
SEGMENT_RLE = "rle"
SEGMENT_POLYGONS = "polygons"
SEGMENT_OUTPUTS = (SEGMENT_RLE, SEGMENT_POLYGONS)
"""What ``/segment`` returns per object: the mask as COCO RLE (exact), or as polygons with holes."""
DEFAULT_ENCODE_ZOOMED_VIEWS = False
"""Encoding zoomed views ahead is off unless asked for: measured, it was not shown to keep other users' clicks and
uploads within the bounds of ``bench/bench_view_encode.py`` (README, Refining an object)."""
MAX_SEGMENT_REFINES = 8
"""Objects one ``/segment`` request may ask to refine: each costs one more encoder run (1.2-2.5 s on 2 cores,
bench/README.md), so 8 keep a request within about the time of 256 plain objects (12 s)."""
WARM_UP_SIDE = 64
WARM_UP_GRID = 2
"""Segment everything at start-up on a WARM_UP_GRID × WARM_UP_GRID grid: measures its cost per grid point."""
_MB = 1024 * 1024

Progress = Callable[[float, str], None]


def _no_progress(fraction: float, message: str) -> None:
    return None


@dataclass(frozen=True)
class Refinement:
    """A refine made ready by :meth:`SegmentationService.refine` (its crop encoded, its object decoded there).

    The caller applies it to the editor it holds then (``editor.refine(object_id, crop)``), if the image is
    still the same: a refine runs for a second or two, and the user may have moved on.

    Attributes:
        image_key: the image it was made for.
        object_id: the object refined.
        crop: where (original pixels).
        seconds: wall time of the whole refine (reading the photo, encoding the crop, one decoder call).
        encode_seconds: the crop's encoder run alone (0 when its embedding was cached).
        cached: the crop's embedding was in the cache (no encoder run).
    """

    image_key: str
    object_id: int
    crop: CropFrame
    seconds: float
    encode_seconds: float
    cached: bool

    def describe(self) -> str:
        """The status line's words, e.g. "refined in 1.6 s (crop 420×380 px, 4.8× finer)"."""
        ch, cw = self.crop.crop_hw
        h, w = self.crop.original_hw
        finer = min(w / cw, h / ch)
        how = "crop cached" if self.cached else f"encode {self.encode_seconds:.1f} s"
        return f"refined in {self.seconds:.1f} s (crop {cw}×{ch} px, {finer:.1f}× finer; {how})"


class RefineCancelled(Exception):
    """A refine was cancelled (e.g. by a new upload in the same tab); nothing changed."""


def _no_progress(fraction: float, message: str) -> None:
    return None


@dataclass(frozen=True)
class ImageRecord:
    """What a user's state remembers about its image (small; no pixels).

    Attributes:
        key: the cache and access key: the SHA-256 of the image's file (:func:`file_key`), followed by
            ``@<model>`` when the image is encoded with a model other than the server's default.
        path: file to re-read the image from (re-encode after eviction, exports).
        name: a file-name-safe stem for exported files.
        frame: original ↔ display pixel mapping.
        notes: user-facing notes from loading (EXIF rotation, first frame...).
        model: the model it is encoded with, as ``--models`` names it (``""`` = the server's default model).
        sha256: the file's SHA-256 alone, :func:`file_key` (``""`` = ``key``, for the default model); see
            :attr:`content_key`.
    """

    key: str
    path: str
    name: str
    frame: DisplayFrame
    notes: tuple[str, ...] = ()
    model: str = ""
    sha256: str = ""

    @property
    def content_key(self) -> str:
        """The SHA-256 of the pixels, whatever the model (exports, prompts files, ``/segment``)."""
        return self.sha256 or self.key

    @property
    def original_hw(self) -> tuple[int, int]:
        return self.frame.original_hw


@dataclass(frozen=True, eq=False)
class CachedImage:
    """The per-image data shared by every user who opens the same picture."""

    embedding: ImageEmbedding
    display_rgb: NDArray[np.uint8]    # (h, w, 3) in display pixels, read-only
    thumbnail_rgb: NDArray[np.uint8]  # display_rgb at candidate-thumbnail size, read-only

    @property
    def nbytes(self) -> int:
        return self.embedding.nbytes + self.display_rgb.nbytes + self.thumbnail_rgb.nbytes


@dataclass(frozen=True, eq=False)
class Received:
    """An upload between the two steps of the intake: shown, not yet encoded (:meth:`SegmentationService.receive_image`).

    Attributes:
        pixel_values: ``(1, 3, 1024, 1024)`` float32, the encoder's input (model frame).
        geometry: the original image's geometry.
        display_rgb: ``(h, w, 3)`` uint8 in display pixels, read-only.
        thumbnail_rgb: ``display_rgb`` at candidate-thumbnail size, read-only.
    """

    pixel_values: NDArray[np.float32]
    geometry: Geometry
    display_rgb: NDArray[np.uint8]
    thumbnail_rgb: NDArray[np.uint8]

    @property
    def nbytes(self) -> int:
        return self.pixel_values.nbytes + self.display_rgb.nbytes + self.thumbnail_rgb.nbytes


class _TakenIn(NamedTuple):
    """What :meth:`SegmentationService._take_in` makes of an upload's file."""

    received: Received
    frame: DisplayFrame
    notes: tuple[str, ...]
    loaded_at: float     # time.perf_counter() when the decode ended


def file_key(path: str | os.PathLike) -> str:
    """The content key of an uploaded file: the SHA-256 of its bytes (hex), what ``sha256sum`` prints.

    Read in pieces (no copy of the whole file): about 4 ms of CPU for a 3.6 MB 12 MP JPEG, made before anything
    is decoded, so that a file already encoded is not read at all. The same file gives the same key whatever
    its name; the same pixels saved in another file do not (see :func:`image_key`). The caller checks the file's
    size first (:func:`~sam_onnx.image.image_size`).
    """
    with open(path, "rb") as stream:
        return hashlib.file_digest(stream, "sha256").hexdigest()


def image_key(original: NDArray[np.uint8] | Image.Image) -> str:
    """The content hash of an image's upright pixels: same pixels, same key, whatever the file format was.

    The key of uploads before :func:`file_key` replaced it (0.03 s of CPU at 12 MP after a 0.04 s turn of the
    whole photo, on the upload's critical path); kept to recognise prompts files saved with it
    (:meth:`SegmentationService.load_prompts_file`).

    ``original``: ``(H, W, 3)`` uint8, or the same pixels as an RGB PIL image (hashed piece by piece, no
    array of the whole image); both give the same key.
    """
    if isinstance(original, Image.Image):
        digest = hashlib.sha256(f"{(original.height, original.width, 3)}".encode())
        for chunk in rgb_chunks(original):
            digest.update(chunk)
        return digest.hexdigest()
    digest = hashlib.sha256(f"{original.shape}".encode())
    digest.update(np.ascontiguousarray(original).data)
    return digest.hexdigest()


class _FairTurns:
    """The predictor as :func:`sam_onnx.amg.generate` uses it, run inside a turn of the compute gate: decoder
    calls share that turn, and an encoder run (a crop) gives it up while it waits for and uses the encoder."""

    def __init__(self, service: SegmentationService, turn: fair.Turn, predictor: Sam2Predictor,
                 abort: Abort | None = None) -> None:
        self._service = service
        self._turn = turn
        self._predictor = predictor
        self._abort = abort
        self.encode_seconds = 0.0

    def encode(self, image) -> ImageEmbedding:
        with self._turn.paused(), self._service.encoder_gate.turn(cancel=_cancel_of(self._abort)) as encoding:
            if encoding is None:
                raise Aborted()
            started = time.perf_counter()
            embedding = self._predictor.encode(image, abort=self._abort)
            self.encode_seconds += time.perf_counter() - started
            return embedding

    def decode_many(self, embedding: ImageEmbedding, objects: Sequence[Prompts], **_: Any) -> list[MaskResult]:
        return self._service.decode(embedding, objects, self._predictor)


def _cancel_of(abort: Abort | None) -> Callable[[], bool] | None:
    """What a :class:`~sam_demo.fair.FairGate` turn polls while it waits: the abort's flag, if any."""
    return None if abort is None else abort.is_set


def _jpeg(rgb: NDArray[np.uint8], quality: int) -> bytes:
    """An ``(h, w, 3)`` uint8 image as JPEG bytes."""
    out = io.BytesIO()
    Image.fromarray(rgb).save(out, "JPEG", quality=quality)
    return out.getvalue()


def _result_key(image_key: str, prompts: Prompts, crop: CropFrame | None) -> tuple:
    """Cache key of a decoder result (and its summary): the image, the prompts, and the crop if refined."""
    return (image_key, prompts) if crop is None else (image_key, prompts, crop.box)


def _safe_stem(path: str) -> str:
    stem = re.sub(r"[^A-Za-z0-9._-]+", "_", Path(path).stem).strip("._") or "image"
    return stem[:60]


class SegmentationService:
    """Shared, thread-safe engine of the interactive demo.

    Args:
        predictor: the (stateless) SAM predictor.
        display_max_side: long side of display images.
        image_cache_mb: budget for embeddings + display images (about 22 MB per image).
        result_cache_mb: budget for decoder results (about 0.8 MB per object).
        limits: what uploads may be.
        upload_concurrency: uploads read and encoded at once (1 with a local encoder; the app's
            ``--ray-uploads`` when a Ray Serve deployment encodes).
        grant_ttl_s: seconds a tab's access token to an image lives after its last use (:mod:`sam_demo.grants`).
        page_decoder: the page's decoder files (:func:`sam_demo.page_decoder.prepare`); None turns the page's
            live previews off.
        models: every model a user may choose, by ``--models`` name (``{"small": ..., "tiny": ...}``), the
            default ``predictor`` among them; empty or one = no choice. Images encoded with another model than
            the default are cached under their own keys (:attr:`ImageRecord.key`), in the same budgets.
    """

    def __init__(self, predictor: Sam2Predictor, *, display_max_side: int = DEFAULT_DISPLAY_SIDE,
                 image_cache_mb: int = DEFAULT_IMAGE_CACHE_MB, result_cache_mb: int = DEFAULT_RESULT_CACHE_MB,
                 limits: ImageLimits = DEFAULT_LIMITS, open_limits: ImageLimits = big_photos.OPEN_LIMITS,
                 upload_concurrency: int = 1, grant_ttl_s: float = grants.DEFAULT_TTL_S,
                 page_decoder: PageDecoderAssets | None = None,
                 models: Mapping[str, Sam2Predictor] | None = None,
                 encode_zoomed_views: bool = DEFAULT_ENCODE_ZOOMED_VIEWS) -> None:
        self.predictor = predictor
        self.encode_zoomed_views = encode_zoomed_views
        """Encode what a zoomed view shows ahead of its clicks (:meth:`encode_view`; the app's ``--zoom-encode``)."""
        self.models: dict[str, Sam2Predictor] = dict(models or {})
        """Every model users may choose, by name (the default predictor among them); see :meth:`model_names`."""
        self.default_model = next((name for name, p in self.models.items() if p is predictor), "")
        self.page_decoder = page_decoder
        """The files of the page's own decoder (:mod:`sam_demo.page_decoder`), or None: no live previews."""
        # Uploads encoded at once: 1 for an encoder on this machine (two at once only halve the speed);
        # more when the encoder is a Ray Serve deployment with several replicas.
        self.upload_concurrency = max(1, upload_concurrency)
        self.display_max_side = display_max_side
        self.limits = limits
        """The working limits: a bigger photo is worked on downscaled to them (:mod:`sam_demo.big_photos`)."""
        self.open_limits = open_limits
        """What an upload may be (checked from the file's header before any decode)."""
        self._images: BoundedCache[CachedImage] = BoundedCache(image_cache_mb * _MB, lambda v: v.nbytes)
        self._received: BoundedCache[Received] = BoundedCache(RECEIVED_CACHE_MB * _MB, lambda v: v.nbytes)
        self._results: BoundedCache[MaskResult] = BoundedCache(result_cache_mb * _MB,
                                                               lambda r: r.low_res_logits.nbytes + 64)
        self._summaries: BoundedCache[Summary] = BoundedCache(SUMMARY_CACHE_MB * _MB, lambda v: SUMMARY_BYTES)
        self._files: BoundedCache[bytes] = BoundedCache(PAGE_FILES_CACHE_MB * _MB, lambda b: len(b) + 64)
        self._layers: BoundedCache[Layer] = BoundedCache(LAYER_CACHE_MB * _MB, lambda layer: len(layer.png) + 200)
        self._layer_specs: BoundedCache[LayerSpec] = BoundedCache(RECORDS_MB * _MB, lambda v: RECORD_BYTES)
        self._places: BoundedCache[Place] = BoundedCache(PLACES_MB * _MB, lambda v: PLACE_BYTES)
        self._records: BoundedCache[ImageRecord] = BoundedCache(RECORDS_MB * _MB, lambda v: RECORD_BYTES)
        """The last opened record of each image key: the file the routes re-read the image from."""
        self.grants = grants.Grants(ttl_s=grant_ttl_s)
        """Which browser tab may fetch which image's files (:mod:`sam_demo.routes`)."""
        self.compute = fair.FairGate("compute")
        """Turns for decoder calls and drawing, shared fairly between users (:mod:`sam_demo.fair`)."""
        self.encoder_gate = fair.FairGate("encoder", slots=self.upload_concurrency)
        """Turns for encoder runs: ``upload_concurrency`` at a time, i.e. one with a local encoder (a second run on
        2 cores only halves both), several when a Ray Serve deployment encodes."""
        self.intake = fair.FairGate("intake", slots=self.upload_concurrency)
        """Turns for reading and encoding an upload: ``upload_concurrency`` images in memory at a time (up to 40 MP
        each; a bigger photo, up to 64 MP, is decoded whole only while its working copy is made)."""
        self.speed = jobs.SpeedMeter()
        self.cancels = jobs.CancelRegistry()
        self.encoder_check: EncoderCheck | None = None
        """``--encoder auto``'s check when it runs after the start (:meth:`start_encoder_check`)."""
        self._local = threading.local()

    # ------------------------------------------------------------------ images
    def open_image(self, path: str | os.PathLike, *, model: str = "", progress: Progress = _no_progress,
                   abort: Abort | None = None) -> tuple[ImageRecord, dict]:
        """Load, check and encode an uploaded image (or find it in the cache): :meth:`receive_image`, then
        :meth:`encode_image`; ``model`` is which of :attr:`models` encodes it (``""`` = the default).

        ``abort`` (set by another thread when nobody waits for the image any more: its page left, or
        a newer upload came from it) stops the work at its next safe point, see :meth:`encode_image`.

        Returns:
            The record for the user's state, and timings/cache info (``load_ms``, ``encode_ms``, ``cache_hit``).

        Raises:
            InvalidImageError: the file is not a usable image.
            InvalidPromptError: ``model`` is not one of this server's models.
            Aborted: ``abort`` was set; the image is not encoded (or its encoder run was stopped).
        """
        record, info = self.receive_image(path, model=model, progress=progress, abort=abort)
        return record, {**info, **self.encode_image(record, progress=progress, abort=abort)}

    def receive_image(self, path: str | os.PathLike, *, model: str = "", progress: Progress = _no_progress,
                      abort: Abort | None = None) -> tuple[ImageRecord, dict]:
        """Step 1 of an upload: hash the file; unless that file is encoded already (then nothing is read: ~5 ms
        at 12 MP instead of ~0.15 s), read and check it, make the display copy and the encoder input.

        After it the image can be shown (:meth:`display_rgb`, :meth:`display_jpeg`), before its encoder run
        (:meth:`encode_image`). Everything here runs before the encoder, never beside it, spread over two cores
        (:meth:`_take_in`); then the encoder gets both. The encoder input waits for step 2 in a small bounded
        cache.

        ``model`` (``""`` = the default) is the model step 2 encodes it with; the record's key names it
        (:attr:`ImageRecord.key`).

        Returns:
            The record, and ``load_ms`` (read and decode) and ``receive_ms`` (the whole step).

        ``abort``: while it waits for its turn to read, a set abort withdraws the upload (the turn goes to the
        next one at once); after the read, the work stops before the preprocessing.

        Raises:
            InvalidImageError: the file is not a usable image.
            InvalidPromptError: ``model`` is not one of this server's models.
            Aborted: ``abort`` was set.
        """
        model = self._model_name(model)
        self.predictor_for(model)  # an unknown model fails before any work
        started = time.perf_counter()
        progress(0.05, "Reading the image")
        with self.intake.turn(cancel=_cancel_of(abort)) as reading:  # upload_concurrency images in memory at once
            if reading is None:
                raise Aborted()
            image_size(path, limits=self.open_limits)  # the file's size and header checked before it is read
            sha256 = file_key(path)
            key = f"{sha256}@{model}" if model else sha256
            known = self._records.get(key)
            if known is not None and self._images.get(key) is not None:  # this file is encoded already
                frame, notes, loaded_at = known.frame, known.notes, time.perf_counter()
            else:
                taken = self._take_in(path, sha256, abort=abort)
                frame, notes, loaded_at = taken.frame, taken.notes, taken.loaded_at
                if self._images.get(key) is None:
                    self._received.put(key, taken.received)
        record = ImageRecord(key, str(path), _safe_stem(str(path)), frame, notes, model, sha256 if model else "")
        self._records.put(key, record)
        received_at = time.perf_counter()
        logger.info("image %s %s received: read %.0f ms, display copy and input %.0f ms", key[:12],
                    frame.original_hw, (loaded_at - started) * 1e3, (received_at - loaded_at) * 1e3)
        return record, {"load_ms": (loaded_at - started) * 1e3, "receive_ms": (received_at - started) * 1e3}

    def _take_in(self, path: str | os.PathLike, sha256: str, *, frame: DisplayFrame | None = None,
                 abort: Abort | None = None) -> _TakenIn:
        """An upload read from ``path`` (whose :func:`file_key` is ``sha256``): everything its encoder run and
        its page need, on two cores.

        This core decodes the photo. Then it makes the encoder input from the stored pixels
        (:func:`~sam_onnx.preprocess.preprocess_upright`: the photo is never turned upright as a whole) while
        the other makes the display copies from the same pixels (resized, then turned) and the display JPEG
        the page loads (made here, not by the page's request, which would come while the encoder runs).

        ``frame``: the display frame (from the image's size, when not given); ``abort`` is checked after the
        decode.
        """
        loaded = big_photos.working_upright(load_upright(path, limits=self.open_limits), self.limits)
        loaded_at = time.perf_counter()
        if abort is not None:
            abort.check()
        frame = frame or DisplayFrame.fit(loaded.hw, self.display_max_side)
        with ThreadPoolExecutor(max_workers=1, thread_name_prefix="intake") as other_core:
            shown = other_core.submit(self._display_copies, loaded, frame)
            prepared = preprocess_upright(loaded)
            display, thumbnail, jpeg = shown.result()
        self._files.get_or_create(("display", sha256), lambda: jpeg)
        return _TakenIn(Received(*prepared, display, thumbnail), frame, loaded.notes, loaded_at)

    @staticmethod
    def _display_copies(loaded: UprightImage,
                        frame: DisplayFrame) -> tuple[NDArray[np.uint8], NDArray[np.uint8], bytes]:
        """:meth:`_take_in`'s second core: the display copy, its thumbnail base and its JPEG."""
        display, thumbnail = view.display_images(loaded, frame)
        return display, thumbnail, _jpeg(display, DISPLAY_JPEG_QUALITY)

    def encode_image(self, record: ImageRecord, *, progress: Progress = _no_progress,
                     abort: Abort | None = None) -> dict:
        """Step 2 of an upload: the encoder run (once per image; a cache hit costs nothing).

        ``abort`` stops it at the next safe point: while it waits for its turns (withdrawn; the turn goes
        to the next waiting upload at once) or during the encoder run (onnxruntime stops between two
        nodes, :mod:`sam_onnx.abort`). Nothing is cached then; the preprocessed input stays for a later try.

        Returns:
            ``encode_ms`` (this step) and ``cache_hit``.

        Raises:
            Aborted: ``abort`` was set.
        """
        started = time.perf_counter()
        progress(0.2, f"Encoding the image{f' with {record.model}' if record.model else ''} (runs once per image)")
        _, cached = self._images.get_or_create(record.key, lambda: self._encode(record, abort))
        done = time.perf_counter()
        progress(1.0, "Ready")
        info = {"encode_ms": (done - started) * 1e3, "cache_hit": cached}
        logger.info("image %s %s: %s", record.key[:12], record.original_hw, info)
        return info

    def _encode(self, record: ImageRecord, abort: Abort | None = None) -> CachedImage:
        """The cache entry of an image: its received input encoded, paired with its display copies.

        An input pushed out of the received cache (or an image evicted from the image cache) is read again from
        its file first. The intake turn is held through the encoder run, so that no upload's reading runs
        beside it (the gates are always taken intake first, then encoder). Called by the image cache's
        ``get_or_create`` only: no turn may be held while waiting there (another thread's factory may need it).

        ``abort`` (see :meth:`encode_image`) withdraws the waits for both turns and stops the encoder run; the
        received input goes back to its cache, so another tab opening the same photo meanwhile loses nothing.
        """
        cancel = _cancel_of(abort)
        with self.intake.turn(cancel=cancel) as reading:
            if reading is None:
                raise Aborted()
            received = self._received.pop(record.key)
            if received is None:
                logger.info("image %s is not in memory; reading it again", record.key[:12])
                path = self._reopened_path(record)
                received = self._take_in(path, record.content_key, frame=record.frame).received
            try:
                with self.encoder_gate.turn(cancel=cancel) as encoding:
                    if encoding is None:
                        raise Aborted()
                    started = time.perf_counter()
                    embedding = self.predictor_for(record.model).encode_pixels(
                        received.pixel_values, received.geometry, abort=abort)
                    self.speed.record_encode(time.perf_counter() - started)
            except Aborted:
                self._received.put(record.key, received)
                logger.info("image %s: encoder run abandoned (nobody waits for it)", record.key[:12])
                raise
        return CachedImage(embedding, received.display_rgb, received.thumbnail_rgb)

    def cached_image(self, record: ImageRecord) -> CachedImage:
        """The embedding and display image, encoding the image again transparently after an eviction."""
        found = self._images.get(record.key)
        if found is not None:
            return found
        return self._images.get_or_create(record.key, lambda: self._encode(record))[0]

    def photo_view(self, record: ImageRecord, editor: Editor) -> View:
        """What a page shows between the two steps of an upload: the photo alone (nothing decoded yet)."""
        return View({}, (), (), None, view.object_rows(editor, {}), {})

    def display_rgb(self, record: ImageRecord) -> NDArray[np.uint8]:
        """The display copy ``(h, w, 3)`` uint8 of an image, from step 1 of its upload on (before it is encoded)."""
        for cache in (self._images, self._received):
            found = cache.get(record.key)
            if found is not None:
                return found.display_rgb
        return self.cached_image(record).display_rgb

    def _reload(self, record: ImageRecord) -> NDArray[np.uint8]:
        """The original ``(H, W, 3)`` uint8 pixels, read again from the uploaded file and checked against the key."""
        path = self._reopened_path(record)
        return big_photos.working_copy(load_image(path, limits=self.open_limits), self.limits).rgb

    @staticmethod
    def _reopened_path(record: ImageRecord) -> str:
        """The record's uploaded file, to be read again: still there, and its hash still the record's key."""
        if not Path(record.path).is_file():
            raise InvalidImageError("This image is no longer on the server; please upload it again.")
        if file_key(record.path) != record.content_key:
            raise InvalidImageError("This image changed on the server; please upload it again.")
        return record.path

    # ------------------------------------------------------------------ masks
    def decode(self, embedding: ImageEmbedding, objects: Sequence[Prompts],
               predictor: Sam2Predictor | None = None) -> list[MaskResult]:
        """Decoder results for ``objects``, :data:`DECODE_PIECE` at a time in fair turns (not cached), with
        ``predictor``'s decoder (default: the default model's; it must be the one that made ``embedding``)."""
        predictor = predictor or self.predictor
        out: list[MaskResult] = []
        work = self._work()
        with self.compute.turn() as turn:
            for start in range(0, len(objects), DECODE_PIECE):
                piece = list(objects[start:start + DECODE_PIECE])
                started = time.perf_counter()
                out += predictor.decode_many(embedding, piece)
                seconds = time.perf_counter() - started
                self.speed.record_decode(seconds, len(piece))
                work.decoded += len(piece)
                work.decode_s += seconds
                turn.share()
        return out

    def _work(self, reset: bool = False) -> threading.local:
        """This thread's decoder work in the current event (for the status line's timings)."""
        work = self._local
        if reset or not hasattr(work, "decoded"):
            work.decoded, work.decode_s = 0, 0.0
        return work

    def results(self, record: ImageRecord, objects: Sequence[Prompts],
                crops: Sequence[CropFrame | None] | None = None) -> list[MaskResult]:
        """Decoder results for each object's prompts (cached; misses decoded in fair pieces).

        ``crops`` gives, per object, the crop it was refined in (:attr:`sam_demo.editor.ObjectState.crop`):
        such an object is decoded on that crop's embedding (:meth:`crop_embedding`); ``None`` = the whole image.
        """
        crops = list(crops) if crops is not None else [None] * len(objects)
        keys = [_result_key(record.key, p, c) for p, c in zip(objects, crops)]
        found = [self._results.get(k) for k in keys]
        missing = [i for i, r in enumerate(found) if r is None]
        for crop in dict.fromkeys(crops[i] for i in missing):  # each embedding once, in order
            group = [i for i in missing if crops[i] == crop]
            embedding = self.cached_image(record).embedding if crop is None else self.crop_embedding(record, crop)
            decoded = self.decode(embedding, [objects[i] for i in group], self.predictor_for(record.model))
            for i, result in zip(group, decoded):
                found[i] = self._results.put(keys[i], result)
                self._summaries.put(keys[i], Summary.of(result))
        return found  # type: ignore[return-value]

    def object_results(self, record: ImageRecord, objects: Sequence[ObjectState]) -> list[MaskResult]:
        """:meth:`results` for editor objects (their prompts, on their crops)."""
        return self.results(record, [o.prompts for o in objects], [o.crop for o in objects])

    # ------------------------------------------------------------------ refinement (sam_onnx.refine)
    def crop_embedding(self, record: ImageRecord, crop: CropFrame, abort: Abort | None = None) -> ImageEmbedding:
        """The embedding of a crop of the image, from the image cache or encoded now (one encoder run).

        Crop embeddings share the image cache and its budget with whole images (key: image hash and crop).
        A miss reads the photo again (an intake turn, like an upload: one full-size image in memory per
        slot) and encodes the crop in an encoder turn; a compute turn this thread holds is handed over
        meanwhile, so nobody's click waits for the encoder. ``abort`` withdraws the waits and stops the run
        (raises :class:`~sam_onnx.errors.Aborted`).
        """
        key = ("crop", record.key, crop.box)
        found = self._images.get(key)
        if found is not None:
            return found  # type: ignore[return-value]
        cancel = _cancel_of(abort)

        def encode() -> ImageEmbedding:
            with self.compute.released(), self.intake.turn(cancel=cancel) as reading:
                if reading is None:
                    raise Aborted()
                prepared = preprocess_crop(self._reload(record), crop)
                with self.encoder_gate.turn(cancel=cancel) as encoding:
                    if encoding is None:
                        raise Aborted()
                    started = time.perf_counter()
                    embedding = self.predictor_for(record.model).encode_pixels(*prepared, abort=abort)
                    self.speed.record_encode(time.perf_counter() - started)
            logger.info("image %s: crop %s encoded", record.key[:12], crop.box)
            return embedding

        return self._images.get_or_create(key, encode)[0]  # type: ignore[return-value]

    def encode_view(self, record: ImageRecord, view: tuple[float, float, float, float], *,
                    cancel: Callable[[], bool] = lambda: False) -> CropFrame | None:
        """Encode the region a zoomed view shows, ahead of the clicks it may get, at the lowest priority.

        The crop is :meth:`~sam_onnx.geometry.CropFrame.for_view` of ``view`` (original pixels); its
        embedding goes to the image cache like a refine's (:meth:`crop_embedding`), so a click inside it
        decodes there at once. Reading the photo and the encoder run each wait for a background turn
        (:meth:`sam_demo.fair.FairGate.lowest_turn`): every upload, refine and other request that
        waits goes first, and ``cancel()`` (a new zoom or a new image) withdraws it while it waits. An
        encoder run once started is not interrupted: a request arriving then waits for it (one crop's encode).

        Returns:
            The crop, ready in the cache; ``None`` when cancelled, or when the view shows the whole image.
        """
        crop = CropFrame.for_view(record.original_hw, view)
        if crop.is_whole_image:
            return None
        key = ("crop", record.key, crop.box)
        if self._images.get(key) is not None:
            return crop
        with self.intake.lowest_turn(cancel=cancel) as reading:
            if reading is None or cancel():
                return None
            prepared = preprocess_crop(self._reload(record), crop)  # the photo is let go here (12 MB kept)
        with self.encoder_gate.lowest_turn(cancel=cancel) as encoding:
            if encoding is None or cancel():
                return None
            started = time.perf_counter()
            embedding = self.predictor_for(record.model).encode_pixels(*prepared)
            self.speed.record_encode(time.perf_counter() - started)
        self._images.put(key, embedding)
        logger.info("image %s: view %s encoded in the background", record.key[:12], crop.box)
        return crop

    def refine(self, record: ImageRecord, editor: Editor, object_id: int | None = None, *,
               cancel: Callable[[], bool] | None = None, progress: Progress = _no_progress,
               abort: Abort | None = None) -> Refinement:
        """Refine one object (default: the selected one) in a crop at full resolution (:mod:`sam_onnx.refine`).

        The crop is its shown mask's box with 20 % margin (:func:`sam_onnx.refine.crop_for`); its embedding is
        made (one encoder run, or the cache) and the object decoded there, so applying the returned
        :class:`Refinement` to the editor draws at once. Nothing of the editor changes here.

        Raises:
            InvalidPromptError: no object is selected, it has no prompts, its mask is empty, it spans the
                whole image, or it is refined as far as its mask allows already.
            RefineCancelled: ``cancel()`` returned True before the crop was encoded or before it was decoded, or
                ``abort`` (whose flag is the default ``cancel``) was set: it also stops the crop's encoder run.
        """
        cancel = cancel or (abort.is_set if abort is not None else (lambda: False))
        started = time.perf_counter()
        obj = editor.selected if object_id is None else editor.current.find(object_id)
        if obj is None:
            raise InvalidPromptError("Select an object first.")
        if obj.prompts.is_empty:
            raise InvalidPromptError("This object has no prompts yet: add a point or a box, then refine it.")
        current = self.results(record, [obj.prompts], [obj.crop])[0]
        crop = refine.crop_for(current, obj.prompts, obj.candidate)
        if crop == obj.crop:
            raise InvalidPromptError("This object is refined already: a new crop around its mask would be the same.")
        cached = self._images.get(("crop", record.key, crop.box)) is not None
        if cancel():
            raise RefineCancelled()
        ch, cw = crop.crop_hw
        progress(0.1, f"Refining {obj.name}: encoding a {cw}×{ch} px crop")
        encode_started = time.perf_counter()
        try:
            self.crop_embedding(record, crop, abort)
        except Aborted:
            raise RefineCancelled() from None
        encode_seconds = 0.0 if cached else time.perf_counter() - encode_started
        if cancel():
            raise RefineCancelled()
        progress(0.9, f"Refining {obj.name}: decoding")
        self.results(record, [obj.prompts], [crop])
        refinement = Refinement(record.key, obj.id, crop, time.perf_counter() - started, encode_seconds, cached)
        logger.info("image %s: object refined in %.2f s (crop %s, encode %.2f s)", record.key[:12],
                    refinement.seconds, crop.box, encode_seconds)
        return refinement

    def summaries(self, record: ImageRecord, editor: Editor) -> dict[int, Summary]:
        """The object list's scores for every object with prompts (cached apart from the logits)."""
        out: dict[int, Summary] = {}
        missing = []
        for obj in editor.objects:
            if obj.prompts.is_empty:
                continue
            key = _result_key(record.key, obj.prompts, obj.crop)
            summary = self._summaries.get(key)
            if summary is None:
                result = self._results.get(key)
                summary = None if result is None else self._summaries.put(key, Summary.of(result))
            if summary is None:
                missing.append(obj)
            else:
                out[obj.id] = summary
        if missing:
            for obj, result in zip(missing, self.object_results(record, missing)):
                out[obj.id] = Summary.of(result)
        return out

    def layer(self, record: ImageRecord, prompts: Prompts, candidate: int, result: MaskResult,
              crop: CropFrame | None = None, strokes: tuple[Stroke, ...] = ()) -> tuple[str, Layer]:
        """The mask layer of one object (cached by its content address; see :mod:`sam_demo.layers`).
        ``crop``: the crop a refined object's ``result`` was decoded on (``None`` = the whole image);
        ``strokes``: the object's brush/eraser strokes, applied after the decoder's mask."""
        spec = self._layer_spec(record, prompts, candidate, crop, strokes)
        layer_id = spec.layer_id
        found = self._layers.get(layer_id)
        if found is None:
            found = self._layers.put(layer_id, layers.draw_layer(result, candidate, record.frame, spec.strokes))
        if self._places.get(layer_id) is None:
            self._places.put(layer_id, found.place)
        self._keep_spec(layer_id, spec)
        return layer_id, found

    @staticmethod
    def _layer_spec(record: ImageRecord, prompts: Prompts, candidate: int, crop: CropFrame | None,
                    strokes: Sequence[Stroke]) -> LayerSpec:
        """What an object's layer on ``record``'s image is drawn from: its content address's fields."""
        return LayerSpec(record.key, prompts, candidate, record.frame.display_hw, crop, tuple(strokes))

    def _keep_spec(self, layer_id: str, spec: LayerSpec) -> None:
        """Remember what layer ``layer_id`` is drawn from, for :meth:`layer_png` to draw it again after an eviction."""
        if self._layer_specs.get(layer_id) is None:
            self._layer_specs.put(layer_id, spec)

    def object_layers(self, record: ImageRecord, editor: Editor, summaries: Mapping[int, Summary],
                      share=lambda: None) -> dict[int, tuple[str, Place]]:
        """Every object's layer id and place by object id (objects without prompts have none).

        An object whose layer was drawn before costs a look-up: its id comes from its prompts and the candidate
        its ``summaries`` entry shows, its place from a cache of places apart from the PNGs (the page has the
        PNG; :meth:`layer_png` draws it again if asked after an eviction). Only the others are decoded (when
        their result is not cached) and drawn, in fair pieces.
        """
        placed: dict[int, tuple[str, Place]] = {}
        missing = []
        for obj in editor.objects:
            if obj.prompts.is_empty:
                continue
            spec = self._layer_spec(record, obj.prompts, view.shown_candidate(obj, summaries[obj.id]), obj.crop,
                                    obj.strokes)
            layer_id = spec.layer_id  # a hash of every prompt point: computed once per object
            place = self._places.get(layer_id)
            if place is None:
                missing.append(obj)
                continue
            self._keep_spec(layer_id, spec)
            placed[obj.id] = (layer_id, place)
        for start in range(0, len(missing), view.DRAW_GROUP):
            group = missing[start:start + view.DRAW_GROUP]
            for obj, result in zip(group, self.object_results(record, group)):
                layer_id, layer = self.layer(record, obj.prompts, view.shown_candidate(obj, result), result,
                                             obj.crop, obj.strokes)
                placed[obj.id] = (layer_id, layer.place)
            share()
        return {obj.id: placed[obj.id] for obj in editor.objects if obj.id in placed}  # in the editor's order

    def render(self, record: ImageRecord, editor: Editor, options: ViewOptions = ViewOptions()) -> View:
        """What the user sees after an edit: each object's mask layer, the rows and the candidates.

        Decoding and drawing only what changed: layers are content-addressed and cached, so an edit of
        the selected object draws one layer; evicted results are decoded again in fair pieces.
        """
        cached = self.cached_image(record)  # before any turn: it may encode again after an eviction
        work = self._work(reset=True)
        started = time.perf_counter()
        with self.compute.turn() as turn:
            selected = editor.selected
            selected_result = None
            if selected is not None and not selected.prompts.is_empty:
                selected_result = self.object_results(record, [selected])[0]
            summaries = self.summaries(record, editor)
            drawn = self.object_layers(record, editor, summaries, share=turn.share)
            thumbs, scores, chosen = view.candidates_view(record.frame, cached.thumbnail_rgb, editor, selected_result,
                                                           cached.display_rgb)
            waited = turn.waited
        rows = view.object_rows(editor, summaries)
        total = time.perf_counter() - started
        timings = {"decode_ms": work.decode_s * 1e3, "render_ms": max(0.0, total - work.decode_s - waited) * 1e3,
                   "waited_ms": waited * 1e3, "decoded": work.decoded}
        return View(drawn, thumbs, scores, chosen, rows, timings)

    # ------------------------------------------------------------------ the page's files (sam_demo.routes)
    def is_encoded(self, key: str) -> bool:
        """Whether image ``key``'s embedding is in the cache now (an upload's second step has run)."""
        return key in self._images

    def embedding(self, key: str) -> ImageEmbedding | None:
        """The embedding of image ``key`` (encoded again after an eviction), or None when this server does not
        know the image (the page's decoder fetches it: :mod:`sam_demo.page_decoder`)."""
        record = self._records.get(key)
        if record is None or record.model:  # the page's decoder is the default model's: another model's
            return None                     # embedding would preview wrong masks (the page then shows none)
        return self.cached_image(record).embedding

    def display_jpeg(self, key: str) -> bytes | None:
        """The display copy of image ``key`` as a JPEG, or None when this server does not know the image."""
        record = self._records.get(key)
        if record is None:
            return None

        def make() -> bytes:
            return _jpeg(self.display_rgb(record), DISPLAY_JPEG_QUALITY)

        return self._files.get_or_create(("display", record.content_key), make)[0]  # the same for every model

    def full_jpeg(self, key: str) -> bytes | None:
        """The upright original of image ``key`` at full resolution as a JPEG (made on first request), or None.

        Raises:
            InvalidImageError: the uploaded file is gone or changed.
        """
        record = self._records.get(key)
        if record is None:
            return None
        if record.frame.is_identity:
            return self.display_jpeg(key)

        def make() -> bytes:
            with self.intake.turn():  # one full-size decode in memory per intake slot, like an upload
                return _jpeg(self._reload(record), FULL_JPEG_QUALITY)

        return self._files.get_or_create(("full", key), make)[0]

    def layer_png(self, key: str, layer_id: str) -> bytes | None:
        """A mask layer's PNG by its id, if it belongs to image ``key``; drawn again after an eviction.

        ``None`` when the id is unknown here (never issued, or its spec was evicted: the page then asks
        for a fresh scene), belongs to another image, or the mask is empty.
        """
        spec = self._layer_specs.get(layer_id)
        if spec is None or spec.image_key != key:
            return None
        found = self._layers.get(layer_id)
        if found is None:
            record = self._records.get(key)
            if record is None:
                return None
            result = self.results(record, [spec.prompts], [spec.crop])[0]
            found = self.layer(record, spec.prompts, spec.candidate, result, spec.crop, spec.strokes)[1]
        return found.png or None

    # ------------------------------------------------------------------ files
    def export(self, record: ImageRecord, editor: Editor, out_dir: str | os.PathLike, *,
               progress: Progress = _no_progress, tolerance: float = vector.DEFAULT_TOLERANCE) -> list[Path]:
        """Write every object's mask at the original resolution, plus a label map, cut-out, COCO RLE, the visible
        objects' polygons (GeoJSON, YOLO-seg, COCO polygons, SVG; simplified by ``tolerance`` original pixels, 0 =
        exact) and the prompts file.

        ``progress(fraction, message)`` is called after each object's mask file
        (an export of 175 objects of a 12 MP photo takes about a minute on 2 cores).

        Returns:
            The written files; the last one is a zip holding all the others.

        Raises:
            InvalidPromptError: no object has prompts yet, or the tolerance is not a number of pixels in range.
        """
        try:
            tolerance = vector.check_tolerance(tolerance)
        except ValueError as exc:
            raise InvalidPromptError(str(exc)) from None
        active = [o for o in editor.objects if not o.prompts.is_empty]
        if not active:
            raise InvalidPromptError("Nothing to export yet: add a point or a box first.")
        progress(0.0, f"Exporting {len(active)} object{'s' if len(active) != 1 else ''}")
        rgb = self._reload(record)
        results = self.object_results(record, active)

        def step(done: int, total: int) -> None:
            progress(done / (total + 1), f"Mask {done} of {total} written")

        return bundle.write_bundle(out_dir, record.name, Path(record.path).name, record.content_key, rgb, editor,
                                   active, results, step=step, tolerance=tolerance,
                                   model=self.predictor_for(record.model).info.model)

    def load_prompts_file(self, record: ImageRecord, path: str | os.PathLike) -> Editor:
        """An editor from a prompts file saved by :meth:`export` for the same image.

        Files saved before the key was the file's hash (:func:`file_key`) name the image by its pixels'
        (:func:`image_key`): those are checked against the pixels, read again from the file (once, ~0.1 s).
        """
        return bundle.read_prompts_file(path, record.original_hw, record.content_key,
                                        pixels_sha256=lambda: image_key(self._reload(record)))

    # ------------------------------------------------------------------ stateless API
    def segment(self, path: str | os.PathLike, objects: Sequence[Prompts],
                refine_objects: Sequence[bool] | None = None, *, output: str = SEGMENT_RLE,
                tolerance: float = vector.DEFAULT_TOLERANCE) -> dict[str, Any]:
        """Image + prompts → masks and scores, without any per-user state (the public API).

        Args:
            path: the image file.
            objects: each object's prompts in original pixels.
            refine_objects: per object, whether to refine it in a crop at full resolution
                (:mod:`sam_onnx.refine`: one more encoder run each); default none.
            output: :data:`SEGMENT_RLE` (each best mask as COCO RLE, exact) or :data:`SEGMENT_POLYGONS` (as a
                GeoJSON ``MultiPolygon`` in pixel-edge coordinates with every part and hole,
                :func:`sam_onnx.vector.mask_polygons`).
            tolerance: polygon simplification in original pixels (0 = exact); polygons only.

        Returns:
            JSON-ready dict: image size, model, and per object the 3 scores, the
            best index, the object score, area, tight box and the best mask
            (``mask_rle`` or ``polygons``) at the original resolution; for an object
            asked to be refined, ``refined`` (and ``crop``, ``[x0, y0, x1, y1]``), or
            ``refined: false`` with a ``refine_note`` saying why it could not be (an
            empty mask, one that spans the image): its whole-image mask is given then.

        Its cost is bounded before any work: at most :data:`~sam_demo.editor.MAX_OBJECTS`
        objects, :data:`MAX_SEGMENT_MEGAPIXELS` of full-resolution masks
        (objects × the image's size, read from the file's header) and
        :data:`MAX_SEGMENT_REFINES` refined objects, and every prompt inside the
        image. The decoder runs one object at a time in fair turns, each crop's
        encoder run in an encoder turn, and nothing is cached but the whole
        image's embedding (a stateless call would only push out the interactive
        users' results).

        Raises:
            InvalidPromptError: no objects, too many, too much mask area, too many refines, a prompt outside
                the image, an unknown output or tolerance, or an answer over :data:`MAX_SEGMENT_RESPONSE_BYTES`.
            InvalidImageError: the file is not a usable image.
        """
        if output not in SEGMENT_OUTPUTS:
            raise InvalidPromptError(f"format must be one of {', '.join(SEGMENT_OUTPUTS)}, got {short_repr(output)}.")
        try:
            tolerance = vector.check_tolerance(tolerance)
        except ValueError as exc:
            raise InvalidPromptError(str(exc)) from None
        limits.check_object_count(len(objects))
        refine_objects = [False] * len(objects) if refine_objects is None else [bool(r) for r in refine_objects]
        if len(refine_objects) != len(objects):
            raise ValueError("one refine flag per object")
        if sum(refine_objects) > MAX_SEGMENT_REFINES:
            raise InvalidPromptError(f"{sum(refine_objects)} objects ask to be refined; one request may refine at "
                                     f"most {MAX_SEGMENT_REFINES} (each is one more encoder run).")
        width, height = image_size(path, limits=self.open_limits)
        too_big = big_photos.segment_size_message(width, height, self.limits)
        if too_big is not None:
            raise InvalidImageError(too_big)
        megapixels = len(objects) * width * height / 1e6
        if megapixels > MAX_SEGMENT_MEGAPIXELS:
            most = max(1, int(MAX_SEGMENT_MEGAPIXELS * 1e6 // (width * height)))
            raise InvalidPromptError(
                f"{len(objects)} masks of a {width}×{height} image are {megapixels:.0f} megapixels; one request may "
                f"ask for {MAX_SEGMENT_MEGAPIXELS}. Send at most {most} objects per request for this image.")
        record, info = self.open_image(path)
        for prompts in objects:
            prompts.check_inside(record.original_hw)
        embedding = self.cached_image(record).embedding
        h, w = record.original_hw
        out_objects = []
        answer_bytes = 0
        rgb: NDArray[np.uint8] | None = None  # read once, for the crops of refined objects
        for prompts, refined in zip(objects, refine_objects):
            extra: dict[str, Any] = {}
            result = self.decode(embedding, [prompts])[0]
            if refined:
                try:
                    crop = refine.crop_for(result, prompts)
                except InvalidPromptError as exc:
                    extra = {"refined": False, "refine_note": str(exc)}
                else:
                    if rgb is None:
                        with self.intake.turn():
                            rgb = self._reload(record)
                    prepared = preprocess_crop(rgb, crop)
                    with self.encoder_gate.turn():
                        crop_embedding = self.predictor.encode_pixels(*prepared)
                    del prepared
                    result = self.decode(crop_embedding, [prompts])[0]
                    extra = {"refined": True, "crop": list(crop.box)}
            with self.compute.turn():  # the full-resolution mask and its RLE/polygons: one piece
                mask = result.best_mask
                fields = {"area": export.mask_area(mask), "bbox": export.mask_bbox(mask)}
                if output == SEGMENT_RLE:
                    fields["mask_rle"] = export.encode_rle(mask)
                    size = len(fields["mask_rle"]["counts"])
                else:
                    fields["polygons"] = vector.geojson_geometry(vector.mask_polygons(mask, tolerance=tolerance))
                    size = len(json.dumps(fields["polygons"], separators=(",", ":")))
            answer_bytes += size + 512
            if answer_bytes > MAX_SEGMENT_RESPONSE_BYTES:
                raise InvalidPromptError(
                    f"The masks are too detailed to send in one answer (over "
                    f"{MAX_SEGMENT_RESPONSE_BYTES // _MB} MB after {len(out_objects)} objects); "
                    "send fewer objects per request" + (" or a larger tolerance." if output != SEGMENT_RLE else "."))
            out_objects.append({
                "prompts": prompts.to_dict(),
                "scores": [round(float(s), 6) for s in result.scores],
                "best_index": result.best_index,
                "object_score": round(result.object_score, 6),
                **fields,
                **extra,
            })
        answer = {"width": w, "height": h, "image_sha256": record.content_key, "model": self.model_summary(),
                  "encode_cache_hit": info["cache_hit"], "format": output, "objects": out_objects}
        if output == SEGMENT_POLYGONS:
            answer["tolerance_px"] = tolerance
            answer["coordinates"] = "pixel edges: (0, 0) = the image's top-left corner, x right, y down"
        return answer

    # ------------------------------------------------------------------ segment everything
    def everything_estimate(self, record: ImageRecord, preset: str,
                            who: Hashable | None = None) -> jobs.EverythingEstimate:
        """Up-front cost of segment-everything with a preset, from this server's measured speeds and the work other
        users than ``who`` (default: :func:`sam_demo.fair.owner`, the tab asking) did in the last
        :data:`~sam_demo.jobs.LOAD_WINDOW_S` seconds (:func:`sam_demo.jobs.load_factor`)."""
        who = fair.owner() if who is None else who
        compute_share, owners = self.compute.others_share(who, jobs.LOAD_WINDOW_S)
        encoder_share, _ = self.encoder_gate.others_share(who, jobs.LOAD_WINDOW_S)
        return jobs.estimate(preset, record.original_hw, self.speed, jobs.Load(compute_share, owners, encoder_share))

    def segment_everything(self, record: ImageRecord, preset: str, *,
                           progress: Callable[[int, int], None] | None = None,
                           cancel: Callable[[], bool] | None = None,
                           abort: Abort | None = None) -> list[jobs.FoundObject]:
        """Automatic masks for the whole image, as prompts for new objects (see :func:`sam_demo.jobs.found_objects`).

        ``cancel`` is checked between decoder calls; ``abort`` (its flag is the default ``cancel``) also stops
        a crop's encoder run at once (the thorough preset encodes crops).

        Raises:
            amg.Cancelled: ``cancel()`` returned True between decoder calls.
            Aborted: ``abort`` was set during a crop's encoder run or while it waited for one.
        """
        if cancel is None and abort is not None:
            cancel = abort.is_set
        settings = jobs.preset(preset)
        embedding = self.cached_image(record).embedding
        # Crop layers need the pixels: read the file again rather than keep every image's pixels in memory.
        source = self._reload(record) if settings.crop_n_layers else embedding
        plan = amg.make_plan(settings, record.original_hw)
        report = progress or (lambda done, total: None)
        stop = cancel or (lambda: False)
        started = time.perf_counter()
        grid_done = [started]  # when the last decoder call's masks were screened (then the finish starts)
        # The whole run holds a turn (decoder calls and the screening of their masks, both CPU-heavy) and hands
        # it over between decoder calls whenever another user waits.
        with self.compute.turn() as turn:
            turns = _FairTurns(self, turn, self.predictor_for(record.model), abort)

            def shared_progress(done: int, total: int) -> None:
                turn.share()
                report(done, total)
                grid_done[0] = time.perf_counter()

            masks = amg.generate(turns, source, settings,  # type: ignore[arg-type]
                                 embedding=embedding if settings.crop_n_layers else None, progress=shared_progress,
                                 cancel=lambda: (turn.share(), stop())[1])
            waited = turn.waited
        ended = time.perf_counter()
        h, w = record.original_hw
        self.speed.record_everything(grid_done[0] - started - turns.encode_seconds - waited, plan.points,
                                     ended - grid_done[0], len(masks), h * w / 1e6)
        seconds = ended - started
        logger.info("segment everything (%s) on %s: %d masks in %.1f s", preset, record.key[:12], len(masks), seconds)
        return jobs.found_objects(masks, record.original_hw)

    def warm_up(self) -> None:
        """Run the model once at start, so the first user waits for no first-run costs and the first
        estimates use this machine's measured speeds: one encoder run on a small image, one decoder call,
        and segment everything on a 2×2 grid of it (its decoder calls and the screening of their masks,
        which costs more than the decoder for noisy masks)."""
        rgb = np.zeros((WARM_UP_SIDE, WARM_UP_SIDE, 3), np.uint8)
        started = time.perf_counter()
        embedding = self.predictor.encode(rgb)
        self.speed.record_encode(time.perf_counter() - started)
        self.decode(embedding, [Prompts((Point(WARM_UP_SIDE / 2, WARM_UP_SIDE / 2),))])
        settings = replace(jobs.preset(amg.DEFAULT_PRESET), points_per_side=WARM_UP_GRID, crop_n_layers=0)
        grid_started = time.perf_counter()
        amg.generate(self.predictor, embedding, settings)  # before serving: nobody to share turns with
        self.speed.record_everything(time.perf_counter() - grid_started, WARM_UP_GRID ** 2)
        for name in self.model_names[1:]:  # the other models' first-run costs too (not measured: the default's are)
            other = self.models[name]
            other.decode(other.encode(rgb), Prompts((Point(WARM_UP_SIDE / 2, WARM_UP_SIDE / 2),)))
        logger.info("warm-up %.2f s (encoder %.2f s, decoder %.0f ms per object, segment everything %.0f ms per "
                    "grid point)", time.perf_counter() - started, self.speed.encode_seconds,
                    self.speed.decode_seconds_per_object * 1e3, self.speed.measured("grid_per_point") * 1e3)

    def use_predictor(self, predictor: Sam2Predictor) -> None:
        """Run the default model on ``predictor`` from now on (``auto``'s background check switching engines)."""
        if self.default_model:
            self.models[self.default_model] = predictor
        self.predictor = predictor

    def start_encoder_check(self, *, table=None) -> EncoderCheck | None:
        """Start ``auto``'s pending check in the background (:mod:`sam_demo.encoder_check`), if there is one.

        Call it once the app serves: the check runs behind every user's work, and a faster engine it finds
        replaces fp32 between two encoder runs. ``table`` (variants by name) is for tests.
        """
        decision = self.predictor.decision
        if self.encoder_check is None and decision is not None and decision.pending is not None:
            self.encoder_check = EncoderCheck(self, table=table).start()
        return self.encoder_check

    # ------------------------------------------------------------------ info
    def model_summary(self, model: str = "") -> dict[str, Any]:
        """The model facts users and API clients see, for ``model`` (``""`` = the default; ``record.model`` of an
        image); ``encoder_check`` says while the default model's background check runs."""
        summary = self.predictor_for(model).info.summary()
        if self.encoder_check is not None and self.encoder_check.running and not self._model_name(model):
            summary["encoder_check"] = "running"
        return summary

    @property
    def model_names(self) -> tuple[str, ...]:
        """The models a user may choose between, default first; empty when there is only one."""
        if len(self.models) < 2:
            return ()
        return (self.default_model, *(n for n in self.models if n != self.default_model))

    def _model_name(self, model: str) -> str:
        """``model`` as records name it: ``""`` for the default model (also when asked for by name)."""
        return "" if not model or model == self.default_model else model

    def predictor_for(self, model: str = "") -> Sam2Predictor:
        """The predictor of ``model`` (``""`` or the default's name = the default).

        Raises:
            InvalidPromptError: this server has no such model (the message names the ones it has).
        """
        if not model or model == self.default_model:
            return self.predictor
        found = self.models.get(model)
        if found is None:
            have = ", ".join(self.model_names) or "only its default model"
            raise InvalidPromptError(f"This server has no model {short_repr(model)}; it has {have}.")
        return found

    def switch_model(self, record: ImageRecord, model: str, *, progress: Progress = _no_progress,
                     abort: Abort | None = None) -> tuple[ImageRecord, dict]:
        """The same image encoded with another model (from the cache, or the file read and encoded again).

        The editor's prompts stay valid as they are: they are in original pixels, which no model changes.

        Raises:
            InvalidPromptError: ``model`` is not one of this server's models.
            InvalidImageError: the uploaded file is gone or changed.
        """
        self.predictor_for(model)  # fail before any work
        if not Path(record.path).is_file():
            raise InvalidImageError("This image is no longer on the server; please upload it again.")
        new, info = self.open_image(record.path, model=model, progress=progress, abort=abort)
        if new.content_key != record.content_key:
            raise InvalidImageError("This image changed on the server; please upload it again.")
        return new, info

    def cache_stats(self) -> dict[str, Any]:
        return {"images": self._images.stats().__dict__, "results": self._results.stats().__dict__}
