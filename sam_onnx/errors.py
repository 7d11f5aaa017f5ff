"""Exceptions raised by sam_onnx.

Every failure a user can cause or fix (a bad image, a bad prompt, a missing or
damaged model file, an unavailable execution provider) raises a subclass of
:class:`SamOnnxError` whose message says what went wrong and what to do. The
app turns these into user-facing messages in one place; anything else is a bug.
"""

from __future__ import annotations


class SamOnnxError(Exception):
    """Base class of every error that sam_onnx raises on purpose."""


class InvalidImageError(SamOnnxError, ValueError):
    """The image cannot be used: unreadable, unsupported format, too large or too small."""


class InvalidPromptError(SamOnnxError, ValueError):
    """A point, box or prompt set is malformed or lies outside the image."""


class ModelLoadError(SamOnnxError, RuntimeError):
    """Model files are missing, damaged or of the wrong kind, or a provider is unavailable."""


class InferenceError(SamOnnxError, RuntimeError):
    """onnxruntime failed while running a model that loaded correctly."""


class Aborted(SamOnnxError):
    """Work was stopped on request (:class:`sam_onnx.abort.Abort`): nobody waits for its result any more.

    Nothing partial is returned. Not a failure to show: the caller who asked for the stop knows why.
    """

    def __init__(self, message: str = "Stopped on request; nothing was produced.") -> None:
        super().__init__(message)
