"""Small pictures for the page's ``<img>`` previews of uploaded files (issue 22, item 5).

Gradio's upload box shows an uploaded photo by loading the file itself back from the server
(``GET …/gradio_api/file=<path>``): a 12 MP upload downloaded its 2.2 MB original again just to fill a
120 px box. :class:`PreviewMiddleware` answers such an ``<img>`` request with a JPEG of at most
:data:`PREVIEW_SIDE` pixels instead. It only rewrites what Gradio already chose to serve (a 200 answer
with an image type, larger than :data:`PASS_BELOW_BYTES`), so Gradio's own access checks stay in
charge; downloads, ranges, small files and anything it cannot read as an image pass through unchanged.

Which requests are an ``<img>``'s: Chromium and Firefox send ``Sec-Fetch-Dest: image`` (on HTTPS and
localhost); on plain HTTP elsewhere there is no such header and an ``<img>``'s ``Accept`` starts with
``image/`` (a download link's or a script's does not). The answer says ``Vary: Sec-Fetch-Dest, Accept``
so that no cache hands the small picture to a download of the same address.

The page's own view never loads through this route (it has its own, :mod:`sam_demo.routes`); the other
``<img>`` users of Gradio's file route are the example thumbnails and the candidate gallery, all shown
small, and all under :data:`PASS_BELOW_BYTES` here.
"""

from __future__ import annotations

import io
import threading
from collections import OrderedDict

from PIL import Image, ImageOps

FILE_ROUTE = "/gradio_api/file="
"""Where Gradio serves files (uploads, examples, gallery images, downloads)."""
PREVIEW_SIDE = 320
"""Long side (pixels) of a preview: the 120 px upload box at a device pixel ratio up to about 2.5."""
PREVIEW_QUALITY = 82
"""JPEG quality of previews (about 15-30 kB at 320 px)."""
PASS_BELOW_BYTES = 100_000
"""Files up to this size are sent as they are (the issue's bound for the upload preview)."""
MAX_BUFFER_BYTES = 64 * 1024 * 1024
"""A larger answer is passed through as it streams (uploads are capped at 20 MB: app.MAX_FILE_SIZE)."""
MAX_PREVIEW_PIXELS = 200_000_000
"""Pictures with more pixels (by their header) are not decoded for a preview (passed through)."""
CACHE_ENTRIES = 64
"""Previews kept, least recently used first out (about 2 MB at most)."""
CACHE_CONTROL = b"private, max-age=3600"


def wants_image(headers: list[tuple[bytes, bytes]]) -> bool:
    """Whether a request's headers are those of an ``<img>`` load (see the module docstring)."""
    found = {k.lower(): v for k, v in headers}
    if b"range" in found:
        return False
    dest = found.get(b"sec-fetch-dest")
    if dest is not None:
        return dest == b"image"
    return found.get(b"accept", b"").lower().startswith(b"image/")


def make_preview(data: bytes, side: int = PREVIEW_SIDE) -> bytes | None:
    """A JPEG of the picture in ``data``, upright (EXIF orientation applied, no metadata kept), long side at most
    ``side``; ``None`` when ``data`` is not a picture Pillow reads or it is too large to decode for a preview."""
    try:
        with Image.open(io.BytesIO(data)) as image:
            if image.width * image.height > MAX_PREVIEW_PIXELS:
                return None
            image.draft("RGB", (side, side))  # JPEG: decoded at 1/2 .. 1/8 scale, far faster
            upright = ImageOps.exif_transpose(image)
            upright.thumbnail((side, side), Image.Resampling.BILINEAR, reducing_gap=2.0)
            if upright.mode in ("RGBA", "LA", "P"):
                rgba = upright.convert("RGBA")
                flat = Image.new("RGB", rgba.size, (255, 255, 255))
                flat.paste(rgba, mask=rgba.getchannel("A"))
                upright = flat
            out = io.BytesIO()
            upright.convert("RGB").save(out, "JPEG", quality=PREVIEW_QUALITY)
            return out.getvalue()
    except (OSError, ValueError, Image.DecompressionBombError):
        return None


