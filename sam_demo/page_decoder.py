"""The page's own decoder: the files it downloads, the HTTP routes that serve them, cross-origin isolation.

The server encodes each image once; the page decodes previews (and a first paint of every click) itself
with onnxruntime-web in a Web Worker (``sam_demo/static/decoder/``), while the server stays the single
source of truth for prompts, masks, scores and exports. What the page downloads:

=============================================  ==========================  =====================================
route                                          what                        caching
=============================================  ==========================  =====================================
``/sam-page/ort/<version>/<file>``             onnxruntime-web, WASM only  immutable (a new version = new URL)
                                               (``sam_demo/static/ort``)   the .wasm travels gzip-compressed
``/sam-page/decoder/<sha256>.onnx``            the page's decoder copy     immutable (named by its content)
                                               (:mod:`sam_onnx.web`)
``/sam-page/config.json``                      URLs below, or why off      revalidated
``/sam-page/js/<file>``                        the page's decoder modules  revalidated (ETag)
``/sam-page/embeddings/<model>/<token>``       one image's embeddings,     ``no-store``: the page keeps them in
                                               float16                     Cache Storage under
                                                                           ``/sam-page/cache/<model>/<image key>``,
                                                                           so a second visit fetches nothing
=============================================  ==========================  =====================================

Embeddings reveal the image, so that route answers only with the tab's grant for that image in the path
(:mod:`sam_demo.grants`: an unguessable token per browser tab and image); an unknown, expired or forged
token gets the same 404 as an unknown image.

Cross-origin isolation (:class:`CrossOriginIsolation`): ``Cross-Origin-Opener-Policy: same-origin`` and
``Cross-Origin-Embedder-Policy: require-corp`` on every response make the page cross-origin isolated, which
onnxruntime-web needs for threads (``SharedArrayBuffer``). ``require-corp`` blocks cross-origin
subresources without a CORP header; the page loads none (Gradio's theme fonts are served by the app itself;
``tests/browser/test_page_decoder.py`` checks every request of a session is same-origin). Where the page is
not isolated (an embedding page that is not, a browser without COEP), the decoder runs one thread.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import logging
import os
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sam_onnx import web
from sam_onnx.errors import SamOnnxError
from sam_onnx.predictor import Sam2Predictor
from sam_onnx.types import ImageEmbedding

logger = logging.getLogger(__name__)

STATIC = Path(__file__).resolve().parent / "static"
ORT_DIR = STATIC / "ort"
JS_DIR = STATIC / "decoder"
ROUTE_PREFIX = "/sam-page"
URL_PREFIX = ROUTE_PREFIX.lstrip("/") + "/"
"""The URLs the page gets are relative to the app's root (``gradio_config.root``), like the view's."""
TOKEN = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
"""A grant token (URL-safe base64), nothing that could step out of a path."""
IMMUTABLE = "public, max-age=31536000, immutable"
REVALIDATE = "no-cache"
NO_STORE = "private, no-store"
WASM_TYPE = "application/wasm"
JS_TYPE = "text/javascript; charset=utf-8"
OCTETS = "application/octet-stream"
ISOLATION_HEADERS = (
    (b"cross-origin-opener-policy", b"same-origin"),
    (b"cross-origin-embedder-policy", b"require-corp"),
    (b"cross-origin-resource-policy", b"same-origin"),
)
"""Headers on every response (:class:`CrossOriginIsolation`); on Hugging Face Spaces the README's
``custom_headers`` sets the first two at the proxy."""
PAGE_DECODER_ENV = "SAM_APP_PAGE_DECODER"
"""``0`` turns the page's decoder off for every visitor (``--no-page-decoder``)."""


def ort_manifest() -> dict[str, Any]:
    """The vendored onnxruntime-web's manifest (``tools/vendor_ort.py`` wrote it)."""
    return json.loads((ORT_DIR / "manifest.json").read_text())


