"""Gradio hardening: bounded requests, one user's events in order, a message for every failed event.

Gradio shows only ``gr.Error`` messages to users (``show_error=False`` keeps
other exception texts, which may hold paths, away from them). These pieces make
sure that

* a request body is refused before it is parsed when it is larger than
  :data:`MAX_BODY_BYTES` or nested deeper than :data:`MAX_JSON_DEPTH`
  (:class:`RequestLimits`, an ASGI middleware);
* the events that change a user's state run one at a time per browser tab, in
  the order they were sent, while other tabs' events run meanwhile
  (:class:`SessionOrder`); each event runs as its tab (:data:`sam_demo.fair.current_owner`),
  so the engine can share the CPU fairly between tabs;
* a failure anywhere in an event (a forged file path, a value a component
  cannot parse, a missing argument, a library error, a full disk) reaches the
  user as one short message; a caller's mistake logs one line, a server fault
  its traceback;
* an upload reaches the handler as a file path, never decoded by Gradio and
  never fetched from a URL.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import functools
import json
import logging
from collections.abc import AsyncIterator

import gradio as gr
from gradio.exceptions import AppError, ComponentProcessingError, InvalidPathError
from gradio_client.utils import is_http_url_like
from pydantic import ValidationError

from sam_onnx import SamOnnxError

from . import fair
from .limits import MAX_JSON_BYTES, MAX_JSON_DEPTH, MAX_JSON_VALUES, json_shape

logger = logging.getLogger("sam_app")

MAX_BODY_BYTES = MAX_JSON_BYTES
"""Largest request body (JSON of an API call or an event) read; uploads have their own limit (``max_file_size``).
The largest legal request (256 objects of 32 points and a box) is about 0.36 MB; images travel as uploads, never
inside the JSON."""
MAX_PENDING_PER_SESSION = 32
"""Events of one browser tab that may wait for that tab's earlier events; more are refused at once."""
MAX_PENDING_IN_ALL = 512
"""Events of all tabs that may wait for their tab's earlier events."""
UPLOAD_ROUTE = "/gradio_api/upload"
"""Gradio's multipart upload route: limited by ``max_file_size`` while it streams to disk, not here. Only this
exact path: ``/gradio_api/call/upload`` (an API named "upload") is a JSON route like any other."""

MSG_BODY_TOO_LARGE = (f"The request is larger than {MAX_BODY_BYTES // (1024 * 1024)} MB. Send images as file uploads "
                      "(gradio_client.handle_file) and at most 256 objects per request.")
MSG_TOO_DEEP = f"The request is nested more than {MAX_JSON_DEPTH} levels deep; check the values sent."
MSG_TOO_MANY_VALUES = (f"The request holds more than {MAX_JSON_VALUES:,} values; 256 objects of 32 points need "
                       "about 34,000.")
MSG_NOT_JSON = "The request body is not valid JSON."
MSG_TOO_MANY_PENDING = "Too many actions are waiting in this tab; wait for the previous ones to finish."
MSG_BUSY = "The server is busy; please try again in a moment."