class _Cache:
    """A small thread-safe LRU of previews keyed by what identifies the served file."""

    def __init__(self, entries: int = CACHE_ENTRIES) -> None:
        self.entries = entries
        self._items: OrderedDict[tuple, bytes] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: tuple) -> bytes | None:
        with self._lock:
            value = self._items.get(key)
            if value is not None:
                self._items.move_to_end(key)
            return value

    def put(self, key: tuple, value: bytes) -> None:
        with self._lock:
            self._items[key] = value
            self._items.move_to_end(key)
            while len(self._items) > self.entries:
                self._items.popitem(last=False)


class PreviewMiddleware:
    """ASGI middleware: an ``<img>``'s ``GET`` of a large picture on Gradio's file route gets a small JPEG."""

    def __init__(self, app) -> None:
        self.app = app
        self.cache = _Cache()

    async def __call__(self, scope, receive, send) -> None:
        if (scope["type"] != "http" or scope.get("method") != "GET" or FILE_ROUTE not in scope.get("path", "")
                or not wants_image(scope.get("headers", []))):
            await self.app(scope, receive, send)
            return
        state = {"start": None, "chunks": [], "size": 0, "through": False}

        async def flush_through() -> None:
            state["through"] = True
            await send(state["start"])
            for chunk in state["chunks"]:
                await send({"type": "http.response.body", "body": chunk, "more_body": True})
            state["chunks"] = []

        async def capture(message) -> None:
            if state["through"]:
                await send(message)
                return
            if message["type"] == "http.response.start":
                headers = {k.lower(): v for k, v in message.get("headers", [])}
                length = int(headers.get(b"content-length", b"0") or 0)
                if (message.get("status") != 200 or not headers.get(b"content-type", b"").startswith(b"image/")
                        or length <= PASS_BELOW_BYTES):
                    state["through"] = True
                    await send(message)
                    return
                state["start"] = message
                state["key"] = (scope["path"], length, headers.get(b"last-modified"), headers.get(b"etag"))
                cached = self.cache.get(state["key"])
                if cached is not None:
                    state["preview"] = cached
                return
            if message["type"] != "http.response.body":  # e.g. a server's path-send extension: left as it is
                if state["start"] is not None:
                    await flush_through()
                await send(message)
                return
            body = message.get("body", b"")
            if "preview" not in state:
                state["chunks"].append(body)
                state["size"] += len(body)
                if state["size"] > MAX_BUFFER_BYTES:
                    await flush_through()
                    return
            if message.get("more_body", False):
                return
            preview = state.get("preview")
            if preview is None:
                from starlette.concurrency import run_in_threadpool

                preview = await run_in_threadpool(make_preview, b"".join(state["chunks"]))
                if preview is None:
                    await flush_through()
                    await send({"type": "http.response.body", "body": b"", "more_body": False})
                    return
                self.cache.put(state["key"], preview)
            start = state["start"]
            kept = [(k, v) for k, v in start.get("headers", [])
                    if k.lower() not in (b"content-type", b"content-length", b"cache-control", b"etag", b"vary",
                                         b"last-modified", b"content-disposition", b"accept-ranges")]
            await send({**start, "headers": [*kept, (b"content-type", b"image/jpeg"),
                                             (b"content-length", str(len(preview)).encode()),
                                             (b"cache-control", CACHE_CONTROL),
                                             (b"vary", b"Sec-Fetch-Dest, Accept")]})
            await send({"type": "http.response.body", "body": preview, "more_body": False})

        await self.app(scope, receive, capture)


def middleware() -> list:
    """``app_kwargs["middleware"]`` entries for ``launch`` (innermost: it sees Gradio's own answer)."""
    from starlette.middleware import Middleware

    return [Middleware(PreviewMiddleware)]
