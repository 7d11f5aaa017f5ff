"""SAM 2.1 (ONNX on CPU; Hiera-Small by default, --model / --models for the other sizes) interactive segmentation
demo. UI only.

Every handler translates Gradio values into calls of the demo engine
(:mod:`sam_demo`) and the wrapper (:mod:`sam_onnx`) and back; the work (image
checks, caching, decoding, drawing, exports) happens there. Per-user state is
a small immutable :class:`AppState`; embeddings live in the service's
process-wide bounded cache.

Run ``python app.py --help`` for host, port and model options.
"""

from __future__ import annotations

import argparse
import functools
import inspect
import logging
import math
import os
import secrets
import shutil
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import Generic, TypeVar

import gradio as gr

from sam_demo import gc_pauses, page_decoder, previews, routes, scene
from sam_demo.editor import MAX_OBJECTS, Editor
from sam_demo.gradio_guard import SafeBlocks, guarded, request_limits_middleware, uploaded_image, user_error
from sam_demo.limits import api_request, parse_json
from sam_demo.page import (
    COLOUR_BOOT,
    COLOUR_TEMPLATE,
    CSS,
    HEAD,
    HELP,
    STATUS_ENGINE_CLASS,
    TITLE,
    UPLOAD_BOX_HEIGHT,
    VIEW_BOOT,
    VIEW_TEMPLATE,
)
from sam_demo.service import DEFAULT_DISPLAY_SIDE, DEFAULT_ENCODE_ZOOMED_VIEWS, RefineCancelled, Refinement, SEGMENT_OUTPUTS, SEGMENT_RLE, ImageRecord, SegmentationService
from sam_demo.view import View, ViewOptions
from sam_onnx import Abort, Aborted, CropFrame, InvalidPromptError, ModelLoadError, Sam2Predictor, SamOnnxError, amg, encoders, vector
from sam_onnx.encoders import ENCODER_ENV, encoder_choices
from sam_onnx.encoders.remote import BACKENDS as ENCODER_BACKENDS
from sam_onnx.encoders.remote import RemoteEncoder, encoder_for_backend
from sam_onnx.hub import MODEL_DIR_ENV, route_hub_logs_to_root
from sam_onnx.models import DEFAULT_MODEL, MODEL_ENV, model_choices, requested_model

MODELS_ENV = "SAM_APP_MODELS"
"""Environment variable of ``--models`` (several sizes users choose between, comma-separated)."""
from sam_onnx.strokes import Stroke
from sam_onnx.types import NEGATIVE, NUM_CANDIDATES, POSITIVE

logger = logging.getLogger("sam_app")

HERE = Path(__file__).resolve().parent
ASSETS = HERE / "assets"
EXPORT_ROOT = Path(tempfile.gettempdir()) / "sam2-demo-exports"
EXPORT_MAX_AGE_S = 3600

MODE_POSITIVE = "+ Include (positive point)"
MODE_NEGATIVE = "− Exclude (negative point)"
MODE_BOX = "Box (two corners)"
MODE_BRUSH = "Brush (paint onto the selected object)"
MODE_ERASER = "Eraser (erase from the selected object)"
MODES = (MODE_POSITIVE, MODE_NEGATIVE, MODE_BOX, MODE_BRUSH, MODE_ERASER)
MODE_LABELS = ("+ Include", "− Exclude", "▭ Box", "✎ Brush", "⌫ Eraser")
"""What the mode buttons show (the values stay MODES: the API and scripts pass those). The page's view tells the
modes apart by each label's first character (sam_demo/static/view/main.js, MODE_NAMES); in brush and eraser
modes the page paints strokes (sam_demo/static/view/brush.js) and sends them as ``stroke`` events."""
PAINT_MODES = (MODE_BRUSH, MODE_ERASER)

QUEUE_MAX_SIZE = 64
EDIT_QUEUE = "edit"        # clicks and every other state edit: ordered per browser tab (SafeBlocks), tabs in parallel
ENCODE_QUEUE = "encode"    # the upload box: one image read and encoded at a time (the engine also takes turns),
                           # or --ray-uploads at a time when a Ray Serve deployment encodes
DEFAULT_RAY_UPLOADS = 4
ENCODER_CHECKS = ("background", "start")
"""``--encoder-check``: when ``auto`` has no stored decision, check behind the users' work or before serving."""
EXPORT_QUEUE = "export"
EVERYTHING_QUEUE = "everything"  # automatic masks: seconds long, so not on the edit queue
REFINE_QUEUE = "refine"  # a refine's crop encode: a second or two, so not on the edit queue
ZOOM_QUEUE = "zoom"  # a zoomed view's encode, ahead of its clicks, at the lowest priority
SEGMENT_QUEUE = "segment"  # the stateless /segment API: its own queue, one request at a time
EDIT_CONCURRENCY = None
"""Edits of different tabs run side by side: each tab's own edits wait for each other
(``SafeBlocks.order_per_session``) and the engine shares the CPU between tabs in short turns
(``sam_demo.fair``), so no tab's work holds another's click."""
BUSY_NOTE_FACTOR = 1.2
"""The estimate says other users' work slows it when it does by this much or more."""
PROGRESS_INTERVAL_S = 0.5
"""Least time between two progress messages of a long run (segment everything sends one per decoder call
otherwise: hundreds, which kept a loaded browser from reacting to a new upload for seconds)."""
STATE_TTL_S = 3600
"""Seconds a browser tab's state lives after its last event (Gradio's ``time_to_live``)."""
MAX_FILE_SIZE = "20mb"
DETAIL_MAX = 10.0
"""Largest tolerance the detail slider offers (original pixels; the API takes up to vector.MAX_TOLERANCE)."""
DETAIL_STEP = 0.1


@dataclass(frozen=True)
class AppState:
    """Per-user state: the image record, the editor and the browser tab's id (small values only).

    ``tab`` names the tab in the service's grants (:mod:`sam_demo.grants`): the scene carries that tab's
    token for the image, with which the page fetches the image's files.
    """

    record: ImageRecord
    editor: Editor
    tab: str
    view: tuple[float, float, float, float] | None = None
    """What the zoomed view shows (``zoomed`` events: original pixel edges), or None when not zoomed in."""
    view_crop: CropFrame | None = None
    """That view's crop once its embedding is ready (``encode_zoomed``): clicks in it decode there."""


T = TypeVar("T")


@dataclass(frozen=True)
class Outputs(Generic[T]):
    """What every edit updates, declared once: the components in ``build_demo`` and a handler's values.

    Handlers return ``Outputs(...).as_list()``; ``build_demo`` registers
    ``Outputs(component, ...).as_list()``; :data:`OUTPUT_NAMES` and
    :func:`unchanged` follow from the fields, so the order lives here only.
    """

    display: T
    state: T
    objects_html: T
    object_select: T
    object_name: T
    object_color: T
    candidates: T
    status: T
    undo_btn: T
    redo_btn: T
    downloads: T

    def as_list(self) -> list[T]:
        return [getattr(self, name) for name in OUTPUT_NAMES]


OUTPUT_NAMES = tuple(f.name for f in fields(Outputs))


def unchanged() -> tuple:
    """An edit's answer that changes none of the outputs."""
    return (gr.skip(),) * len(OUTPUT_NAMES)


# ---------------------------------------------------------------------------- Gradio adapters
def bind(fn, *bound):
    """``functools.partial`` that keeps the signature and type hints Gradio reads.

    Gradio injects ``gr.SelectData`` / ``gr.Progress`` by looking at a handler's
    annotations and defaults, which a plain ``partial`` hides.
    """

    if inspect.isgeneratorfunction(fn):  # Gradio streams a handler's yields only if it is a generator itself
        @functools.wraps(fn)
        def handler(*args, **kwargs):
            yield from fn(*bound, *args, **kwargs)
    else:
        @functools.wraps(fn)
        def handler(*args, **kwargs):
            return fn(*bound, *args, **kwargs)

    signature = inspect.signature(fn)
    handler.__signature__ = signature.replace(parameters=list(signature.parameters.values())[len(bound):])
    return handler


def takes_view_options(fn):
    """Expose ``fn(..., options: ViewOptions, ...)`` to Gradio as ``fn(..., opacity, contour, ...)``.

    The page has two controls (the opacity slider and the outline checkbox) and
    the hidden API keeps both parameters; the handlers and the engine take one
    :class:`~sam_demo.view.ViewOptions` value.
    """
    signature = inspect.signature(fn)
    params = list(signature.parameters.values())
    at = [p.name for p in params].index("options")
    kind = inspect.Parameter.POSITIONAL_OR_KEYWORD
    exposed = signature.replace(parameters=[*params[:at], inspect.Parameter("opacity", kind),
                                            inspect.Parameter("contour", kind), *params[at + 1:]])

    @functools.wraps(fn)
    def handler(*args, **kwargs):
        values = exposed.bind(*args, **kwargs).arguments
        options = ViewOptions(values.pop("opacity"), values.pop("contour"))
        return fn(**values, options=options)

    handler.__signature__ = exposed
    return handler