class RequestLimits:
    """ASGI middleware: refuse request bodies over :data:`MAX_BODY_BYTES`, nested over :data:`MAX_JSON_DEPTH`
    or holding over :data:`~sam_demo.limits.MAX_JSON_VALUES` values.

    A declared ``Content-Length`` over the limit is refused before a byte of
    the body is read (HTTP 413); a body without one (chunked) is read up to the
    limit and refused with the piece that passes it (uvicorn reads ahead by at
    most its flow-control buffer, 64 kB). Every body that may be parsed as JSON
    is checked for its nesting (HTTP 400) and its number of values (HTTP 413)
    before the app parses it: Gradio parses it and walks every value on its
    event loop before any handler runs. That is every body but a multipart form,
    whatever its content type says: FastAPI parses a body without a type, or
    with any case and parameters of ``application/json``, and Gradio's component
    route parses any body that is not multipart. So no request can make the
    server parse or hold more than :data:`MAX_BODY_BYTES`. Gradio's upload route
    (:data:`UPLOAD_ROUTE`) is left to ``max_file_size``, which it applies while
    streaming to disk.
    """

    def __init__(self, app, max_body_bytes: int = MAX_BODY_BYTES, max_depth: int = MAX_JSON_DEPTH,
                 max_values: int = MAX_JSON_VALUES) -> None:
        self.app = app
        self.max_body_bytes = max_body_bytes
        self.max_depth = max_depth
        self.max_values = max_values

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http" or scope.get("method") not in ("POST", "PUT", "PATCH") or \
                _route(scope) == UPLOAD_ROUTE:
            await self.app(scope, receive, send)
            return
        headers = dict(scope.get("headers") or ())
        declared = headers.get(b"content-length")
        if declared is not None and (not declared.isdigit() or int(declared) > self.max_body_bytes):
            await self._refuse(scope, send, 413, MSG_BODY_TOO_LARGE)
            return
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_body_bytes:
                await self._refuse(scope, send, 413, MSG_BODY_TOO_LARGE)
                return
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        body = b"".join(chunks)
        if not headers.get(b"content-type", b"").lstrip().lower().startswith(MULTIPART):
            shape = json_shape(body)
            if shape.depth > self.max_depth:
                await self._refuse(scope, send, 400, MSG_TOO_DEEP)
                return
            if shape.values > self.max_values:
                await self._refuse(scope, send, 413, MSG_TOO_MANY_VALUES)
                return
        sent = False

        async def replay():
            nonlocal sent
            if sent:
                return await receive()  # after the body: disconnects and the like
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}

        await self.app(scope, replay, send)

    @staticmethod
    async def _refuse(scope, send, status: int, message: str) -> None:
        logger.info("request refused (%d) on %s: %s", status, scope.get("path", "?"), message.split(".")[0])
        payload = json.dumps({"detail": message, "error": message}).encode()
        await send({"type": "http.response.start", "status": status,
                    "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(payload)).encode()),
                                (b"connection", b"close")]})
        await send({"type": "http.response.body", "body": payload})


MULTIPART = b"multipart/"
"""Content types whose bodies are never parsed as JSON (forms with files): only their size is bounded."""


def _route(scope) -> str:
    """The request's path inside the app (without a proxy's ``root_path``)."""
    path, root = scope.get("path", ""), scope.get("root_path", "")
    return path[len(root):] if root and path.startswith(root) else path


def request_limits_middleware() -> list:
    """``app_kwargs["middleware"]`` for ``launch`` (FastAPI builds the stack when the server starts)."""
    from starlette.middleware import Middleware

    return [Middleware(RequestLimits)]


class SessionOrder:
    """Runs one browser tab's events one at a time, in the order they arrived; other tabs are never held.

    Gradio reads a tab's ``gr.State`` when an event starts and writes it when
    the event ends, so two events of one tab running at once would both start
    from the same state and one edit would be lost. Events enter
    :meth:`turn` in the order Gradio's queue dispatched them (first in, first
    out) and an ``asyncio.Lock`` wakes its waiters in that order.
    """

    def __init__(self, max_pending: int = MAX_PENDING_PER_SESSION, max_in_all: int = MAX_PENDING_IN_ALL) -> None:
        self.max_pending = max_pending
        self.max_in_all = max_in_all
        self._locks: dict[str, tuple[asyncio.Lock, int]] = {}
        self._total = 0

    def pending(self, session: str) -> int:
        return self._locks.get(session, (None, 0))[1]

    @contextlib.asynccontextmanager
    async def turn(self, session: str) -> AsyncIterator[None]:
        lock, count = self._locks.get(session) or (asyncio.Lock(), 0)
        if count >= self.max_pending:
            raise gr.Error(MSG_TOO_MANY_PENDING, print_exception=False)
        if self._total >= self.max_in_all:
            raise gr.Error(MSG_BUSY, print_exception=False)
        self._locks[session] = (lock, count + 1)
        self._total += 1
        try:
            async with lock:
                yield
        finally:
            self._total -= 1
            lock, count = self._locks[session]
            if count <= 1:
                del self._locks[session]
            else:
                self._locks[session] = (lock, count - 1)