@dataclass(frozen=True)
class PageDecoderAssets:
    """What the page's decoder needs from this server.

    Attributes:
        decoder: the page's copy of the decoder (:func:`sam_onnx.web.write_web_decoder`).
        ort_version: the vendored onnxruntime-web version (part of its URLs).
        model_tag: names the encoder + decoder pair in embedding URLs, so a browser never reuses embeddings
            cached from another model (16 hex digits).
    """

    decoder: web.WebDecoder
    ort_version: str
    model_tag: str

    def page_config(self, threads: int | None = None) -> dict[str, Any]:
        """The URLs (relative to the app's root) and sizes the page's script needs (JSON-ready)."""
        ort = f"{URL_PREFIX}ort/{self.ort_version}/"
        return {"ortUrl": f"{ort}ort.wasm.min.mjs", "wasmPrefix": ort,
                "decoderUrl": f"{URL_PREFIX}decoder/{self.decoder.sha256}.onnx",
                "decoderBytes": self.decoder.nbytes, "workerUrl": f"{URL_PREFIX}js/worker.js",
                "clientUrl": f"{URL_PREFIX}js/client.js", "threads": threads}

    def embeddings_urls(self, image_key: str, token: str) -> dict[str, str]:
        """Where the page fetches an image's embeddings with its grant ``token``, and the token-free URL it
        caches them under in the browser (Cache Storage; never requested from the server)."""
        return {"url": f"{URL_PREFIX}embeddings/{self.model_tag}/{token}",
                "cacheUrl": f"{URL_PREFIX}cache/{self.model_tag}/{image_key}"}


def model_tag(predictor: Sam2Predictor, decoder_sha256: str) -> str:
    """16 hex digits naming the model pair whose embeddings and decoder the page would mix."""
    info = predictor.info
    encoder = Path(info.encoder_path) if info.encoder_path else None
    stamp = ""
    if encoder is not None and encoder.is_file():
        stat = encoder.stat()
        stamp = f"{stat.st_size}:{stat.st_mtime_ns}"
    text = json.dumps([info.source, info.encoder_path, stamp, info.encoder_name, info.encoder_description,
                       decoder_sha256])
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def prepare(predictor: Sam2Predictor, cache_dir: str | os.PathLike) -> PageDecoderAssets | None:
    """Write (once) the page's decoder for ``predictor``; ``None`` (previews off, logged) when there is no
    decoder file to copy or it cannot be copied: the app then works as without previews."""
    decoder_path = predictor.info.decoder_path
    if not decoder_path or not Path(decoder_path).is_file():
        logger.info("page decoder off: the predictor has no decoder file to copy")
        return None
    try:
        decoder = web.write_web_decoder(decoder_path, cache_dir)
    except (SamOnnxError, OSError, ValueError) as exc:
        logger.warning("page decoder off: its copy of the decoder could not be written to %s: %s", cache_dir, exc)
        return None
    assets = PageDecoderAssets(decoder, ort_manifest()["version"], model_tag(predictor, decoder.sha256))
    logger.info("page decoder: %s (%.1f MB), onnxruntime-web %s", decoder.path.name, decoder.nbytes / 1e6,
                assets.ort_version)
    return assets


def scene_fields(assets: PageDecoderAssets | None, image_key: str, token: str) -> dict[str, Any]:
    """What a scene's ``image`` carries for the page's decoder: ``{"embeddings": {"key", "url", "cacheUrl"}}``,
    or nothing when the page decoder is off."""
    if assets is None:
        return {}
    return {"embeddings": {"key": image_key, **assets.embeddings_urls(image_key, token)}}


def page_settings(assets: PageDecoderAssets | None, reason: str = "") -> dict[str, Any]:
    """``/sam-page/config.json``: ``{"enabled": true, <page_config>}``, or ``{"enabled": false, "reason": ...}``."""
    if assets is None:
        return {"enabled": False, "reason": reason or "the server runs without the page decoder"}
    return {"enabled": True, **assets.page_config()}


# ---------------------------------------------------------------------------- HTTP
class CrossOriginIsolation:
    """ASGI middleware: the :data:`ISOLATION_HEADERS` on every HTTP response (replacing any the app set)."""

    def __init__(self, app) -> None:
        self.app = app

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        names = {name for name, _ in ISOLATION_HEADERS}

        async def send_with_headers(message):
            if message["type"] == "http.response.start":
                headers = [(k, v) for k, v in message.get("headers", []) if k.lower() not in names]
                message = {**message, "headers": [*headers, *ISOLATION_HEADERS]}
            await send(message)

        await self.app(scope, receive, send_with_headers)


