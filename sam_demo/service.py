"""The shared engine of the demo: image intake, caches, decoding, the stateless API, segment everything.

No UI code: a front end (the Gradio app, a test, a benchmark) keeps a small
:class:`ImageRecord` and an :class:`~sam_demo.editor.Editor` per user and
calls this service, which is shared by all users and thread-safe. Drawing is
in :mod:`sam_demo.view`, the files users download and load in
:mod:`sam_demo.bundle`, estimates and cancel flags in :mod:`sam_demo.jobs`.

Memory is bounded by construction: embeddings and display images live in one
process-wide LRU keyed by the image's content hash, decoder results in
another keyed by (image, prompts); nothing large is kept per user. A cache
miss (eviction) is handled by re-reading the image file and encoding again.

Frames: ``ImageRecord.frame`` maps display pixels (what the UI shows and
reports clicks in) to original pixels (what prompts and exports use).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from sam_onnx import amg, export
from sam_onnx.errors import InvalidImageError, InvalidPromptError, SamOnnxError
from sam_onnx.geometry import DisplayFrame, Geometry
from sam_onnx.image import DEFAULT_LIMITS, ImageLimits, load_image
from sam_onnx.predictor import Sam2Predictor
from sam_onnx.preprocess import preprocess_image
from sam_onnx.types import ImageEmbedding, MaskResult, Prompts

from . import bundle, jobs, view
from .cache import BoundedCache
from .editor import MAX_OBJECTS, Editor
from .view import View, ViewOptions

logger = logging.getLogger(__name__)

DEFAULT_DISPLAY_SIDE = 1536
"""Long side of the image the UI shows; clicks come back in this frame."""
DEFAULT_IMAGE_CACHE_MB = 1024
DEFAULT_RESULT_CACHE_MB = 256
_MB = 1024 * 1024

Progress = Callable[[float, str], None]


def _no_progress(fraction: float, message: str) -> None:
    return None


@dataclass(frozen=True)
class ImageRecord:
    """What a user's state remembers about its image (small; no pixels).

    Attributes:
        key: SHA-256 of the upright RGB pixels and their shape (the cache key).
        path: file to re-read the image from (re-encode after eviction, exports).
        name: a file-name-safe stem for exported files.
        frame: original ↔ display pixel mapping.
        notes: user-facing notes from loading (EXIF rotation, first frame...).
    """

    key: str
    path: str
    name: str
    frame: DisplayFrame
    notes: tuple[str, ...] = ()

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


def image_key(rgb: NDArray[np.uint8]) -> str:
    """Content hash of an image: same pixels, same key, whatever the file format was."""
    digest = hashlib.sha256(f"{rgb.shape}".encode())
    digest.update(np.ascontiguousarray(rgb).data)
    return digest.hexdigest()


API_PROMPTS_FORMAT = 'prompts must be JSON: a list of {"points": [[x, y, label]], "box": [x0, y0, x1, y1]}.'
"""The message for a ``/segment`` prompts value that is not of the documented shape."""


def segment_objects_from_json(value: Any) -> list[Prompts]:
    """The objects of a ``/segment`` request: a JSON string or the parsed value.

    The value is a list of ``{"points": [[x, y, label], ...], "box": [x0, y0, x1, y1] | null}``
    in original pixels; a single object may be given without the list.

    Raises:
        InvalidPromptError: with a message saying what is wrong.
    """
    try:
        data = json.loads(value) if isinstance(value, str) else value
        if isinstance(data, dict):
            data = [data]
        if not isinstance(data, list):
            raise InvalidPromptError("prompts must be a list of objects with 'points' and/or 'box'.")
        return [Prompts.from_dict(item) for item in data]
    except SamOnnxError:
        raise
    except (ValueError, TypeError):
        raise InvalidPromptError(API_PROMPTS_FORMAT) from None


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
    """

    def __init__(self, predictor: Sam2Predictor, *, display_max_side: int = DEFAULT_DISPLAY_SIDE,
                 image_cache_mb: int = DEFAULT_IMAGE_CACHE_MB, result_cache_mb: int = DEFAULT_RESULT_CACHE_MB,
                 limits: ImageLimits = DEFAULT_LIMITS) -> None:
        self.predictor = predictor
        self.display_max_side = display_max_side
        self.limits = limits
        self._images: BoundedCache[CachedImage] = BoundedCache(image_cache_mb * _MB, lambda v: v.nbytes)
        self._results: BoundedCache[MaskResult] = BoundedCache(result_cache_mb * _MB,
                                                               lambda r: r.low_res_logits.nbytes + 64)
        self.speed = jobs.SpeedMeter()
        self.cancels = jobs.CancelRegistry()

    # ------------------------------------------------------------------ images
    def open_image(self, path: str | os.PathLike, *, progress: Progress = _no_progress) -> tuple[ImageRecord, dict]:
        """Load, check and encode an uploaded image (or find it in the cache).

        Returns:
            The record for the user's state, and timings/cache info.

        Raises:
            InvalidImageError: the file is not a usable image.
        """
        started = time.perf_counter()
        progress(0.05, "Reading the image")
        loaded = load_image(path, limits=self.limits)
        loaded_at = time.perf_counter()
        frame = DisplayFrame.fit(loaded.rgb.shape[:2], self.display_max_side)
        progress(0.2, "Encoding the image (runs once per image)")
        # Critical path: preprocess -> encoder on this thread. The content hash and then the display
        # copies run on the second core meanwhile (single-threaded Pillow/hashlib work, GIL released);
        # on a cache hit the preprocessing was wasted, ~70 ms at 12 MP.
        pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="upload")
        try:
            key_future = pool.submit(image_key, loaded.rgb)
            display_future = pool.submit(view.display_images, loaded.rgb, frame)
            prepared = preprocess_image(loaded.rgb)
            key = key_future.result()
            _, cached = self._images.get_or_create(key, lambda: self._encode(prepared, display_future))
        finally:
            pool.shutdown(wait=False, cancel_futures=True)
        done = time.perf_counter()
        progress(1.0, "Ready")
        record = ImageRecord(key, str(path), _safe_stem(str(path)), frame, loaded.notes)
        info = {"load_ms": (loaded_at - started) * 1e3, "encode_ms": (done - loaded_at) * 1e3, "cache_hit": cached}
        logger.info("image %s %s: %s", key[:12], loaded.rgb.shape[:2], info)
        return record, info

    def _encode(self, prepared: tuple[NDArray[np.float32], Geometry], display: Future) -> CachedImage:
        """The cache entry of an image: run the encoder on prepared input, pair it with the display copies.

        ``display`` is the future of :func:`sam_demo.view.display_images`, computed on another core meanwhile.
        """
        started = time.perf_counter()
        embedding = self.predictor.encode_pixels(*prepared)
        self.speed.record_encode(time.perf_counter() - started)
        return CachedImage(embedding, *display.result())

    def cached_image(self, record: ImageRecord) -> CachedImage:
        """The embedding and display image, encoding the image again transparently after an eviction."""
        found = self._images.get(record.key)
        if found is not None:
            return found

        def reencode() -> CachedImage:
            logger.info("image %s was evicted; encoding it again", record.key[:12])
            rgb = self._reload(record)
            # The display copies (Pillow, single-threaded, GIL released) are made on the second core while
            # the preprocessing runs on this one: 60-200 ms off an upload (bench/README.md).
            with ThreadPoolExecutor(max_workers=1, thread_name_prefix="display-copy") as pool:
                display = pool.submit(view.display_images, rgb, record.frame)
                return self._encode(preprocess_image(rgb), display)

        return self._images.get_or_create(record.key, reencode)[0]

    def _reload(self, record: ImageRecord) -> NDArray[np.uint8]:
        """The original ``(H, W, 3)`` uint8 pixels, read again from the uploaded file and checked against the key."""
        if not Path(record.path).is_file():
            raise InvalidImageError("This image is no longer on the server; please upload it again.")
        rgb = load_image(record.path, limits=self.limits).rgb
        if image_key(rgb) != record.key:
            raise InvalidImageError("This image changed on the server; please upload it again.")
        return rgb

    # ------------------------------------------------------------------ masks
    def results(self, record: ImageRecord, objects: Sequence[Prompts]) -> list[MaskResult]:
        """Decoder results for each object's prompts (cached; misses decoded in one batched call)."""
        keys = [(record.key, p) for p in objects]
        found = [self._results.get(k) for k in keys]
        missing = [i for i, r in enumerate(found) if r is None]
        if missing:
            embedding = self.cached_image(record).embedding
            started = time.perf_counter()
            decoded = self.predictor.decode_many(embedding, [objects[i] for i in missing])
            self.speed.record_decode(time.perf_counter() - started, len(missing))
            for i, result in zip(missing, decoded):
                found[i] = self._results.put(keys[i], result)
        return found  # type: ignore[return-value]

    def render(self, record: ImageRecord, editor: Editor, options: ViewOptions = ViewOptions()) -> View:
        """Decode what changed and draw every visible object on the display image."""
        t0 = time.perf_counter()
        cached = self.cached_image(record)
        active = [o for o in editor.objects if not o.prompts.is_empty]
        results = dict(zip((o.id for o in active), self.results(record, [o.prompts for o in active])))
        t1 = time.perf_counter()
        shown = view.draw(cached.display_rgb, cached.thumbnail_rgb, record.frame, editor, results, options)
        shown.timings_ms.update(decode_ms=(t1 - t0) * 1e3, render_ms=(time.perf_counter() - t1) * 1e3)
        return shown

    # ------------------------------------------------------------------ files
    def export(self, record: ImageRecord, editor: Editor, out_dir: str | os.PathLike) -> list[Path]:
        """Write every object's mask at the original resolution, plus a label map, cut-out, COCO RLE and prompts.

        Returns:
            The written files; the last one is a zip holding all the others.

        Raises:
            InvalidPromptError: no object has prompts yet.
        """
        active = [o for o in editor.objects if not o.prompts.is_empty]
        if not active:
            raise InvalidPromptError("Nothing to export yet: add a point or a box first.")
        rgb = self._reload(record)
        results = self.results(record, [o.prompts for o in active])
        return bundle.write_bundle(out_dir, record.name, Path(record.path).name, record.key, rgb, editor, active,
                                   results)

    def load_prompts_file(self, record: ImageRecord, path: str | os.PathLike) -> Editor:
        """An editor from a prompts file saved by :meth:`export` for the same image."""
        return bundle.read_prompts_file(path, record.original_hw, record.key)

    # ------------------------------------------------------------------ stateless API
    def segment(self, path: str | os.PathLike, objects: Sequence[Prompts]) -> dict[str, Any]:
        """Image + prompts → masks and scores, without any per-user state (the public API).

        Returns:
            JSON-ready dict: image size, model, and per object the 3 scores, the
            best index, the object score and the best mask as COCO RLE at the
            original resolution.
        """
        if not objects:
            raise InvalidPromptError("Give at least one object with points or a box.")
        if len(objects) > MAX_OBJECTS:  # each costs ~0.8 MB of logits until the answer is built
            raise InvalidPromptError(f"At most {MAX_OBJECTS} objects per request (got {len(objects)}).")
        record, info = self.open_image(path)
        results = self.results(record, objects)
        h, w = record.original_hw
        out_objects = []
        for prompts, result in zip(objects, results):
            fields = export.coco_mask_fields(result.best_mask)
            out_objects.append({
                "prompts": prompts.to_dict(),
                "scores": [round(float(s), 6) for s in result.scores],
                "best_index": result.best_index,
                "object_score": round(result.object_score, 6),
                "area": fields["area"],
                "bbox": fields["bbox"],
                "mask_rle": fields["segmentation"],
            })
        return {"width": w, "height": h, "image_sha256": record.key, "model": self.model_summary(),
                "encode_cache_hit": info["cache_hit"], "objects": out_objects}

    # ------------------------------------------------------------------ segment everything
    def everything_estimate(self, record: ImageRecord, preset: str) -> jobs.EverythingEstimate:
        """Up-front cost of segment-everything with a preset, from this server's measured speeds."""
        return jobs.estimate(preset, record.original_hw, self.speed)

    def segment_everything(self, record: ImageRecord, preset: str, *,
                           progress: Callable[[int, int], None] | None = None,
                           cancel: Callable[[], bool] | None = None) -> list[jobs.FoundObject]:
        """Automatic masks for the whole image, as prompts for new objects (see :func:`sam_demo.jobs.found_objects`).

        Raises:
            amg.Cancelled: ``cancel()`` returned True.
        """
        settings = jobs.preset(preset)
        embedding = self.cached_image(record).embedding
        # Crop layers need the pixels: read the file again rather than keep every image's pixels in memory.
        source = self._reload(record) if settings.crop_n_layers else embedding
        started = time.perf_counter()
        masks = amg.generate(self.predictor, source, settings, embedding=embedding if settings.crop_n_layers else None,
                             progress=progress, cancel=cancel)
        logger.info("segment everything (%s) on %s: %d masks in %.1f s", preset, record.key[:12], len(masks),
                    time.perf_counter() - started)
        return jobs.found_objects(masks, record.original_hw)

    # ------------------------------------------------------------------ info
    def model_summary(self) -> dict[str, Any]:
        return self.predictor.info.summary()

    def cache_stats(self) -> dict[str, Any]:
        return {"images": self._images.stats().__dict__, "results": self._results.stats().__dict__}