def _path_only(payload):
    """Preprocess of :func:`uploaded_image`: the uploaded file's path, not decoded."""
    if payload is None:
        return None
    if payload.url and payload.url.startswith("data:"):
        raise gr.Error("Send the image as a file upload (gradio_client.handle_file), not as a data: URL.",
                       print_exception=False)
    if payload.path is None:
        raise gr.Error("No image file was received.", print_exception=False)
    return str(payload.path)


def uploaded_image(**kwargs) -> gr.Image:
    """A ``gr.Image`` whose handler gets the uploaded file's path without Gradio decoding it.

    ``sam_onnx.image.load_image`` decodes it with format, size and bomb checks
    and clear messages; Gradio's own decoding would turn such failures into a
    bare "Error" (docs/reliability.md). ``data:`` URLs (API only) are refused
    because they bypass ``max_file_size``. (An instance override, not a
    subclass: Gradio writes a ``.pyi`` stub next to the module of every
    component subclass.)
    """
    image = gr.Image(type="filepath", **kwargs)
    image.preprocess = _path_only
    fetch = image.async_move_resource_to_block_cache

    async def no_urls(url_or_file_path):
        # Refuse URLs before Gradio fetches them: the server never downloads what a caller points it at.
        if url_or_file_path is not None and is_http_url_like(str(url_or_file_path)):
            raise gr.Error(MSG_NO_URLS, print_exception=False)
        return await fetch(url_or_file_path)

    image.async_move_resource_to_block_cache = no_urls
    return image


MSG_NO_URLS = "Images are not fetched from URLs; upload the file instead (gradio_client.handle_file)."
MSG_NOT_UPLOADED = "This file was not uploaded to this app; upload it first (gradio_client.handle_file does that)."
MSG_BAD_VALUE = "A value in the request was not understood; check the endpoint's parameters."
MSG_NOT_A_FILE = "Send the image as a file upload (gradio_client.handle_file), not as text."
FILE_MODELS = frozenset({"ImageData", "FileData"})
"""Gradio data models of file values: a caller who sends anything else gets :data:`MSG_NOT_A_FILE`."""
MSG_DISK_FULL = "The server is out of disk space; please try again later. Your work is unchanged."
MSG_INTERNAL = "Something went wrong on the server; your work is unchanged. Please try again."


def _message_for(exc: Exception) -> str:
    """A short user-facing message for an exception Gradio would otherwise report as a bare "Error"."""
    cause = exc.__cause__ if isinstance(exc, ComponentProcessingError) else exc
    if isinstance(cause, OSError) and cause.errno == errno.ENOSPC:
        return MSG_DISK_FULL
    if isinstance(exc, InvalidPathError):
        return MSG_NOT_UPLOADED
    if isinstance(exc, ComponentProcessingError) and str(exc).startswith("Could not preprocess"):
        return MSG_BAD_VALUE  # a value sent by the caller; failures on our outputs are ours (MSG_INTERNAL)
    if isinstance(exc, ValidationError):  # Gradio checks a sent value against its component's data model
        return MSG_NOT_A_FILE if exc.title in FILE_MODELS else MSG_BAD_VALUE
    return MSG_INTERNAL


def _has_default(block) -> bool:
    """An input a caller may leave out: a component with a default value (``/segment``'s format, tolerance), or
    a ``gr.State``, whose value Gradio takes from the session whatever the request says (the upload event's
    trailing state)."""
    return getattr(block, "stateful", False) or getattr(block, "value", None) is not None


def _with_defaults(block_fn, inputs: list) -> list:
    """``inputs`` with the left-out trailing inputs that have defaults filled in.

    Raises:
        gr.Error: a left-out input has no default; the message lists the values the endpoint takes.
    """
    missing = block_fn.inputs[len(inputs):]
    if not all(_has_default(block) for block in missing):
        raise gr.Error(_missing_values_message(block_fn), print_exception=False)
    return [*inputs, *(block.value for block in missing)]


