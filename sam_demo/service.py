"""The interactive segmentation service behind the demo: images, caches, rendering, exports.

No UI code: a front end (the Gradio app, a test, a benchmark) keeps a small
:class:`ImageRecord` and an :class:`~sam_demo.editor.Editor` per user and
calls this service, which is shared by all users and thread-safe.

Memory is bounded by construction: embeddings and display images live in one
process-wide LRU keyed by the image's content hash, decoder results in
another keyed by (image, prompts); nothing large is kept per user. A cache
miss (eviction) is handled by re-reading the image file and encoding again.

Frames: ``ImageRecord.display`` maps display pixels (what the UI shows and
reports clicks in) to original pixels (what prompts and exports use).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import threading
import time
import zipfile
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray
from PIL import Image

from sam_onnx import amg, export
from .cache import BoundedCache
from sam_onnx.errors import InvalidImageError, InvalidPromptError
from sam_onnx.geometry import DisplayFrame, Geometry
from sam_onnx.image import DEFAULT_LIMITS, ImageLimits, load_image
from .editor import MAX_OBJECTS, Editor, ObjectState
from .overlay import (
    THUMBNAIL_REDUCING_GAP,
    THUMBNAIL_SIDE,
    MaskLayer,
    candidate_thumbnails,
    color_for,
    render_overlay,
    thumbnail_hw,
)
from sam_onnx.postprocess import mask_crop_from_logits
from sam_onnx.predictor import Sam2Predictor
from sam_onnx.preprocess import preprocess_image
from sam_onnx.types import Box, ImageEmbedding, MaskResult, Point, Prompts

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
    """What a user's session remembers about its image (small; no pixels).

    Attributes:
        key: SHA-256 of the upright RGB pixels and their shape (the cache key).
        path: file to re-read the image from (re-encode after eviction, exports).
        name: a file-name-safe stem for exported files.
        display: original ↔ display pixel mapping.
        notes: user-facing notes from loading (EXIF rotation, first frame...).
    """

    key: str
    path: str
    name: str
    display: DisplayFrame
    notes: tuple[str, ...] = ()

    @property
    def original_hw(self) -> tuple[int, int]:
        return self.display.original_hw


@dataclass(frozen=True, eq=False)
class CachedImage:
    """The per-image data shared by every user who opens the same picture."""

    embedding: ImageEmbedding
    display_rgb: NDArray[np.uint8]  # (h, w, 3) in display pixels, read-only
    thumbnail_rgb: NDArray[np.uint8] | None = None  # display_rgb at candidate-thumbnail size, read-only

    @property
    def nbytes(self) -> int:
        small = 0 if self.thumbnail_rgb is None else self.thumbnail_rgb.nbytes
        return self.embedding.nbytes + self.display_rgb.nbytes + small


@dataclass(frozen=True)
class ObjectView:
    """One row of the object list."""

    id: int
    name: str
    color: tuple[int, int, int]
    visible: bool
    selected: bool
    has_prompts: bool
    score: float | None          # predicted IoU of the shown candidate
    candidate: int | None        # shown candidate 0..2 (None when no prompts)
    object_score: float | None   # probability that an object is there


@dataclass(frozen=True, eq=False)
class View:
    """Everything a UI needs to show after an edit."""

    overlay: NDArray[np.uint8]                 # (h, w, 3) display image with masks and markers
    thumbnails: tuple[NDArray[np.uint8], ...]  # the selected object's 3 candidates (empty if none)
    candidate_scores: tuple[float, ...]        # their IoU scores
    chosen_candidate: int | None
    objects: tuple[ObjectView, ...]
    timings_ms: dict[str, float]


def image_key(rgb: NDArray[np.uint8]) -> str:
    """Content hash of an image: same pixels, same key, whatever the file format was."""
    digest = hashlib.sha256(f"{rgb.shape}".encode())
    digest.update(np.ascontiguousarray(rgb).data)
    return digest.hexdigest()


def _safe_stem(path: str) -> str:
    stem = re.sub(r"[^A-Za-z0-9._-]+", "_", Path(path).stem).strip("._") or "image"
    return stem[:60]


def _display_copy(rgb: NDArray[np.uint8], frame: DisplayFrame) -> NDArray[np.uint8]:
    if frame.is_identity:
        out = np.array(rgb)
    else:
        h, w = frame.display_hw
        out = np.asarray(Image.fromarray(rgb).resize((w, h), Image.Resampling.BILINEAR))
    out.setflags(write=False)
    return out


def _thumbnail_base(display_rgb: NDArray[np.uint8]) -> NDArray[np.uint8]:
    """The display image at candidate-thumbnail size, exactly as ``candidate_thumbnails`` would shrink it.

    Made once per image instead of on every click (about 2 ms per click at 1536 px).
    """
    th, tw = thumbnail_hw(display_rgb.shape[:2], THUMBNAIL_SIDE)
    if (th, tw) == display_rgb.shape[:2]:
        return display_rgb
    small = np.asarray(Image.fromarray(display_rgb).resize((tw, th), Image.Resampling.BILINEAR,
                                                           reducing_gap=THUMBNAIL_REDUCING_GAP))
    small.setflags(write=False)
    return small


def _display_images(rgb: NDArray[np.uint8], frame: DisplayFrame) -> tuple[NDArray[np.uint8], NDArray[np.uint8]]:
    display = _display_copy(rgb, frame)
    return display, _thumbnail_base(display)


class SpeedMeter:
    """Moving averages of measured model speeds, for up-front time estimates (thread-safe)."""

    SMOOTHING = 0.3

    def __init__(self, decode_seconds: float = 0.05, encode_seconds: float = 2.5) -> None:
        self._decode = decode_seconds
        self._encode = encode_seconds
        self._lock = threading.Lock()

    def record_decode(self, seconds: float, objects: int) -> None:
        if objects > 0:
            with self._lock:
                self._decode += self.SMOOTHING * (seconds / objects - self._decode)

    def record_encode(self, seconds: float) -> None:
        with self._lock:
            self._encode += self.SMOOTHING * (seconds - self._encode)

    @property
    def decode_seconds_per_object(self) -> float:
        return self._decode

    @property
    def encode_seconds(self) -> float:
        return self._encode


class CancelRegistry:
    """Cancel flags of long runs (segment everything), keyed by a caller's token (e.g. a session id).

    Entries exist only while a run is in progress, so the registry stays as
    small as the number of concurrent runs.
    """

    def __init__(self) -> None:
        self._events: dict[str, threading.Event] = {}
        self._lock = threading.Lock()

    def start(self, token: str) -> threading.Event:
        event = threading.Event()
        with self._lock:
            self._events[token] = event
        return event

    def cancel(self, token: str) -> bool:
        """Ask the run of ``token`` to stop; False if none is running."""
        with self._lock:
            event = self._events.get(token)
        if event is None:
            return False
        event.set()
        return True

    def finish(self, token: str, event: threading.Event) -> None:
        with self._lock:
            if self._events.get(token) is event:
                del self._events[token]


@dataclass(frozen=True)
class EverythingEstimate:
    """What a segment-everything run will do, before it runs."""

    preset: str
    points: int
    decoder_calls: int
    encoder_runs: int
    seconds: float


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
        self.speed = SpeedMeter()
        self.cancels = CancelRegistry()

    # ------------------------------------------------------------------ images
    def open_image(self, path: str | os.PathLike, *, progress: Progress = _no_progress) -> tuple[ImageRecord, dict]:
        """Load, check and encode an uploaded image (or find it in the cache).

        Returns:
            The record for the user's session, and timings/cache info.

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
            display_future = pool.submit(_display_images, loaded.rgb, frame)
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
        """Run the encoder on prepared input and pair it with the display copies made elsewhere."""
        started = time.perf_counter()
        embedding = self.predictor.encode_pixels(*prepared)
        self.speed.record_encode(time.perf_counter() - started)
        return CachedImage(embedding, *display.result())

    def _build(self, rgb: NDArray[np.uint8], frame: DisplayFrame) -> CachedImage:
        # The display copies (Pillow, single-threaded, GIL released) are made on the second core while
        # the preprocessing runs on this one: 60-200 ms off an upload (bench/README.md).
        with ThreadPoolExecutor(max_workers=1, thread_name_prefix="display-copy") as pool:
            display = pool.submit(_display_images, rgb, frame)
            return self._encode(preprocess_image(rgb), display)

    def cached_image(self, record: ImageRecord) -> CachedImage:
        """The embedding and display image, re-encoding transparently after an eviction."""
        found = self._images.get(record.key)
        if found is not None:
            return found

        def rebuild() -> CachedImage:
            logger.info("image %s was evicted; encoding it again", record.key[:12])
            return self._build(self._reload(record), record.display)

        return self._images.get_or_create(record.key, rebuild)[0]

    def _reload(self, record: ImageRecord) -> NDArray[np.uint8]:
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

    def render(self, record: ImageRecord, editor: Editor, *, opacity: float = 0.5, contour: bool = True) -> View:
        """Decode what changed and draw every visible object on the display image."""
        t0 = time.perf_counter()
        cached = self.cached_image(record)
        active = [o for o in editor.objects if not o.prompts.is_empty]
        results = dict(zip((o.id for o in active), self.results(record, [o.prompts for o in active])))
        t1 = time.perf_counter()
        display = record.display
        hw = display.display_hw
        layers = []
        rows = []
        for obj in editor.objects:
            result = results.get(obj.id)
            visible = editor.is_visible(obj.id)
            color = color_for(obj.color_index)
            shown = None if result is None else (result.best_index if obj.candidate is None else obj.candidate)
            rows.append(ObjectView(obj.id, obj.name, color, visible, obj.id == editor.selected_id,
                                   result is not None, None if result is None else float(result.scores[shown]),
                                   shown, None if result is None else result.object_score))
            if visible and result is not None:
                layers.append(self._layer(obj, result, shown, display, color, obj.id == editor.selected_id))
        pending = None
        if editor.pending_corner is not None:
            pending = tuple(display.to_display_xy(editor.pending_corner).tolist())
        overlay = render_overlay(cached.display_rgb, layers, opacity=opacity, contour=contour, pending_corner=pending)
        thumbs: tuple[NDArray[np.uint8], ...] = ()
        scores: tuple[float, ...] = ()
        chosen = None
        selected = editor.selected
        if selected is not None and selected.id in results:
            result = results[selected.id]
            thumb_hw = thumbnail_hw(hw, THUMBNAIL_SIDE)
            base = cached.display_rgb if cached.thumbnail_rgb is None else cached.thumbnail_rgb
            thumbs = tuple(candidate_thumbnails(base, [result.mask(k, thumb_hw) for k in range(3)],
                                                color_for(selected.color_index), size=THUMBNAIL_SIDE))
            scores = tuple(float(s) for s in result.scores)
            chosen = result.best_index if selected.candidate is None else selected.candidate
        t2 = time.perf_counter()
        return View(overlay, thumbs, scores, chosen, tuple(rows),
                    {"decode_ms": (t1 - t0) * 1e3, "render_ms": (t2 - t1) * 1e3})

    @staticmethod
    def _layer(obj: ObjectState, result: MaskResult, candidate: int, display: DisplayFrame,
               color: tuple[int, int, int], selected: bool) -> MaskLayer:
        crop, offset = mask_crop_from_logits(result.low_res_logits[candidate], display.display_hw)
        points = tuple((*display.to_display_xy((p.x, p.y)).tolist(), p.label) for p in obj.prompts.points)
        box = None
        if obj.prompts.box is not None:
            b = obj.prompts.box
            corners = display.to_display_xy([[b.x0, b.y0], [b.x1, b.y1]])
            box = tuple(corners.ravel().tolist())
        return MaskLayer.from_crop(crop, offset, display.display_hw, color=color, selected=selected,
                                   points=points, box=box)

    # ------------------------------------------------------------------ exports
    def export(self, record: ImageRecord, editor: Editor, out_dir: str | os.PathLike) -> list[Path]:
        """Write every object's mask at the original resolution, plus a label map, cut-out, COCO RLE and session.

        Returns:
            The written files; the last one is a zip holding all the others.

        Raises:
            InvalidPromptError: no object has prompts yet.
        """
        active = [o for o in editor.objects if not o.prompts.is_empty]
        if not active:
            raise InvalidPromptError("Nothing to export yet: add a point or a box first.")
        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        rgb = self._reload(record)
        results = self.results(record, [o.prompts for o in active])
        masks = []
        files: list[Path] = []
        annotations = []
        for obj, result in zip(active, results):
            candidate = result.best_index if obj.candidate is None else obj.candidate
            mask = result.mask(candidate)
            masks.append(mask)
            path = out / f"{record.name}_object{obj.id}_mask.png"
            export.mask_image(mask).save(path, format="PNG")
            files.append(path)
            annotations.append(_coco_annotation(obj, result, candidate, mask, len(annotations) + 1))
        labels = out / f"{record.name}_labels.png"
        export.label_map_image(export.label_map(masks)).save(labels, format="PNG")
        visible = [m for o, m in zip(active, masks) if editor.is_visible(o.id)] or masks
        cut = out / f"{record.name}_cutout.png"
        export.cutout(rgb, np.logical_or.reduce(visible)).save(cut, format="PNG",
                                                               compress_level=export.CUTOUT_PNG_COMPRESS_LEVEL)
        h, w = record.original_hw
        coco = {"images": [{"id": 1, "file_name": Path(record.path).name, "width": w, "height": h,
                            "sha256": record.key}],
                "categories": [{"id": 1, "name": "object"}],
                "annotations": annotations,
                "label_map": {"file": labels.name, "values": {str(i + 1): o.name for i, o in enumerate(active)}}}
        coco_path = out / f"{record.name}_coco_rle.json"
        coco_path.write_text(json.dumps(coco, indent=1))
        session_path = out / f"{record.name}_prompts.json"
        session_path.write_text(json.dumps(editor.to_dict(image_sha256=record.key), indent=1))
        files += [labels, cut, coco_path, session_path]
        bundle = out / f"{record.name}_sam2_export.zip"
        with zipfile.ZipFile(bundle, "w", compression=zipfile.ZIP_DEFLATED) as zf:
            for f in files:  # PNGs are compressed already: store them, deflate only the JSON
                zf.write(f, f.name, compress_type=zipfile.ZIP_STORED if f.suffix == ".png" else None)
        return files + [bundle]

    def load_session(self, record: ImageRecord, data: bytes | str) -> Editor:
        """An editor from a prompts file saved by :meth:`export` for the same image."""
        try:
            parsed = json.loads(data)
        except (ValueError, UnicodeDecodeError):
            raise InvalidPromptError("The prompts file is not valid JSON.") from None
        editor = Editor.from_dict(parsed, record.original_hw)
        saved_hash = (parsed.get("image") or {}).get("sha256")
        if saved_hash and saved_hash != record.key:
            raise InvalidPromptError("These prompts were saved for a different image of the same size.")
        return editor

    # ------------------------------------------------------------------ stateless API
    def segment(self, path: str | os.PathLike, objects: Sequence[Prompts]) -> dict[str, Any]:
        """Image + prompts → masks and scores, without any session (the public API).

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
            mask = result.best_mask
            out_objects.append({
                "prompts": prompts.to_dict(),
                "scores": [round(float(s), 6) for s in result.scores],
                "best_index": result.best_index,
                "object_score": round(result.object_score, 6),
                "area": export.mask_area(mask),
                "bbox": export.mask_bbox(mask),
                "mask_rle": export.encode_rle(mask),
            })
        return {"width": w, "height": h, "image_sha256": record.key, "model": self.model_summary(),
                "encode_cache_hit": info["cache_hit"], "objects": out_objects}

    # ------------------------------------------------------------------ segment everything
    def everything_estimate(self, record: ImageRecord, preset: str) -> EverythingEstimate:
        """Up-front cost of segment-everything with a preset, from this server's measured speeds."""
        settings = _preset(preset)
        the_plan = amg.plan(settings, record.original_hw)
        seconds = amg.estimate_seconds(the_plan, self.speed.decode_seconds_per_object * settings.batch_size,
                                       self.speed.encode_seconds, image_encoded=True)
        return EverythingEstimate(preset, the_plan.points, the_plan.decoder_calls, the_plan.encoder_runs, seconds)

    def segment_everything(self, record: ImageRecord, preset: str, *,
                           progress: Callable[[int, int], None] | None = None,
                           cancel: Callable[[], bool] | None = None) -> list[tuple[Prompts, int | None]]:
        """Automatic masks for the whole image, as prompts for new objects.

        A mask found on the whole image becomes its grid point plus the chosen
        candidate, which reproduces it exactly and can be refined with more
        clicks. A mask found in a crop (the "thorough" preset) becomes its
        point plus its bounding box, the closest whole-image prompt.

        Raises:
            amg.Cancelled: ``cancel()`` returned True.
        """
        settings = _preset(preset)
        embedding = self.cached_image(record).embedding
        source = self._reload(record) if settings.crop_n_layers else embedding
        started = time.perf_counter()
        masks = amg.generate(self.predictor, source, settings, embedding=embedding if settings.crop_n_layers else None,
                             progress=progress, cancel=cancel)
        logger.info("segment everything (%s) on %s: %d masks in %.1f s", preset, record.key[:12], len(masks),
                    time.perf_counter() - started)
        h, w = record.original_hw
        out: list[tuple[Prompts, int | None]] = []
        for m in masks:
            if tuple(m.crop_box) == (0, 0, w, h):
                out.append((m.prompts, m.candidate))
            else:
                x, y, bw, bh = m.bbox
                out.append((Prompts((Point(*m.point_xy),), Box(x, y, x + bw, y + bh)), None))
        return out

    # ------------------------------------------------------------------ info
    def model_summary(self) -> dict[str, Any]:
        info = self.predictor.info
        return {"source": info.source, "providers": list(info.providers), "encoder_dtype": info.encoder_dtype,
                "threads": info.threads}

    def cache_stats(self) -> dict[str, Any]:
        return {"images": self._images.stats().__dict__, "results": self._results.stats().__dict__}


def _coco_annotation(obj: ObjectState, result: MaskResult, candidate: int, mask: NDArray[np.bool_],
                     ann_id: int) -> dict[str, Any]:
    return {
        "id": ann_id, "image_id": 1, "category_id": 1, "iscrowd": 0,
        "object_id": obj.id, "name": obj.name,
        "segmentation": export.encode_rle(mask),
        "area": export.mask_area(mask), "bbox": export.mask_bbox(mask),
        "score": round(float(result.scores[candidate]), 6),
        "candidate": candidate, "predicted_ious": [round(float(s), 6) for s in result.scores],
        "object_score": round(result.object_score, 6),
        "prompts": obj.prompts.to_dict(),
    }


def _preset(name: str) -> amg.EverythingSettings:
    try:
        return amg.PRESETS[name]
    except KeyError:
        raise InvalidPromptError(f"Unknown preset {name!r}; choose one of {', '.join(amg.PRESETS)}.") from None