def isolation_middleware() -> list:
    """``app_kwargs["middleware"]`` entries for cross-origin isolation."""
    from starlette.middleware import Middleware

    return [Middleware(CrossOriginIsolation)]


def routes(assets: PageDecoderAssets | None, resolve: Callable[[str], str | None],
           embedding_of: Callable[[str], ImageEmbedding | None], *, off_reason: str = "") -> list:
    """Starlette routes for ``launch(app_kwargs={"routes": ...})``.

    Args:
        assets: from :func:`prepare`; ``None``: the config route says previews are off and why
            (``off_reason``), and the model's files are not served (the scripts still are: the view loads them).
        resolve: ``token -> image key`` the token grants, or ``None`` (``Grants.resolve``).
        embedding_of: ``image key -> ImageEmbedding`` (the service's cache, encoding again after an
            eviction), or ``None`` when the server does not know the image.
    """
    from starlette.concurrency import run_in_threadpool
    from starlette.requests import Request
    from starlette.responses import FileResponse, JSONResponse, Response
    from starlette.routing import Route

    settings = page_settings(assets, off_reason)

    js_files = {p.name: p for p in JS_DIR.glob("*.js")}
    not_found = Response(status_code=404)

    async def config(request: Request) -> Response:
        return JSONResponse(settings, headers={"Cache-Control": REVALIDATE})

    async def js_file(request: Request) -> Response:
        path = js_files.get(request.path_params["name"])
        if path is None:
            return not_found
        response = FileResponse(path, media_type=JS_TYPE, headers={"Cache-Control": REVALIDATE},
                                stat_result=path.stat())  # stat now: the ETag is known before sending
        if request.headers.get("if-none-match") == response.headers["etag"]:  # revalidated: unchanged
            return Response(status_code=304, headers={"ETag": response.headers["etag"], "Cache-Control": REVALIDATE})
        return response

    always = [Route(f"{ROUTE_PREFIX}/config.json", config), Route(f"{ROUTE_PREFIX}/js/{{name}}", js_file)]
    if assets is None:
        return always
    ort_files = dict(ort_manifest()["files"])

    async def ort_file(request: Request) -> Response:
        name = request.path_params["name"]
        entry = ort_files.get(name)
        if request.path_params["version"] != assets.ort_version or entry is None:
            return not_found
        media = WASM_TYPE if name.endswith(".wasm") else JS_TYPE
        stored = ORT_DIR / entry["stored_as"]
        headers = {"Cache-Control": IMMUTABLE, "Vary": "Accept-Encoding"}
        if entry["stored_as"].endswith(".gz"):
            if "gzip" not in request.headers.get("accept-encoding", ""):
                data = await run_in_threadpool(lambda: gzip.decompress(stored.read_bytes()))
                return Response(data, media_type=media, headers=headers)
            headers["Content-Encoding"] = "gzip"
        return FileResponse(stored, media_type=media, headers=headers)

    async def decoder_file(request: Request) -> Response:
        if request.path_params["sha"] != assets.decoder.sha256:
            return not_found
        return FileResponse(assets.decoder.path, media_type=OCTETS, headers={"Cache-Control": IMMUTABLE})

    async def embeddings(request: Request) -> Response:
        token = request.path_params["token"]
        fresh = request.path_params["tag"] == assets.model_tag and TOKEN.match(token)
        key = resolve(token) if fresh else None
        gone = Response(status_code=404, headers={"Cache-Control": NO_STORE})
        if key is None:
            return gone

        def build() -> bytes | None:
            embedding = embedding_of(key)
            return None if embedding is None else web.embedding_payload(embedding.features, key,
                                                                         embedding.original_hw)

        try:
            data = await run_in_threadpool(build)
        except (web.PayloadError, SamOnnxError) as exc:
            logger.warning("embeddings of %s not sent to the page: %s", key[:12], exc)
            return Response(status_code=503, headers={"Cache-Control": NO_STORE})
        if data is None:
            return gone
        return Response(data, media_type=OCTETS, headers={"Cache-Control": NO_STORE})

    return [
        *always,
        Route(f"{ROUTE_PREFIX}/ort/{{version}}/{{name}}", ort_file),
        Route(f"{ROUTE_PREFIX}/decoder/{{sha}}.onnx", decoder_file),
        Route(f"{ROUTE_PREFIX}/embeddings/{{tag}}/{{token}}", embeddings),
    ]