def _missing_values_message(block_fn) -> str:
    def name(block) -> str:
        return getattr(block, "label", None) or type(block).__name__.lower()

    given = [block for block in block_fn.inputs if not getattr(block, "stateful", False)]
    optional = []
    while given and _has_default(given[-1]):
        optional.insert(0, given.pop())
    endpoint = f"/{block_fn.api_name}" if block_fn.api_name else "This event"
    then = f", then optionally {' and '.join(name(b) for b in optional)}" if optional else ""
    return f"{endpoint} takes {len(given)} values ({', '.join(name(b) for b in given)}){then}; the request has fewer."


def atomic_cache_writes() -> None:
    """Make Gradio write its content-addressed image files atomically, and only once per content.

    Gradio 6.31 saves every output picture as ``<cache>/<hash of the bytes>/image.<format>`` by
    truncating and rewriting that file, even when it exists. Two events that show the same picture
    (two users on an example photo, an undo then a redo, a re-render) then rewrite a file the
    browser may be downloading at that moment, which arrives cut ("Too little data for declared
    Content-Length"). Here the bytes go to a temporary name and are renamed into place, and an
    existing file of the same content is reused, as Gradio already does for copied files
    (``processing_utils.save_file_to_cache``). Idempotent.
    """
    import os
    import tempfile
    from pathlib import Path

    from gradio import processing_utils

    if getattr(processing_utils.save_pil_to_cache, "atomic", False):
        return

    def save_pil_to_cache(img, cache_dir: str, name: str = "image", format: str = "webp") -> str:
        data = processing_utils.encode_pil_to_bytes(img, format)
        folder = Path(cache_dir) / processing_utils.hash_bytes(data)
        folder.mkdir(exist_ok=True, parents=True)
        target = (folder / f"{name}.{format}").resolve()
        if target.is_file() and target.stat().st_size == len(data):
            with contextlib.suppress(OSError):
                os.utime(target)  # delete_cache ages files: a picture shown again is young again
            return str(target)
        handle, staging = tempfile.mkstemp(dir=folder, prefix=f".{name}.")
        try:
            with os.fdopen(handle, "wb") as out:
                out.write(data)
            os.replace(staging, target)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(staging)
            raise
        return str(target)

    save_pil_to_cache.atomic = True  # type: ignore[attr-defined]
    processing_utils.save_pil_to_cache = save_pil_to_cache