def _require(state: AppState | None) -> AppState:
    if state is None:
        raise InvalidPromptError("Upload an image first (or pick an example).")
    return state


def _display_xy(value, state: AppState) -> tuple[float, float]:
    """A click position in display pixels, checked (it may come from a forged request)."""
    try:
        x, y = (float(v) for v in value)
    except (TypeError, ValueError):
        raise InvalidPromptError("The click position was not understood.") from None
    h, w = state.record.frame.display_hw
    if not (math.isfinite(x) and math.isfinite(y)):
        raise InvalidPromptError("Coordinates must be finite numbers.")
    if not (0 <= x < w and 0 <= y < h):
        raise InvalidPromptError("Click inside the image.")
    return x, y


def _apply_click(state: AppState, mode: str, x_display: float, y_display: float) -> AppState:
    x, y = state.record.frame.to_original_xy((x_display, y_display)).tolist()
    return _apply_original(state, mode, x, y)


def _apply_original(state: AppState, mode: str, x: float, y: float) -> AppState:
    """A click at original pixel ``(x, y)`` (pixel-index coordinates) in the given mode."""
    editor = state.editor
    if mode == MODE_BOX:
        editor = editor.box_corner(x, y, view_crop=state.view_crop)
    elif mode in (MODE_POSITIVE, MODE_NEGATIVE):
        editor = editor.add_point(x, y, POSITIVE if mode == MODE_POSITIVE else NEGATIVE, view_crop=state.view_crop)
    elif mode in PAINT_MODES:
        raise InvalidPromptError("The brush and the eraser paint: drag on the image (or choose include, exclude or "
                                 "box to click).")
    else:
        raise InvalidPromptError("Choose a prompt mode: include, exclude or box.")
    return replace(state, editor=editor)


PROMPT_KINDS = ("click", "box")
"""What a ``prompt`` event from the view may be: a click in the current mode, or a dragged box."""


def _number(data: dict, name: str) -> float:
    value = data.get(name)
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise InvalidPromptError("The click position was not understood.")
    if not math.isfinite(value):
        raise InvalidPromptError("Coordinates must be finite numbers.")
    return float(value)


def _original_xy(data: dict, names: tuple[str, str], state: AppState) -> tuple[float, float]:
    """A position the page sent, in original pixel-index coordinates, checked to lie on the image."""
    x, y = _number(data, names[0]), _number(data, names[1])
    h, w = state.record.original_hw
    if not (0 <= x <= w - 1 and 0 <= y <= h - 1):
        raise InvalidPromptError("Click inside the image.")
    return x, y


def _apply_prompt(state: AppState, mode: str, data) -> AppState:
    """A ``prompt`` event of the view: ``{"kind": "click", "x", "y"}`` or ``{"kind": "box", "x", "y", "x1", "y1"}``.

    Coordinates are original pixel-index coordinates (floats) computed by the page; the editor checks
    that they lie inside the image. A dragged box replaces the selected object's box in any mode.
    """
    if not isinstance(data, dict) or data.get("kind") not in PROMPT_KINDS:
        raise InvalidPromptError("The click was not understood.")
    x, y = _original_xy(data, ("x", "y"), state)
    if data["kind"] == "click":
        return _apply_original(state, mode, x, y)
    x1, y1 = _original_xy(data, ("x1", "y1"), state)
    editor = state.editor
    if editor.pending_corner is not None:
        editor = editor.undo()  # a drag replaces a half-drawn box
    return replace(state, editor=editor.box_corner(x, y).box_corner(x1, y1, view_crop=state.view_crop))


# ---------------------------------------------------------------------------- what an edit shows
def _swatch(color) -> str:
    r, g, b = color
    return f"#{r:02x}{g:02x}{b:02x}"


