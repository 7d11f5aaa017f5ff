"""Gradio hardening: every failed event carries a short message, uploads are checked before decoding.

Gradio shows only ``gr.Error`` messages to users (``show_error=False`` keeps
other exception texts, which may hold paths, away from them). These pieces make
sure a failure anywhere in an event (a forged file path, a value a component
cannot parse, a library error, a full disk) reaches the user as one short
message while the details go to the server log, and that an upload reaches
the handler as a file path, never decoded by Gradio and never fetched from a URL.
"""

from __future__ import annotations

import errno
import functools
import logging

import gradio as gr
from gradio.exceptions import AppError, ComponentProcessingError, InvalidPathError
from gradio_client.utils import is_http_url_like

from sam_onnx import SamOnnxError

logger = logging.getLogger("sam_app")

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
    return MSG_INTERNAL


class SafeBlocks(gr.Blocks):
    """``gr.Blocks`` whose failed events always carry a message (never ``{"error": null}``).

    Gradio shows only ``gr.Error`` messages (``show_error=False`` keeps other
    exception texts, which may hold paths, away from users). Failures before or
    after a handler (a forged file path, a value a component cannot parse, a full
    disk while saving an output) would reach the user as a bare "Error". Here
    they become a short ``gr.Error``; the details go to the server log. A failed
    event updates no state, so the user's work is unchanged.
    """

    async def process_api(self, *args, **kwargs):
        try:
            return await super().process_api(*args, **kwargs)
        except AppError:
            raise
        except Exception as exc:
            message = _message_for(exc)
            if message in (MSG_INTERNAL, MSG_DISK_FULL):
                logger.exception("event failed")
            else:
                logger.warning("event refused: %s: %s", type(exc).__name__, exc)
            raise gr.Error(message, print_exception=False) from None


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
