"""The app's own HTTP routes beside Gradio's: the view's scripts and an image's data for the page.

``app.launch_kwargs(..., routes=demo_routes(...))`` hands these Starlette routes to Gradio as
``launch(app_kwargs={"routes": [...]})``; Starlette matches them before Gradio's own. Every route
that serves an image's data takes a token from :mod:`sam_demo.grants` in its path and answers only
for the image that token names, so a tab never reads an image it did not open.

Routes (all ``GET``; ``{token}`` is the tab's grant for one image):

* ``/view/static/{name}``: the view's ES modules (``sam_demo/static/view/*.js``), revalidated on
  each load (``no-cache`` + ETag), so a new version is never stale.
* ``/view/{token}/display.jpg``: the display copy (upright, ``DisplayFrame.display_hw``).
* ``/view/{token}/full.jpg``: the upright original at full resolution (made on first request,
  bounded cache), which the page loads only when zoomed beyond the display copy.
* ``/view/{token}/layer/{layer_id}.png``: one object's mask layer (1-bit PNG, white on transparent,
  cropped to the mask's box; :mod:`sam_demo.layers`). Content-addressed: the id is a hash of what the
  layer shows, so it is cached as immutable. A layer the server no longer knows answers 404 and
  the page asks for a fresh scene.

Other work packages add their routes to :func:`demo_routes` (one list, one place).
Answers: 404 for an unknown name, token or layer (never which one of them), 503 when the image's
data cannot be made now (e.g. its file is gone).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Protocol

from starlette.requests import Request
from starlette.responses import FileResponse, Response
from starlette.routing import BaseRoute, Route

from sam_onnx.errors import SamOnnxError

from .grants import Grants

logger = logging.getLogger(__name__)

STATIC_DIR = Path(__file__).resolve().parent / "static" / "view"
"""The view's ES modules (served as they are; no bundler)."""
STATIC_PREFIX = "/view/static/"
"""Where the page imports the view's modules from (relative to the app's root)."""
IMMUTABLE = "private, max-age=31536000, immutable"
"""Cache-Control of answers whose URL names their content (a token names one image; a layer id its pixels)."""
REVALIDATE = "no-cache"
"""Cache-Control of the scripts: stored, but checked (ETag) before each use."""
_NAME = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
"""Tokens and layer ids: URL-safe base64 or hex, nothing that could step out of a path."""
_STATIC_NAME = re.compile(r"^[a-z0-9_-]{1,64}\.(js|css)$")
_MEDIA = {".js": "text/javascript; charset=utf-8", ".css": "text/css; charset=utf-8"}


class ImageData(Protocol):
    """What the routes need of the engine (``sam_demo.service.SegmentationService`` implements it)."""

    def display_jpeg(self, key: str) -> bytes | None: ...

    def full_jpeg(self, key: str) -> bytes | None: ...

    def layer_png(self, key: str, layer_id: str) -> bytes | None: ...


def _not_found() -> Response:
    return Response("Not found.", status_code=404, media_type="text/plain")


def static_file(request: Request) -> Response:
    """One of the view's scripts, by file name (no sub-folders)."""
    name = request.path_params["name"]
    path = STATIC_DIR / name
    if not _STATIC_NAME.match(name) or not path.is_file():
        return _not_found()
    return FileResponse(path, media_type=_MEDIA[path.suffix], headers={"Cache-Control": REVALIDATE})


def _image_route(grants: Grants, make: Callable[[Request, str], bytes | None], media_type: str):
    """A handler that resolves the path's token to an image key and answers ``make(request, key)``."""

    def handler(request: Request) -> Response:
        token = request.path_params["token"]
        key = grants.resolve(token) if _NAME.match(token) else None
        if key is None:
            return _not_found()
        try:
            body = make(request, key)
        except SamOnnxError as exc:
            logger.info("view route %s: %s", request.url.path.split("/")[-1], exc)
            return Response(str(exc), status_code=503, media_type="text/plain")
        if body is None:
            return _not_found()
        return Response(body, media_type=media_type, headers={"Cache-Control": IMMUTABLE})

    return handler


def view_routes(data: ImageData, grants: Grants) -> list[BaseRoute]:
    """The view's routes: its scripts, and the display copy, full-resolution copy and mask layers of an image."""

    def layer(request: Request, key: str) -> bytes | None:
        layer_id = request.path_params["layer_id"]
        return data.layer_png(key, layer_id) if _NAME.match(layer_id) else None

    return [
        Route(STATIC_PREFIX + "{name}", static_file, methods=["GET"]),
        Route("/view/{token}/display.jpg", _image_route(grants, lambda r, k: data.display_jpeg(k), "image/jpeg"),
              methods=["GET"]),
        Route("/view/{token}/full.jpg", _image_route(grants, lambda r, k: data.full_jpeg(k), "image/jpeg"),
              methods=["GET"]),
        Route("/view/{token}/layer/{layer_id}.png", _image_route(grants, layer, "image/png"), methods=["GET"]),
    ]


def demo_routes(data: ImageData, grants: Grants, extra: Sequence[BaseRoute] = ()) -> list[BaseRoute]:
    """Every route the app adds to Gradio's: the view's, then ``extra`` (other work packages' routes)."""
    return [*view_routes(data, grants), *extra]