def _escape(text: str) -> str:
    return (text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;").replace('"', "&quot;"))


def _objects_html(view: View) -> str:
    """The object list: one button per object (a click selects it, see sam_demo/page.py), swatch, name, score."""
    rows = []
    for obj in view.objects:
        score = "—" if obj.score is None else f"IoU {obj.score:.2f} · object {obj.object_score:.2f}"
        if obj.refined:
            score += " · refined"
        classes = "obj-row" + (" selected" if obj.selected else "") + ("" if obj.visible else " hidden")
        eye = "" if obj.visible else " (hidden)"
        rows.append(f'<button type="button" class="{classes}" data-object-id="{obj.id}" '
                    f'aria-pressed="{"true" if obj.selected else "false"}"><span class="swatch" '
                    f'style="background:{_swatch(obj.color)}"></span><b>{_escape(obj.name)}</b>{eye}'
                    f'<span class="score">{score}</span></button>')
    return '<div id="object-list" role="group" aria-label="Objects">' + "".join(rows) + "</div>"


def _object_choices(view: View) -> tuple[list[tuple[str, int]], int | None]:
    choices = [(f"{o.name}{'' if o.visible else ' (hidden)'}", o.id) for o in view.objects]
    selected = next((o.id for o in view.objects if o.selected), None)
    return choices, selected


def _status(service: SegmentationService, state: AppState, view: View, extra: str = "") -> str:
    info = service.model_summary(state.record.model)
    h, w = state.record.original_hw
    dh, dw = state.record.frame.display_hw
    shown = "" if (h, w) == (dh, dw) else f" (shown at {dw}×{dh}; clicks map back to full resolution)"
    t = view.timings_ms
    parts = [f"**{w}×{h}**{shown}"]
    if extra:
        parts.append(extra)
    engine = []  # times and engine details: CSS hides them on a phone (sam_demo/page.py, STATUS_ENGINE_CLASS)
    if any(o.has_prompts for o in view.objects):  # nothing is decoded or drawn before the first prompt
        decoded = f"decode {t.get('decode_ms', 0):.0f} ms" if t.get("decoded") else "masks cached"
        engine += [decoded, f"render {t.get('render_ms', 0):.0f} ms"]
    engine.append(f"{info['model'] or 'model'} · encoder {info['encoder']} · {', '.join(info['providers'])} · "
                  f"{info['threads']} threads")
    if info.get("encoder_check") == "running":
        engine.append("checking faster encoders in the background")
    pending = state.editor.pending_corner is not None
    hint = " · **Box:** now click the opposite corner" if pending else ""
    notes = "".join(f"<br>{n}" for n in state.record.notes)
    return (" · ".join(parts) + f'<span class="{STATUS_ENGINE_CLASS}"> · {" · ".join(engine)}</span>'
            + hint + notes)


def _downloads_after(previous: AppState | None, state: AppState):
    """The download list after an edit: emptied when what an export holds changed since (another image or model,
    other prompts, names, candidates or shown objects: its files are out of date), else left as it is."""
    same = (previous is not None and previous.record is state.record
            and previous.editor.current is state.editor.current and previous.editor.hidden == state.editor.hidden)
    return gr.skip() if same else None


def _outputs(service, state: AppState, view: View, options: ViewOptions, extra: str = "",
             previous: AppState | None = None) -> list:
    """The values of :class:`Outputs` after an edit from ``previous`` (``None``: a new image, refine or model)."""
    choices, selected = _object_choices(view)
    gallery = [(thumb, f"{'✓ ' if k == view.chosen_candidate else ''}{k + 1}: IoU {s:.2f}")
               for k, (thumb, s) in enumerate(zip(view.thumbnails, view.candidate_scores))]
    selected_obj = next((o for o in view.objects if o.selected), None)
    token = service.grants.issue(state.tab, state.record.key)  # the same token while it lives; renewed
    # The page's own decoder (live previews) gets the embeddings of an encoded image of the default model (the
    # model it runs); a scene sent before the encoder finished (an upload's photo) names none.
    offered = not state.record.model and service.is_encoded(state.record.key)
    page = page_decoder.scene_fields(service.page_decoder if offered else None, state.record.key, token)
    page_scene = scene.build_scene(state.editor, state.record.original_hw, state.record.frame.display_hw, view,
                                   token, options, image_extra=page)
    return Outputs(
        display=scene.to_json(page_scene),
        state=state,
        objects_html=_objects_html(view),
        object_select=gr.update(choices=choices, value=selected),
        object_name=gr.update(value=selected_obj.name if selected_obj else ""),
        object_color=_swatch(selected_obj.color) if selected_obj else "",
        candidates=gallery,
        status=_status(service, state, view, extra),
        undo_btn=gr.update(interactive=state.editor.can_undo),
        redo_btn=gr.update(interactive=state.editor.can_redo),
        downloads=_downloads_after(previous, state),
    ).as_list()


# ---------------------------------------------------------------------------- handlers
def open_image(service: SegmentationService, path: str | None, model: str | None = None,
               request: gr.Request = None, progress=gr.Progress()):
    """Upload handler (encoder queue): load, check and encode with the tab's model choice (``model``, ``None`` =
    the default); the result is swapped in by ``show_image``.

    Clearing the upload box (``path`` None) changes nothing: the current image and masks stay. An upload
    nobody waits for any more (its tab left, or opened another image: :func:`stop_tab_work`) stops at its
    next safe point, even in the middle of its encoder run, and shows nothing (``None``).
    """
    if path is None:
        return None
    return _tab_encoder_work(service, request, lambda abort: service.open_image(
        path, model=model or "", progress=lambda f, m: progress(f, desc=m), abort=abort))


def _tab_encoder_work(service: SegmentationService, request: gr.Request | None, work: Callable[[Abort], T]) -> T | None:
    """``work(abort)`` for a tab's upload or model switch: stopped at its next safe point (``None``) when the tab
    leaves or opens another image (:func:`stop_tab_work`); a library error becomes the user's message."""
    token = _upload_token(request)
    abort = service.cancels.start(token) if token else Abort()
    try:
        return work(abort)
    except Aborted:
        return None
    except SamOnnxError as exc:
        raise user_error(exc) from None
    finally:
        if token:
            service.cancels.finish(token, abort)


NEW_IMAGE = "a new image"
TAB_LEFT = "the tab left"
"""Why a tab's work was stopped without its Cancel button (:attr:`sam_onnx.abort.Abort.reason`): said to nobody."""


def _upload_token(request: gr.Request | None) -> str | None:
    """The cancel token of a tab's upload or model switch (beside its segment-everything and refine tokens)."""
    tab = _tab_id(request)
    return f"{tab}:upload" if tab else None


def stop_tab_work(service: SegmentationService, state, request: gr.Request = None) -> None:
    """Stop what a tab started and nobody will wait for (outside the queues, at once): its upload or model
    switch, its segment-everything run and its refine.

    Runs when the tab opens another image (before that image's own upload event, so its encoder run never
    waits for the old work).
    """
    token = _upload_token(request)
    stopped = bool(token) and service.cancels.cancel(token, NEW_IMAGE)
    stopped = _stop_everything(service, state, request, NEW_IMAGE) or stopped
    stopped = cancel_refine(service, state, request) or stopped
    if stopped:
        logger.info("tab %s opened another image: its running work was stopped", (_tab_id(request) or "?")[:8])


def leave_tab(service: SegmentationService, request: gr.Request = None) -> None:
    """A tab was closed or reloaded (Gradio's ``unload`` event, which gives no state): stop its work, as
    :func:`stop_tab_work` does (its segment-everything and refine tokens are the tab's when it has one)."""
    tab = _tab_id(request)
    if tab is None:
        return
    stopped = [token for token in (f"{tab}:upload", tab, f"{tab}:refine") if service.cancels.cancel(token, TAB_LEFT)]
    if stopped:
        logger.info("tab %s left: its running work was stopped (%s)", tab[:8],
                    ", ".join(t.split(":")[1] if ":" in t else "everything" for t in stopped))


@takes_view_options
def show_image(service: SegmentationService, loaded, options: ViewOptions, state: AppState | None = None,
               request: gr.Request = None):
    """Second step of an upload (edit queue, ordered with the tab's clicks): a fresh editor on the new image.

    A second run for the image already shown (same content and file) keeps the user's prompts
    instead of wiping them. A segment-everything run of this tab on the previous image is
    cancelled: its masks would not be added anyway.
    """
    if loaded is None:
        return unchanged()
    record, info = loaded
    if state is not None and (state.record.key, state.record.path) == (record.key, record.path):
        return unchanged()
    cancel_everything(service, state, request)
    cancel_refine(service, state, request)
    if state is not None:
        service.cancels.cancel(_view_token(state))  # the old image's zoomed view is not encoded any more
    tab = state.tab if state is not None else (_tab_id(request) or secrets.token_urlsafe(16))
    state = AppState(record, Editor.start(record.original_hw), tab)
    view = service.render(record, state.editor, options)
    extra = "cached" if info["cache_hit"] else f"encode {info['encode_ms'] / 1e3:.2f} s"
    return _outputs(service, state, view, options, extra)


def upload(service: SegmentationService, path: str | None, model: str | None, opacity, contour,
           state: AppState | None = None, request: gr.Request = None, progress=gr.Progress()):
    """An upload from the page, in two steps (a generator on the encoder queue, ordered with the tab's edits),
    encoded with the tab's model choice (``model``, ``None`` = the default).

    First the photo: the file is read and checked and its display copy made (``service.receive_image``), and
    the page shows it with a fresh editor before the encoder runs. Then the encoder run
    (``service.encode_image``) and the ready view. Clicks on the new photo meanwhile wait for the second step
    and then apply to it. An upload nobody waits for any more (its tab closed or reloaded: :func:`leave_tab`;
    the tab opened another image: :func:`stop_tab_work`) stops at its next safe point, even in the middle of
    its encoder run, and shows nothing more. The same photo uploaded again keeps the user's prompts. A
    segment-everything run or a refine of this tab on the previous image is cancelled.
    """
    if path is None:  # the upload box was cleared: the current image and masks stay
        yield unchanged()
        return
    token = _upload_token(request)
    abort = service.cancels.start(token) if token else Abort()
    try:
        yield from _upload_steps(service, path, model, ViewOptions(opacity, contour), state, request, progress, abort)
    except Aborted:  # nobody waits for this image any more (stop_tab_work, leave_tab): nothing more to show
        logger.info("upload of tab %s stopped: %s", (token or "?")[:8], abort.reason or "stopped")
    finally:
        if token:
            service.cancels.finish(token, abort)


def _upload_steps(service: SegmentationService, path: str, model: str | None, options: ViewOptions,
                  state: AppState | None, request: gr.Request | None, progress, abort: Abort):
    """The two steps of :func:`upload`; ``abort`` stops them at the next safe point (raises ``Aborted``)."""
    report = lambda f, m: progress(f, desc=m)  # noqa: E731
    try:
        record, _ = service.receive_image(path, model=model or "", progress=report, abort=abort)
    except Aborted:
        raise
    except SamOnnxError as exc:
        raise user_error(exc) from None
    if state is not None and (state.record.key, state.record.path) == (record.key, record.path):
        yield unchanged()
        return
    cancel_everything(service, state, request)
    cancel_refine(service, state, request)
    tab = state.tab if state is not None else (_tab_id(request) or secrets.token_urlsafe(16))
    previous, state = state, AppState(record, Editor.start(record.original_hw), tab)
    # the scene names the display copy, which the page loads now (made in step 1, served before the encoder ran)
    yield _outputs(service, state, service.photo_view(record, state.editor), options, "encoding the image…")
    try:
        info = service.encode_image(record, progress=report, abort=abort)
    except Aborted:
        raise
    except SamOnnxError as exc:  # the encoder failed: back to the image and work the tab had, then the message
        yield unchanged() if previous is None else _outputs(service, previous, service.render(
            previous.record, previous.editor, options), options, previous=previous)
        raise user_error(exc) from None
    view = service.render(record, state.editor, options)
    # the scene goes again (JSON): it now names the embeddings for the page's live previews
    yield _outputs(service, state, view, options,
                   "cached" if info["cache_hit"] else f"encode {info['encode_ms'] / 1e3:.2f} s", previous=state)


@takes_view_options
def load_image_api(service: SegmentationService, path: str | None, options: ViewOptions, progress=gr.Progress()):
    """Upload and show in one call (for API clients, which do not follow the UI's chained events)."""
    if path is None:
        raise gr.Error("Send an image.", print_exception=False)
    return show_image(service, open_image(service, path, progress=progress), options.opacity, options.contour)


def _edit(service, state: AppState, options: ViewOptions, change):
    new_state = change(_require(state))
    view = service.render(new_state.record, new_state.editor, options)
    return _outputs(service, new_state, view, options, previous=state)


@takes_view_options
@guarded
def prompt(service, state, mode, options: ViewOptions, evt: gr.EventData):
    """A click, tap, drag or Enter on the view: ``evt._data`` in original pixels (see :func:`_apply_prompt`)."""
    state = _require(state)
    data = getattr(evt, "_data", None)
    return _edit(service, state, options, lambda s: _apply_prompt(s, mode, data))


@takes_view_options
@guarded
def click_api(service, state, x, y, mode, options: ViewOptions):
    """The same as a click, with explicit display-pixel coordinates (hidden API for scripts and tests)."""
    state = _require(state)
    x, y = _display_xy((x, y), state)
    return _edit(service, state, options, lambda s: _apply_click(s, mode, x, y))


@takes_view_options
@guarded
def paint_stroke(service, state, stroke, options: ViewOptions):
    """One brush or eraser stroke on the selected object, sent once when it ends (one undoable step).

    ``stroke`` is ``{"points": [[x, y], ...], "radius": r, "erase": false}`` in original pixels (a JSON string
    or the parsed value), checked by :meth:`sam_onnx.strokes.Stroke.from_dict`.
    """
    state = _require(state)
    if isinstance(stroke, (str, bytes)):
        stroke = parse_json(stroke, "The stroke")
    return _edit(service, state, options, lambda s: _apply_stroke(s, stroke))


def _apply_stroke(state: AppState, data) -> AppState:
    """A stroke ``{"points", "radius", "erase"}`` (original pixels) added to the selected object, checked first."""
    checked = Stroke.from_dict(data, state.record.original_hw)
    return replace(state, editor=state.editor.add_stroke(checked))


@takes_view_options
@guarded
def stroke_event(service, state, options: ViewOptions, evt: gr.EventData):
    """A brush or eraser stroke the view sends once when it ends (``sam_demo/static/view/brush.js``):
    ``evt._data`` is ``{"points": [[x, y], ...], "radius": r, "erase": bool}`` in original pixels."""
    state = _require(state)
    return _edit(service, state, options, lambda s: _apply_stroke(s, getattr(evt, "_data", None)))


def _editor_op(op):
    """A handler that applies ``op(editor) -> editor`` to the user's editor."""

    @takes_view_options
    @guarded
    def handler(service, state, options: ViewOptions):
        return _edit(service, state, options, lambda s: replace(s, editor=op(s.editor)))

    handler.__name__ = op.__name__
    return handler


def _selected_id(editor: Editor) -> int:
    obj = editor.selected
    if obj is None:
        raise InvalidPromptError("Select an object first.")
    return obj.id


undo = _editor_op(lambda e: e.undo())
redo = _editor_op(lambda e: e.redo())
clear_object = _editor_op(lambda e: e.clear_object())
clear_all = _editor_op(lambda e: e.clear_all())
add_object = _editor_op(lambda e: e.add_object())
toggle_object = _editor_op(lambda e: e.set_visible(_selected_id(e), not e.is_visible(_selected_id(e))))
delete_object = _editor_op(lambda e: e.delete(_selected_id(e)))


@takes_view_options
@guarded
def rerender(service, state, options: ViewOptions):
    if state is None:
        return unchanged()
    return _edit(service, state, options, lambda s: s)


@takes_view_options
@guarded
def select_object(service, state, object_id, options: ViewOptions):
    if state is None or object_id is None:
        return unchanged()
    return _edit(service, state, options, lambda s: replace(s, editor=s.editor.select(int(object_id))))


@takes_view_options
@guarded
def rename_object(service, state, name, options: ViewOptions):
    return _edit(service, state, options, lambda s: replace(s, editor=s.editor.rename(_selected_id(s.editor), name)))


@takes_view_options
@guarded
def pick_color(service, state, options: ViewOptions, evt: gr.EventData):
    """The colour control's ``pick`` event: ``evt._data`` is ``{"color": "#rrggbb"}`` for the selected object
    (checked by :meth:`sam_demo.editor.Editor.set_color`; one undoable step)."""
    state = _require(state)
    data = getattr(evt, "_data", None)
    color = data.get("color") if isinstance(data, dict) else None
    return _edit(service, state, options,
                 lambda s: replace(s, editor=s.editor.set_color(_selected_id(s.editor), color)))


def _choose(service, state, candidate: int | None, options: ViewOptions):
    return _edit(service, state, options,
                 lambda s: replace(s, editor=s.editor.choose_candidate(_selected_id(s.editor), candidate)))


@takes_view_options
@guarded
def choose_candidate(service, state, options: ViewOptions, evt: gr.SelectData):
    """A click on one of the 3 candidate thumbnails."""
    state = _require(state)
    index = evt.index
    if not isinstance(index, int) or isinstance(index, bool) or index not in range(NUM_CANDIDATES):
        raise InvalidPromptError("Choose mask 1, 2 or 3.")
    return _choose(service, state, index, options)


@takes_view_options
@guarded
def choose_candidate_api(service, state, index, options: ViewOptions):
    """Choose candidate ``index`` (1, 2 or 3; 0 = back to the best) for the selected object."""
    state = _require(state)
    try:
        number = int(index)
    except (TypeError, ValueError):
        raise InvalidPromptError("Choose mask 1, 2 or 3.") from None
    if number not in range(NUM_CANDIDATES + 1) or number != index:
        raise InvalidPromptError("Choose mask 1, 2 or 3.")
    return _choose(service, state, None if number == 0 else number - 1, options)


def choose_fixed_candidate(service, number, state, opacity, contour):
    """Keyboard shortcut 1/2/3: choose that candidate."""
    return choose_candidate_api(service, state, number, opacity, contour)


@takes_view_options
@guarded
def load_prompts(service, state, file_path, options: ViewOptions):
    """Load a prompts file saved by this app for the same image."""
    state = _require(state)
    if not file_path:
        raise InvalidPromptError("No file received.")
    editor = service.load_prompts_file(state.record, file_path)
    return _edit(service, state, options, lambda s: replace(s, editor=editor))


@guarded
def export_files(service, state, detail=vector.DEFAULT_TOLERANCE, progress=gr.Progress()):
    """Masks at the original resolution, label map, cut-out, COCO RLE JSON, polygon files (GeoJSON, YOLO-seg,
    COCO polygons, SVG; ``detail`` = their simplification tolerance in original pixels) and the prompts file."""
    state = _require(state)
    _prune_exports()
    out = Path(tempfile.mkdtemp(prefix="export-", dir=_export_root()))
    started = time.perf_counter()
    files = service.export(state.record, state.editor, out, progress=lambda f, m: progress(f, desc=m),
                           tolerance=vector.DEFAULT_TOLERANCE if detail is None else detail)
    logger.info("export %s: %d files in %.0f ms", state.record.key[:12], len(files),
                (time.perf_counter() - started) * 1e3)
    return [str(f) for f in files]


def _export_root() -> Path:
    EXPORT_ROOT.mkdir(parents=True, exist_ok=True)
    return EXPORT_ROOT


def _prune_exports(max_age_s: float = EXPORT_MAX_AGE_S) -> None:
    """Delete export folders older than ``max_age_s`` (Gradio keeps its own copies of served files)."""
    now = time.time()
    for folder in _export_root().glob("export-*"):
        try:
            if now - folder.stat().st_mtime > max_age_s:
                shutil.rmtree(folder, ignore_errors=True)
        except OSError:
            continue


def about(seconds: float) -> str:
    """A duration as people read it: ``"about 12 s"``, or ``"under 1 s"`` below a second (never "about 0 s")."""
    return "under 1 s" if seconds < 1 else f"about {seconds:.0f} s"


def everything_estimate(service: SegmentationService, state: AppState | None, preset: str) -> str:
    """The up-front estimate shown next to the segment-everything button."""
    if state is None:
        return "Upload an image first."
    try:
        est = service.everything_estimate(state.record, preset)
    except SamOnnxError as exc:
        return str(exc)
    side = est.points_per_side
    crops = f", {est.encoder_runs - 1} extra crops" if est.encoder_runs > 1 else ""
    busy = f" (others are working: ×{est.load_factor:.1f})" if est.load_factor >= BUSY_NOTE_FACTOR else ""
    return (f"**{preset}:** {side}×{side} points ({est.points} in all{crops}), {est.decoder_calls} decoder calls, "
            f"**{about(est.seconds)}** on this server{busy}.")


def _tab_id(request: gr.Request | None) -> str | None:
    """Gradio's id of the browser tab that sent an event (its ``session_hash``), if any."""
    return request.session_hash if request is not None and request.session_hash else None


@guarded
def run_everything(service: SegmentationService, state, preset, request: gr.Request = None, progress=gr.Progress()):
    """Automatic masks on their own queue; ``apply_everything`` adds them and says how it went.

    Returns ``(image key, found objects or None if cancelled)``: the messages
    are left to ``apply_everything``, which knows whether the user still looks
    at the same image (a new upload cancels the run and must not get its toast).
    ``None`` when it was stopped by a new image or because the tab left (:func:`stop_tab_work`).
    """
    state = _require(state)
    token = _tab_id(request) or state.record.key
    estimate = service.everything_estimate(state.record, preset)
    started = time.perf_counter()

    last = [0.0]

    def report(done: int, total: int) -> None:
        now = time.perf_counter()
        if now - last[0] < PROGRESS_INTERVAL_S and done < total:
            return  # each message costs the page a redraw: on a busy phone, one per decoder call delays its taps
        last[0] = now
        left = max(0.0, estimate.seconds - (now - started))
        progress((done, total), desc=f"Segment everything: {done}/{total} decoder calls, {about(left)} left")

    cancelled = service.cancels.start(token)
    try:
        found = service.segment_everything(state.record, preset, progress=report, cancel=cancelled.is_set,
                                           abort=cancelled)
    except (amg.Cancelled, Aborted):
        # stopped by the Cancel button: said so; by a new image or a tab that left: nothing to say
        return None if cancelled.reason else (state.record.key, None)
    finally:
        service.cancels.finish(token, cancelled)
    return state.record.key, found


@takes_view_options
@guarded
def apply_everything(service, found, state, options: ViewOptions):
    """Add the automatic masks as objects (one undo step), unless the image changed meanwhile."""
    if found is None or state is None or found[0] != state.record.key:
        return unchanged()  # another image is shown now: the old run's outcome is not news
    if found[1] is None:
        gr.Info("Segment everything was cancelled; nothing was added.")
        return unchanged()
    if not found[1]:
        gr.Info("Segment everything found no confident masks.")
        return unchanged()
    editor, dropped = state.editor.add_found(found[1])
    if dropped:
        gr.Info(f"Only the {len(found[1]) - dropped} largest masks were added (at most {MAX_OBJECTS} objects).")
    return _edit(service, state, options, lambda s: replace(s, editor=editor))


def cancel_everything(service: SegmentationService, state, request: gr.Request = None) -> None:
    """Stop this user's segment-everything run (runs outside the queues, at once); the Cancel button."""
    _stop_everything(service, state, request)


def _stop_everything(service: SegmentationService, state, request: gr.Request | None, reason: str = "") -> bool:
    """Stop the tab's segment-everything run; with a ``reason`` (a new image, the tab left) it ends silently.
    Returns whether one was running."""
    tab = _tab_id(request)
    if tab is not None and service.cancels.cancel(tab, reason):
        return True
    return state is not None and service.cancels.cancel(state.record.key, reason)


def _refine_token(state: AppState, request: gr.Request | None) -> str:
    """The cancel token of a tab's refine (its own, beside the tab's segment-everything token)."""
    return f"{_tab_id(request) or state.record.key}:refine"


@guarded
def run_refine(service: SegmentationService, state, request: gr.Request = None, progress=gr.Progress()):
    """Refine the selected object in a crop (own queue: one crop encode, progress shown); ``apply_refine`` shows it.

    Returns the :class:`~sam_demo.service.Refinement`, or ``None`` when a new image in this tab cancelled it.
    A refine that cannot be made (no prompts, an empty mask...) is a message; nothing changes.
    """
    state = _require(state)
    token = _refine_token(state, request)
    cancelled = service.cancels.start(token)
    try:
        return service.refine(state.record, state.editor, abort=cancelled,
                              progress=lambda f, m: progress(f, desc=m))
    except RefineCancelled:
        return None
    finally:
        service.cancels.finish(token, cancelled)


@takes_view_options
@guarded
def apply_refine(service, refinement: Refinement | None, state, options: ViewOptions):
    """Show a finished refine (one undoable step), with its time in the status line, if the image is the same."""
    if refinement is None or state is None or refinement.image_key != state.record.key:
        return unchanged()  # cancelled, or another image is shown now
    new_state = replace(state, editor=state.editor.refine(refinement.object_id, refinement.crop))
    view = service.render(new_state.record, new_state.editor, options)
    return _outputs(service, new_state, view, options, refinement.describe())


@takes_view_options
@guarded
def refine_api(service, state, options: ViewOptions, request: gr.Request = None):
    """Refine and show in one call (for API clients and tests, which do not follow the UI's chained events)."""
    return apply_refine(service, run_refine(service, state, request), state, options.opacity, options.contour)


def cancel_refine(service: SegmentationService, state, request: gr.Request = None) -> bool:
    """Stop this tab's refine, if one runs: its object is left as it was. Returns whether one was running."""
    return state is not None and service.cancels.cancel(_refine_token(state, request))


# ---------------------------------------------------------------------------- refine while zoomed (issue 19 item 3)
def _view_token(state: AppState) -> str:
    """The cancel token of a tab's zoomed-view encode."""
    return f"{state.tab}:view"


def _zoomed_rect(data, state: AppState) -> tuple[float, float, float, float] | None:
    """A ``zoomed`` event's ``{"rect": [x0, y0, x1, y1]}`` (original pixel edges, checked to lie on the image and
    have area) or ``None`` for ``{}`` (zoomed out)."""
    if not isinstance(data, dict):
        raise InvalidPromptError("The zoomed view was not understood.")
    rect = data.get("rect")
    if rect is None:
        return None
    if not isinstance(rect, list) or len(rect) != 4:
        raise InvalidPromptError("The zoomed view was not understood.")
    values = {name: v for name, v in zip(("x0", "y0", "x1", "y1"), rect)}
    try:
        x0, y0, x1, y1 = (_number(values, name) for name in ("x0", "y0", "x1", "y1"))
    except InvalidPromptError:
        raise InvalidPromptError("The zoomed view was not understood.") from None
    h, w = state.record.original_hw
    if not (0 <= x0 < x1 <= w and 0 <= y0 < y1 <= h):
        raise InvalidPromptError("The zoomed view lies outside the image.")
    return x0, y0, x1, y1


@guarded
def zoomed(service: SegmentationService, state, evt: gr.EventData):
    """The view was zoomed in (2x or more, still for 0.5 s) or out: remember what it shows, in order with the
    tab's clicks; an encode of the view before is cancelled, and clicks decode on the whole image until this
    one's is ready (``encode_zoomed``)."""
    if state is None:
        return gr.skip()
    view = _zoomed_rect(getattr(evt, "_data", None), state)
    service.cancels.cancel(_view_token(state))
    return replace(state, view=view, view_crop=None)


def encode_zoomed(service: SegmentationService, state):
    """Encode the zoomed view in the background (own queue; lowest-priority turns, :meth:`SegmentationService.
    encode_view`), when ``--zoom-encode`` is on. Returns ``(image key, view, crop)``, or None (off, not zoomed,
    cancelled by a new zoom or image, or a view of the whole image)."""
    if state is None or state.view is None or not service.encode_zoomed_views:
        return None
    token = _view_token(state)
    cancelled = service.cancels.start(token)
    try:
        crop = service.encode_view(state.record, state.view, cancel=cancelled.is_set)
    except SamOnnxError:
        logger.info("zoomed view of %s not encoded", state.record.key[:12], exc_info=True)
        return None
    finally:
        service.cancels.finish(token, cancelled)
    return None if crop is None else (state.record.key, state.view, crop)


def apply_zoomed(service: SegmentationService, encoded, state):
    """Clicks in the view decode there from now on, if the tab still shows that image zoomed to that view."""
    if encoded is None or state is None:
        return gr.skip()
    key, view, crop = encoded
    if state.record.key != key or state.view != view:
        return gr.skip()
    return replace(state, view_crop=crop)


def switch_model(service: SegmentationService, state, model: str | None, request: gr.Request = None,
                 progress=gr.Progress()):
    """The model choice changed (encoder queue): the tab's image encoded with that model (or found in the cache);
    ``show_switched`` swaps it in. Without an image the choice only applies to the next upload. A tab that
    leaves or opens another image meanwhile stops it, like an upload."""
    def work(abort: Abort):
        if state is None or not model or service.predictor_for(model) is service.predictor_for(state.record.model):
            return None
        return service.switch_model(state.record, model, progress=lambda f, m: progress(f, desc=m), abort=abort)
    return _tab_encoder_work(service, request, work)


@takes_view_options
def show_switched(service: SegmentationService, loaded, state, options: ViewOptions, request: gr.Request = None):
    """Second step of a model switch (edit queue, in order with the tab's clicks): the same prompts, decoded again
    with the other model. Dropped when the tab shows another image by now."""
    if loaded is None or state is None:
        return unchanged()
    record, info = loaded
    if (record.content_key, record.path) != (state.record.content_key, state.record.path):
        return unchanged()
    cancel_everything(service, state, request)
    cancel_refine(service, state, request)
    state = replace(state, record=record)
    view = service.render(record, state.editor, options)
    name = service.model_summary(record.model)["model"] or "the model"
    how = "cached" if info["cache_hit"] else f"encode {info['encode_ms'] / 1e3:.2f} s"
    return _outputs(service, state, view, options, f"now {name} ({how})")


def api_segment(service: SegmentationService, image: str | None, prompts, format: str = SEGMENT_RLE,  # noqa: A002
                tolerance: float = vector.DEFAULT_TOLERANCE):
    """Stateless API: an image and a list of objects → masks (COCO RLE, or polygons) and scores.

    ``prompts`` is a list of objects, each ``{"points": [[x, y, label], ...], "box": [x0, y0, x1, y1] | null}``
    in original image pixels (label 1 = include, 0 = exclude), optionally with ``"refine": true`` (one crop
    encode for that object, a sharper mask); a single object may be given without the list. ``format`` is ``"rle"`` (default) or ``"polygons"`` (GeoJSON MultiPolygons simplified by ``tolerance``
    original pixels, 0 = exact).
    """
    if image is None:
        raise gr.Error("Send an image.", print_exception=False)
    try:
        objects, refine = api_request(prompts)
        return service.segment(image, objects, refine, output=SEGMENT_RLE if format is None else format,
                               tolerance=vector.DEFAULT_TOLERANCE if tolerance is None else tolerance)
    except SamOnnxError as exc:
        raise user_error(exc) from None


# ---------------------------------------------------------------------------- layout
def build_demo(service: SegmentationService) -> gr.Blocks:
    """The Blocks app for a ready service (no model loading here)."""
    with SafeBlocks(title="SAM 2.1 segmentation (ONNX, CPU)", delete_cache=(600, 3600)) as demo:
        state = gr.State(None, time_to_live=STATE_TTL_S)
        # Layout (sam_demo/page.py styles it): a low top band (title, upload, examples), then the work area:
        # the tools, the image and the status on the left, sized to the window so that all three are on the
        # first screen; the objects and everything else on the right. On a phone the columns stack in this
        # order, so after an upload the image follows the tools right under the upload box.
        with gr.Row(equal_height=False, elem_id="top"):
            with gr.Column(scale=3, min_width=260):
                gr.Markdown(TITLE, elem_id="title")
            # no fullscreen/download buttons: they covered the box's label (only "remove" stays)
            image_in = uploaded_image(label="Image (upload or paste)", sources=["upload", "clipboard"],
                                      elem_id="input_image", height=UPLOAD_BOX_HEIGHT, scale=1, min_width=150,
                                      buttons=[])
            examples = sorted(str(p) for p in ASSETS.glob("*.jpg")) + sorted(str(p) for p in ASSETS.glob("*.png"))
            example_list = None
            if examples:
                with gr.Column(scale=2, min_width=140, elem_id="examples"):
                    example_list = gr.Examples(examples, inputs=image_in, cache_examples=False,
                                               label="Examples (click one)", examples_per_page=8)
        with gr.Row(equal_height=False, elem_id="workspace"):
            with gr.Column(scale=3, min_width=320, elem_id="work"):
                with gr.Row(elem_id="toolbar"):
                    mode = gr.Radio([(label, m) for label, m in zip(MODE_LABELS, MODES)], value=MODE_POSITIVE,
                                    show_label=False, elem_id="mode", scale=3, min_width=240)
                    with gr.Row(elem_id="history", scale=2):
                        undo_btn = gr.Button("↶ Undo", elem_id="undo_btn", interactive=False, size="sm",
                                             min_width=0)
                        redo_btn = gr.Button("↷ Redo", elem_id="redo_btn", interactive=False, size="sm",
                                             min_width=0)
                        clear_btn = gr.Button("Clear object", elem_id="clear_btn", size="sm", min_width=0)
                        reset_btn = gr.Button("Clear all", elem_id="reset_btn", size="sm", variant="stop",
                                              min_width=0)
                # The image view: the page draws the scene (sam_demo/scene.py) with sam_demo/static/view/*.js;
                # clicks come back as `prompt` events in original pixels. Its template never changes, so
                # Gradio never re-renders the view's DOM; only its value (the scene) does.
                display = gr.HTML(scene.EMPTY_SCENE, html_template=VIEW_TEMPLATE, js_on_load=VIEW_BOOT,
                                  elem_id="display", apply_default_css=False)
                status = gr.Markdown(elem_id="status")
                gr.Markdown(HELP, elem_id="help")  # shown until an image is (page.py)
            with gr.Column(scale=2, min_width=300, elem_id="side"):
                # Several models (--models): each tab chooses its own; one model (the default): no choice shown.
                model_choice = gr.Radio(list(service.model_names), value=service.default_model or None,
                                        label="Model (switching keeps your prompts)", elem_id="model_choice",
                                        visible=bool(service.model_names))
                switched = gr.State(None, time_to_live=STATE_TTL_S)
                with gr.Group(elem_id="object_panel"):
                    objects_html = gr.HTML(elem_id="objects")
                    with gr.Row(elem_classes="tool-row"):
                        add_btn = gr.Button("+ New object", elem_id="add_object_btn", size="sm", min_width=0)
                        hide_btn = gr.Button("Show/hide", elem_id="hide_btn", size="sm", min_width=0)
                        delete_btn = gr.Button("Delete", elem_id="delete_btn", size="sm", variant="stop", min_width=0)
                        refine_btn = gr.Button("🔍 Refine", elem_id="refine_btn", size="sm", min_width=0)
                    object_name = gr.Textbox(label="Name (Enter to rename)", elem_id="object_name", max_lines=1)
                    # the selected object's colour: a native colour input (sam_demo/static/view/colour.js)
                    object_color = gr.HTML("", html_template=COLOUR_TEMPLATE, js_on_load=COLOUR_BOOT,
                                           elem_id="object_color", apply_default_css=False)
                candidates = gr.Gallery(label="Mask candidates (click to choose)", columns=3, rows=1, height="auto",
                                        allow_preview=False, elem_id="candidates", object_fit="contain",
                                        format="jpeg", buttons=[])  # no "Download All" and co. over the masks
                with gr.Accordion("Segment everything (automatic masks)", open=False, elem_id="everything"):
                    preset = gr.Radio(list(amg.PRESETS), value=amg.DEFAULT_PRESET, label="Preset",
                                      elem_id="everything_preset")
                    estimate = gr.Markdown("Upload an image first.", elem_id="everything_estimate")
                    with gr.Row(elem_classes="tool-row"):
                        everything_btn = gr.Button("Find all objects", elem_id="everything_btn", variant="primary",
                                                   size="sm")
                        everything_cancel = gr.Button("Cancel", elem_id="everything_cancel_btn", size="sm")
                    everything_found = gr.State(None, time_to_live=STATE_TTL_S)
                refined = gr.State(None, time_to_live=STATE_TTL_S)
                zoom_encoded = gr.State(None, time_to_live=STATE_TTL_S)
                with gr.Row():
                    opacity = gr.Slider(0, 1, value=0.5, step=0.05, label="Mask opacity", elem_id="opacity")
                    contour = gr.Checkbox(value=True, label="Outline", elem_id="contour")
                detail = gr.Slider(0, DETAIL_MAX, value=vector.DEFAULT_TOLERANCE, step=DETAIL_STEP,
                                   label="Polygon detail: tolerance in pixels (0 = exact outline)", elem_id="detail",
                                   info="For the GeoJSON, YOLO, COCO-polygon and SVG files; the masks are exact.")
                with gr.Row(elem_classes="tool-row"):
                    export_btn = gr.Button("⬇ Export masks", elem_id="export_btn", variant="primary")
                    load_btn = gr.UploadButton("Load prompts JSON", file_types=[".json"], elem_id="load_btn",
                                               size="sm")
                downloads = gr.File(label="Downloads", file_count="multiple", elem_id="downloads", height=160,
                                    interactive=False)  # a list to download from, not to drop files on
                with gr.Accordion("How to use · keyboard shortcuts", open=False, elem_id="help_panel"):
                    gr.Markdown(HELP, elem_id="help_again")
        # Hidden controls behind the keyboard shortcuts and the scripted API (in the DOM, not shown).
        with gr.Row(elem_classes="hidden-controls"):
            # the object rows of `objects_html` select through this radio (page.py's script clicks it)
            object_select = gr.Radio([], label="Selected object", elem_id="object_select")
            api_x = gr.Number(label="x (display pixels)")
            api_y = gr.Number(label="y (display pixels)")
            api_click_btn = gr.Button("click", elem_id="api_click_btn")
            candidate_number = gr.Number(value=1, label="mask (1-3, 0 = best)")
            candidate_btn = gr.Button("choose mask", elem_id="candidate_btn")
            candidate_keys = [gr.Button(f"mask {k}", elem_id=f"candidate_{k}_btn") for k in (1, 2, 3)]
            api_image = uploaded_image(label="image")
            api_load_btn = gr.Button("load image")
            api_prompts = gr.JSON(label="prompts")
            api_format = gr.Radio(list(SEGMENT_OUTPUTS), value=SEGMENT_RLE, label="format")
            api_tolerance = gr.Number(value=vector.DEFAULT_TOLERANCE, label="tolerance")
            api_result = gr.JSON(label="result")
            api_btn = gr.Button("segment")
            api_export_btn = gr.Button("export")
            api_refine_btn = gr.Button("refine")
            api_stroke = gr.JSON(label="stroke")
            api_stroke_btn = gr.Button("stroke")

        outputs = Outputs(display=display, state=state, objects_html=objects_html, object_select=object_select,
                          object_name=object_name, object_color=object_color, candidates=candidates, status=status,
                          undo_btn=undo_btn, redo_btn=redo_btn, downloads=downloads).as_list()
        view_inputs = [opacity, contour]
        edit = {"concurrency_id": EDIT_QUEUE, "concurrency_limit": EDIT_CONCURRENCY, "show_progress": "hidden"}
        demo.order_per_session(state)

        # Each upload and each example click loads the image once. (Not the upload box's .change: it fires
        # twice for one upload when the box already holds an image, which doubled every message.)
        opened = [(image_in.upload, "image")] + ([(example_list.load_input_event.then, "example")]
                                                 if example_list else [])
        for trigger, name in opened:
            # One generator event: the photo shown first, then the encoder run. It writes the tab's state, so it
            # runs in order with the tab's edits (SafeBlocks.order_per_session), one step at a time.
            # Before it, at once and outside the queues, stop what this tab still runs for its previous image (its
            # upload, segment everything, refine): the new image's encoder run must not wait for any of it.
            trigger(bind(stop_tab_work, service), [state], None, queue=False, trigger_mode="always_last",
                    show_progress="hidden", api_name=f"ui_stop_{name}", api_visibility="private").then(
                bind(upload, service), [image_in, model_choice, *view_inputs, state], outputs, concurrency_id=ENCODE_QUEUE,
                    concurrency_limit=service.upload_concurrency, trigger_mode="always_last",
                    api_name=f"ui_open_{name}", api_visibility="private", show_progress="full",
                    show_progress_on=[image_in]).then(
                bind(everything_estimate, service), [state, preset], [estimate], api_name=f"ui_estimate_{name}",
                api_visibility="private", queue=False)
        # A model switch: the encode on the upload queue (progress on the display), then the same prompts decoded
        # again on the edit queue, in order with the tab's clicks.
        model_choice.input(bind(switch_model, service), [state, model_choice], [switched],
                           concurrency_id=ENCODE_QUEUE, concurrency_limit=service.upload_concurrency,
                           trigger_mode="always_last", show_progress="full", show_progress_on=[display],
                           api_name="ui_switch_model", api_visibility="private").success(
            bind(show_switched, service), [switched, state, *view_inputs], outputs, **edit,
            api_name="ui_show_switched", api_visibility="private")
        preset.change(bind(everything_estimate, service), [state, preset], [estimate], api_name="ui_estimate",
                      api_visibility="private", queue=False)
        everything_btn.click(bind(run_everything, service), [state, preset], [everything_found],
                             concurrency_id=EVERYTHING_QUEUE, concurrency_limit=1, show_progress="full",
                             show_progress_on=[display], api_name="ui_everything", api_visibility="private").success(
            bind(apply_everything, service), [everything_found, state, *view_inputs], outputs, **edit,
            api_name="ui_apply_everything", api_visibility="private")
        # Refine: the crop's encode on its own queue (a second or two; the tab's clicks go on meanwhile), then the
        # refined object shown on the edit queue, in order with the tab's edits.
        refine_btn.click(bind(run_refine, service), [state], [refined], concurrency_id=REFINE_QUEUE,
                         concurrency_limit=None, show_progress="full", show_progress_on=[display], trigger_mode="once",
                         api_name="ui_refine", api_visibility="private").success(
            bind(apply_refine, service), [refined, state, *view_inputs], outputs, **edit,
            api_name="ui_apply_refine", api_visibility="private")
        api_refine_btn.click(bind(refine_api, service), [state, *view_inputs], outputs, api_name="refine",
                             api_visibility="undocumented", **{**edit, "show_progress": "full"})
        everything_cancel.click(bind(cancel_everything, service), [state], None, queue=False,
                                api_name="ui_cancel_everything", api_visibility="private")
        api_load_btn.click(bind(load_image_api, service), [api_image, *view_inputs], outputs,
                           api_name="load_image", api_visibility="undocumented", **{**edit, "show_progress": "full"})
        display.prompt(bind(prompt, service), [state, mode, *view_inputs], outputs, trigger_mode="multiple",
                       api_name="ui_click", api_visibility="private", **edit)
        # A zoomed view: remembered in order with the clicks, encoded on its own queue at the lowest priority,
        # then clicks in it decode there (sam_demo/static/view/zoomed.js sends it; --zoom-encode turns it on).
        display.zoomed(bind(zoomed, service), [state], [state], trigger_mode="always_last", api_name="ui_zoomed",
                       api_visibility="private", **edit).then(
            bind(encode_zoomed, service), [state], [zoom_encoded], concurrency_id=ZOOM_QUEUE, concurrency_limit=None,
            show_progress="hidden", api_name="ui_encode_zoomed", api_visibility="private").success(
            bind(apply_zoomed, service), [zoom_encoded, state], [state], api_name="ui_apply_zoomed",
            api_visibility="private", **edit)
        display.stroke(bind(stroke_event, service), [state, *view_inputs], outputs, trigger_mode="multiple",
                       api_name="ui_stroke", api_visibility="private", **edit)
        display.resync(bind(rerender, service), [state, *view_inputs], outputs, trigger_mode="always_last",
                       api_name="ui_resync", api_visibility="private", **edit)
        api_click_btn.click(bind(click_api, service), [state, api_x, api_y, mode, *view_inputs], outputs,
                            api_name="click", api_visibility="undocumented", **edit)
        api_stroke_btn.click(bind(paint_stroke, service), [state, api_stroke, *view_inputs], outputs,
                             api_name="stroke", api_visibility="undocumented", **edit)
        for button, handler, name in ((undo_btn, undo, "undo"), (redo_btn, redo, "redo"),
                                      (clear_btn, clear_object, "clear_object"), (reset_btn, clear_all, "clear_all"),
                                      (add_btn, add_object, "add_object"), (hide_btn, toggle_object, "toggle_object"),
                                      (delete_btn, delete_object, "delete_object")):
            button.click(bind(handler, service), [state, *view_inputs], outputs, api_name=name,
                         api_visibility="undocumented", **edit)
        object_select.input(bind(select_object, service), [state, object_select, *view_inputs], outputs,
                            api_name="select_object", api_visibility="undocumented", **edit)
        object_name.submit(bind(rename_object, service), [state, object_name, *view_inputs], outputs,
                           api_name="rename_object", api_visibility="undocumented", **edit)
        object_color.pick(bind(pick_color, service), [state, *view_inputs], outputs, api_name="ui_pick_color",
                          api_visibility="private", **edit)
        candidates.select(bind(choose_candidate, service), [state, *view_inputs], outputs,
                          api_name="ui_choose_mask", api_visibility="private", **edit)
        candidate_btn.click(bind(choose_candidate_api, service), [state, candidate_number, *view_inputs], outputs,
                            api_name="choose_mask", api_visibility="undocumented", **edit)
        for k, button in enumerate(candidate_keys, start=1):
            button.click(bind(choose_fixed_candidate, service, k), [state, *view_inputs], outputs,
                         api_name=f"ui_mask_key_{k}", api_visibility="private", **edit)
        # opacity and outline are redrawn by the page itself (sam_demo/static/view/main.js reads the controls)
        load_btn.upload(bind(load_prompts, service), [state, load_btn, *view_inputs], outputs,
                        api_name="load_prompts", api_visibility="undocumented", **edit)
        export_btn.click(bind(export_files, service), [state, detail], [downloads], api_name="ui_export",
                         api_visibility="private", concurrency_id=EXPORT_QUEUE, concurrency_limit=1)
        # the scripted export keeps its one input (the state): polygons at the default detail
        api_export_btn.click(bind(export_files, service), [state], [downloads], api_name="export",
                             api_visibility="undocumented", concurrency_id=EXPORT_QUEUE, concurrency_limit=1)
        api_btn.click(bind(api_segment, service), [api_image, api_prompts, api_format, api_tolerance], [api_result],
                      api_name="segment",
                      concurrency_id=SEGMENT_QUEUE, concurrency_limit=1)
    # A tab closed or reloaded: its upload, segment everything and refine stop (their slots go to the others).
    demo.unload(bind(leave_tab, service))
    demo.queue(max_size=QUEUE_MAX_SIZE)
    return demo



def app_routes(service: SegmentationService) -> list:
    """The app's own HTTP routes (the view's scripts and an image's files, :mod:`sam_demo.routes`; the page
    decoder's files and an image's embeddings, :mod:`sam_demo.page_decoder`)."""
    page = page_decoder.routes(service.page_decoder, service.grants.resolve, service.embedding)
    return routes.demo_routes(service, service.grants, extra=page)


def launch(demo: gr.Blocks, service: SegmentationService, host: str, port: int) -> str:
    """Serve ``demo`` with the production settings (:func:`launch_kwargs`, :func:`app_routes`) without blocking,
    then freeze the start-up objects out of the garbage collector's passes (:mod:`sam_demo.gc_pauses`: a full
    collection 130-150 ms -> 6-7 ms, during which every click waits). Returns the URL."""
    _, url, _ = demo.launch(prevent_thread_lock=True, quiet=True,
                            **launch_kwargs(host, port, routes=app_routes(service)))
    gc_pauses.freeze_startup_objects()
    return url


def launch_kwargs(host: str, port: int, routes: list | tuple = ()) -> dict:
    """Serving settings (see docs/reliability.md); ``routes`` from :func:`app_routes` (the view needs them)."""
    return {
        "server_name": host, "server_port": port, "max_file_size": MAX_FILE_SIZE,
        "enable_monitoring": False, "show_error": False, "ssr_mode": False,
        "state_session_capacity": 1000, "css": CSS, "head": HEAD, "theme": gr.themes.Soft(),
        "footer_links": ["api"],
        # cross-origin isolation: the page's decoder runs multi-threaded (sam_demo.page_decoder)
        "app_kwargs": {"middleware": [*request_limits_middleware(), *page_decoder.isolation_middleware(),
                                      *previews.middleware()],  # the upload box's preview: a small JPEG
                       "routes": list(routes)},
    }


# ---------------------------------------------------------------------------- entry point
def parse_args(argv=None) -> argparse.Namespace:
    env = os.environ.get
    parser = argparse.ArgumentParser(description="SAM 2.1 interactive segmentation demo (Gradio).")
    parser.add_argument("--host", default=env("GRADIO_SERVER_NAME", "127.0.0.1"),
                        help="address to listen on (0.0.0.0 for all; env GRADIO_SERVER_NAME)")
    parser.add_argument("--port", type=int, default=int(env("GRADIO_SERVER_PORT", "7860")),
                        help="port (env GRADIO_SERVER_PORT)")
    parser.add_argument("--model", type=str.lower, choices=model_choices(), default=None,
                        help=f"model size (env {MODEL_ENV}; default {DEFAULT_MODEL.size}): tiny is the fastest, "
                             "large the most accurate (README: Model sizes); with --model-dir, the size the folder "
                             "holds (or its subfolder of that name)")
    parser.add_argument("--models", default=env(MODELS_ENV),
                        help=f"several sizes users choose between in the page, comma-separated, e.g. small,tiny "
                             f"(env {MODELS_ENV}); each is loaded (README: Model sizes, for the memory each takes); "
                             "--model is the default choice (else the first listed)")
    parser.add_argument("--model-dir", default=env(MODEL_DIR_ENV),
                        help=f"local folder with the ONNX files (env {MODEL_DIR_ENV}); default: download the "
                             "pinned model from the Hugging Face hub on first run")
    parser.add_argument("--encoder", type=str.lower, choices=encoder_choices(), default=None,
                        help=f"image encoder engine (env {ENCODER_ENV}); default auto: at the first start the "
                             "variants this CPU runs are checked against fp32 on a bundled photo and the fastest "
                             "whose masks agree is kept (the decision is remembered in SAM_ONNX_CACHE_DIR); a "
                             "name skips the check")
    parser.add_argument("--encoder-check", choices=ENCODER_CHECKS, default=env("SAM_APP_ENCODER_CHECK", "background"),
                        help="when auto has no stored decision: background = serve on fp32 at once and check "
                             "behind the users' work, switching engines when done (default); start = check "
                             "before serving (env SAM_APP_ENCODER_CHECK)")
    parser.add_argument("--fp16-encoder", action="store_true", default=env("SAM_APP_FP16_ENCODER") == "1",
                        help="same as --encoder fp16 (env SAM_APP_FP16_ENCODER=1)")
    parser.add_argument("--provider", action="append", help="onnxruntime execution provider (repeatable)")
    parser.add_argument("--threads", type=int, default=None, help="threads per onnxruntime session")
    parser.add_argument("--display-side", type=int, default=int(env("SAM_APP_DISPLAY_SIDE", DEFAULT_DISPLAY_SIDE)),
                        help="long side of the displayed image in pixels (env SAM_APP_DISPLAY_SIDE)")
    parser.add_argument("--cache-mb", type=int, default=int(env("SAM_APP_CACHE_MB", "1024")),
                        help="memory for cached image embeddings, ~22 MB per image (env SAM_APP_CACHE_MB)")
    parser.add_argument("--no-page-decoder", action="store_true",
                        default=env(page_decoder.PAGE_DECODER_ENV, "1") == "0",
                        help="no live previews: the page never decodes by itself and downloads neither "
                             f"onnxruntime-web nor the decoder (env {page_decoder.PAGE_DECODER_ENV}=0)")
    parser.add_argument("--zoom-encode", action=argparse.BooleanOptionalAction,
                        default=env("SAM_APP_ZOOM_ENCODE", "1" if DEFAULT_ENCODE_ZOOMED_VIEWS else "0") == "1",
                        help="encode what a view zoomed 2x or more shows, in the background at the lowest priority, "
                             "so that clicks there decode at its resolution (env SAM_APP_ZOOM_ENCODE=1; off by "
                             "default: README, Refining an object)")
    parser.add_argument("--no-warmup", action="store_true",
                        help="skip the warm-up at start (one encoder run, a decoder call, a 2×2 segment everything)")
    scale = parser.add_argument_group("encoder on a Ray Serve deployment (README: Scaling out with Ray Serve)")
    scale.add_argument("--encoder-backend", choices=ENCODER_BACKENDS, default=env("SAM_APP_ENCODER_BACKEND", "local"),
                       help="where uploads are encoded: in this process, or by the Ray Serve deployment at "
                            "--ray-address (env SAM_APP_ENCODER_BACKEND)")
    scale.add_argument("--ray-address", default=env("SAM_APP_RAY_ADDRESS"),
                       help="HTTP address of the Serve proxy with the encoder deployment, e.g. http://HEAD:8000 "
                            "(env SAM_APP_RAY_ADDRESS)")
    scale.add_argument("--ray-fallback", action="store_true", default=env("SAM_APP_RAY_FALLBACK") == "1",
                       help="encode on this machine while the cluster cannot be reached (loads the local encoder "
                            "on first need; env SAM_APP_RAY_FALLBACK=1)")
    scale.add_argument("--ray-uploads", type=int, default=int(env("SAM_APP_RAY_UPLOADS", str(DEFAULT_RAY_UPLOADS))),
                       help=f"uploads this app sends to the cluster at once (default {DEFAULT_RAY_UPLOADS}; "
                            "env SAM_APP_RAY_UPLOADS)")
    args = parser.parse_args(argv)
    try:
        names = [n.strip() for n in (args.models or "").split(",") if n.strip()]
        listed = list(dict.fromkeys(requested_model(n).size for n in names))  # a bad name: exit 2 with the list
        args.model = requested_model(args.model or (listed[0] if listed else None)).size
    except ModelLoadError as exc:
        parser.error(str(exc))  # exit status 2, with the valid names
    args.models = [args.model, *(n for n in listed if n != args.model)] if listed else [args.model]
    if len(args.models) > 1 and args.encoder_backend != "local":
        parser.error("--models needs the local encoder: a Ray Serve deployment encodes with one model")
    return args


def remote_encoder(args: argparse.Namespace) -> RemoteEncoder | None:
    """The Ray Serve encoder for ``--encoder-backend ray`` (checked now), else ``None``."""
    fallback = None
    if args.ray_fallback:
        def fallback():
            return encoders.from_pretrained(model=args.model, model_dir=args.model_dir,
                                            variant=encoders.FP16 if args.fp16_encoder else args.encoder,
                                            providers=args.provider, threads=args.threads)
    return encoder_for_backend(args.encoder_backend, args.ray_address, fallback=fallback)


def make_service(args: argparse.Namespace) -> SegmentationService:
    remote = remote_encoder(args)
    predictor = Sam2Predictor.from_pretrained(model=args.model, model_dir=args.model_dir,
                                              fp16_encoder=args.fp16_encoder,
                                              variant=args.encoder, providers=args.provider, threads=args.threads,
                                              image_encoder=remote, check_later=args.encoder_check == "background")
    others = {name: Sam2Predictor.from_pretrained(model=name, model_dir=args.model_dir,
                                                  fp16_encoder=args.fp16_encoder, variant=args.encoder,
                                                  providers=args.provider, threads=args.threads)
              for name in args.models[1:]}  # --models: each loaded like the default (README: Model sizes)
    page = None if args.no_page_decoder else page_decoder.prepare(predictor, encoders.default_cache_dir())
    service = SegmentationService(predictor, display_max_side=args.display_side, image_cache_mb=args.cache_mb,
                                  upload_concurrency=1 if remote is None else args.ray_uploads, page_decoder=page,
                                  models={args.model: predictor, **others} if others else None,
                                  encode_zoomed_views=args.zoom_encode)
    if not args.no_warmup:
        service.warm_up()
    return service


GRADIO_QUEUE_ENV = {
    # Gradio recomputes a pandas summary of up to 10,000 past events after every event, for the
    # monitoring page this app turns off: 2-6 ms of CPU per click on 2 cores. Summarise rarely, keep fewer.
    "GRADIO_ANALYTICS_CACHE_FREQUENCY": "1000",
    "GRADIO_ANALYTICS_MAX_EVENTS": "1000",
}


def main(argv=None) -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    route_hub_logs_to_root()  # each huggingface_hub message once, in this format
    logging.getLogger("httpx").setLevel(logging.WARNING)  # no line per HTTP request Gradio makes to itself
    for name, value in GRADIO_QUEUE_ENV.items():
        os.environ.setdefault(name, value)
    args = parse_args(argv)
    try:
        service = make_service(args)
    except SamOnnxError as exc:
        raise SystemExit(f"error: {exc}") from None
    demo = build_demo(service)
    # quiet: Gradio's banner suggests share=True, which a public demo must not use (README, Limits and security)
    url = launch(demo, service, args.host, args.port)
    logger.info("serving on %s", url)
    service.start_encoder_check()  # auto without a stored decision: now, behind every user's work
    demo.block_thread()


if __name__ == "__main__":
    main()