class SafeBlocks(gr.Blocks):
    """``gr.Blocks`` whose failed events always carry a message, and whose state-changing events run in order per tab.

    Gradio shows only ``gr.Error`` messages (``show_error=False`` keeps other
    exception texts, which may hold paths, away from users). Failures before or
    after a handler (a forged file path, a value a component cannot parse, a
    missing argument, a full disk while saving an output) would reach the user
    as a bare "Error". Here they become a short ``gr.Error``; the details go to
    the server log. A failed event updates no state, so the user's work is
    unchanged.

    :meth:`order_per_session` names the state whose writers run one at a time
    per tab (:class:`SessionOrder`); every event runs with
    :data:`sam_demo.fair.current_owner` set to its tab.

    A generator event takes one turn per step, and Gradio's message that ends
    it repeats its last yield (``Blocks.handle_streaming_diffs``, ``final``).
    An edit of the same tab that ran after that yield (a click on a photo
    whose upload was still encoding) would be painted over by the repeat: the
    page would show the upload's view without the click, and never the click's
    answer. So when another ordered event of the tab ran since a generator's
    last yield, its ending message changes nothing (the page already got that
    yield as it was made).
    """

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self._ordered_state_ids: set[int] = set()
        self.session_order = SessionOrder()
        self._turns_since_yield: dict[tuple[str, str], int] = {}
        """(tab, generator run) -> ordered turns the tab took since that run's last yield (its own included)."""
        atomic_cache_writes()

    def order_per_session(self, *states: gr.State) -> None:
        """Run the events that write any of ``states`` one at a time per tab, in the order they were sent."""
        self._ordered_state_ids.update(state._id for state in states)

    def _is_ordered(self, block_fn) -> bool:
        return any(block._id in self._ordered_state_ids for block in block_fn.outputs)

    async def process_api(self, block_fn, inputs, state=None, request=None, *args, session_hash=None, event_id=None,
                          **kwargs):
        fn = self.fns[block_fn] if isinstance(block_fn, int) else block_fn
        token = fair.current_owner.set(session_hash or event_id)
        try:
            if isinstance(inputs, list) and not fn.batch and len(inputs) < len(fn.inputs):
                inputs = _with_defaults(fn, inputs)
            call = functools.partial(self._all_or_nothing, block_fn, fn, inputs, state, request, *args,
                                     session_hash=session_hash, event_id=event_id, **kwargs)
            if session_hash and self._is_ordered(fn):
                async with self.session_order.turn(session_hash):
                    for key in self._turns_since_yield:
                        if key[0] == session_hash:
                            self._turns_since_yield[key] += 1
                    return await call()
            return await call()
        except AppError as exc:
            # A refused value or a caller's mistake: what the user sees, one line in the log.
            logger.info("refused /%s: %s", fn.api_name or fn.name, str(exc.message)[:200])
            raise
        except Exception as exc:
            message = _message_for(exc)
            if message in (MSG_INTERNAL, MSG_DISK_FULL):
                logger.exception("event failed")
            else:
                logger.warning("refused /%s: %s: %s", fn.api_name or fn.name, type(exc).__name__,
                               str(exc).splitlines()[0][:200] if str(exc) else "")
            raise gr.Error(message, print_exception=False) from None
        finally:
            fair.current_owner.reset(token)

    def handle_streaming_diffs(self, block_fn, data: list, session_hash: str | None, run: str | None, final: bool,
                               simple_format: bool = False) -> list:
        """Gradio's, except that an ordered generator's ending message changes nothing when another event of
        its tab ran since its last yield (see the class docstring); ``data`` is one value per output."""
        key = (session_hash, run)
        ordered = session_hash is not None and run is not None and self._is_ordered(block_fn)
        edited_since = ordered and final and self._turns_since_yield.get(key, 0) > 1  # more than its own last turn
        data = super().handle_streaming_diffs(block_fn, data, session_hash, run, final, simple_format)
        if ordered and not final:
            self._turns_since_yield[key] = 0  # this step's values are the newest the page has
        if edited_since:
            data = [None if block.stateful else {"__type__": "update"} for block in block_fn.outputs]
        return data

    def _pop_run_diffs(self, session_hash: str, run: str) -> None:
        """Gradio's, and the run's turn count goes too (a generator that ended, failed or was dropped)."""
        super()._pop_run_diffs(session_hash, run)
        self._turns_since_yield.pop((session_hash, run), None)

    async def _all_or_nothing(self, block_fn, fn, inputs, state, *args, **kwargs):
        """Gradio's ``process_api``, with the event's ``gr.State`` outputs put back as they were if it fails.

        Gradio stores each output in order while postprocessing; a later output that fails (a full disk
        while the gallery saves its images) would otherwise leave the earlier state written: the user sees
        an error, yet the edit happened.
        """
        ids = [block._id for block in fn.outputs if block.stateful]
        data = getattr(state, "state_data", None)
        saved = {key: data[key] for key in ids if key in data} if data is not None else {}
        try:
            return await super().process_api(block_fn, inputs, state, *args, **kwargs)
        except BaseException:
            if data is not None:
                for key in ids:
                    if key in saved:
                        data[key] = saved[key]
                    else:
                        data.pop(key, None)
            raise


def user_error(exc: Exception) -> gr.Error:
    return gr.Error(str(exc), print_exception=False)


def guarded(fn):
    """Turn the library's expected errors into a message the user sees; state stays as it was."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except SamOnnxError as exc:
            raise user_error(exc) from None

    return wrapper
