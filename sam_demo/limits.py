"""Bounds on what callers send, checked on the raw value before anything is built from it.

A script can send the demo anything: a 30 MB body, 100,000 nested brackets,
a million points, integers with hundreds of digits. Every check here looks at
the raw structure (bytes, nesting depth, list lengths) first, so refusing a
request costs at most one pass over data already bounded in size, and the
message says what was wrong. The request body itself is bounded earlier, by
:class:`sam_demo.gradio_guard.RequestLimits`, with the same numbers.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

import numpy as np

from sam_onnx.errors import InvalidPromptError
from sam_onnx.types import Prompts, short_repr

from .editor import MAX_OBJECTS

MAX_JSON_BYTES = 2 * 1024 * 1024
"""Largest JSON text read (a request body, a prompts file). The largest legal ones are about a third of it: a
prompts file of 256 objects of 32 points, 17-digit coordinates and 60-letter names, as the app writes it, is under
0.7 MB, a ``/segment`` request of 256 objects of 32 points and a box about 0.36 MB (tests/test_input_caps.py)."""
MAX_JSON_DEPTH = 32
"""Deepest nesting of lists and objects accepted (the app's own requests and files need about 8)."""
MAX_JSON_VALUES = 50_000
"""Most values (numbers, strings, lists...) in one JSON text: 256 objects of 32 points are about 34,000.
Gradio walks every value of a request on its event loop before any handler runs (1.5 s for 300,000 values
on 2 cores), so the count is bounded before the body is parsed."""

API_PROMPTS_FORMAT = 'prompts must be JSON: a list of {"points": [[x, y, label]], "box": [x0, y0, x1, y1]}.'
"""The message for a ``/segment`` prompts value that is not of the documented shape."""

_JSON_STRING = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"', re.DOTALL)
_NOT_STRUCTURE = bytes(b for b in range(256) if b not in b"[]{},")


@dataclass(frozen=True)
class JsonShape:
    """The size of a JSON text's structure, read without parsing it."""

    depth: int   # deepest nesting of lists and objects
    values: int  # values in lists and objects (separators + 1 per non-empty container), an upper bound


def json_shape(text: bytes | str) -> JsonShape:
    """Nesting depth and value count of a JSON text, without parsing it (brackets and commas inside strings
    don't count).

    Linear in the text's length: strings are cut out with one regular
    expression, then the remaining brackets and commas are counted with numpy.
    An unterminated string counts what follows it, which can only make the
    answer larger (the text is not valid JSON anyway).
    """
    data = text.encode() if isinstance(text, str) else bytes(text)
    structure = _JSON_STRING.sub(b"", data).translate(None, _NOT_STRUCTURE)
    if not structure:
        return JsonShape(0, 1 if data.strip() else 0)
    codes = np.frombuffer(structure, np.uint8)
    opening = (codes == ord("[")) | (codes == ord("{"))
    steps = np.where(opening, 1, np.where(codes == ord(","), 0, -1))
    return JsonShape(int(np.cumsum(steps).max(initial=0)), int(np.count_nonzero(codes == ord(","))
                                                                + np.count_nonzero(opening) + 1))


def json_depth(text: bytes | str) -> int:
    """Deepest nesting of ``[`` / ``{`` in a JSON text (see :func:`json_shape`)."""
    return json_shape(text).depth


def parse_json(text: bytes | str, what: str, *, max_bytes: int = MAX_JSON_BYTES,
               max_depth: int = MAX_JSON_DEPTH, not_json: str | None = None) -> Any:
    """Parse a JSON text after checking its size and nesting.

    Args:
        text: the JSON text.
        what: how messages name it, e.g. "The prompts file".
        not_json: the message when the text is not JSON (default: "<what> is not valid JSON.").

    Raises:
        InvalidPromptError: too large, nested too deeply, or not JSON.
    """
    size = len(text.encode() if isinstance(text, str) else text)
    if size > max_bytes:
        raise InvalidPromptError(f"{what} is larger than {max_bytes // (1024 * 1024)} MB.")
    if not size or not (text.strip() if isinstance(text, str) else bytes(text).strip()):
        raise InvalidPromptError(f"{what} is empty.")
    shape = json_shape(text)
    if shape.depth > max_depth:
        raise InvalidPromptError(f"{what} is nested more than {max_depth} levels deep.")
    if shape.values > MAX_JSON_VALUES:
        raise InvalidPromptError(f"{what} holds more than {MAX_JSON_VALUES:,} values; 256 objects of 32 points "
                                 "need about 34,000.")
    try:
        return json.loads(text)
    except (ValueError, UnicodeDecodeError, RecursionError):
        raise InvalidPromptError(not_json or f"{what} is not valid JSON.") from None


def api_objects(value: Any) -> list[Prompts]:
    """The objects of a ``/segment`` request: a JSON string or the parsed value.

    The value is a list of ``{"points": [[x, y, label], ...], "box": [x0, y0, x1, y1] | null}``
    in original pixels; a single object may be given without the list. The
    list's length is checked before any object is built, and each object's
    points before any point is (:meth:`sam_onnx.types.Prompts.from_dict`).

    Raises:
        InvalidPromptError: with a message saying what is wrong.
    """
    return api_request(value)[0]


def api_request(value: Any) -> tuple[list[Prompts], list[bool]]:
    """:func:`api_objects` and, per object, its optional ``"refine": true | false`` (default false).

    Raises:
        InvalidPromptError: as :func:`api_objects`, or a ``refine`` that is not true, false or null.
    """
    if isinstance(value, (str, bytes)):
        value = parse_json(value, "The prompts value", not_json=API_PROMPTS_FORMAT)
    if isinstance(value, dict):
        value = [value]
    if not isinstance(value, list):
        raise InvalidPromptError("prompts must be a list of objects with 'points' and/or 'box'.")
    check_object_count(len(value))
    objects, refine = [], []
    for index, item in enumerate(value):
        objects.append(Prompts.from_dict(item))
        flag = item.get("refine") if isinstance(item, dict) else None
        if flag is not None and not isinstance(flag, bool):
            raise InvalidPromptError(f"Object {index + 1}: 'refine' must be true or false, got {short_repr(flag)}.")
        refine.append(bool(flag))
    return objects, refine


def check_object_count(count: int) -> None:
    """One ``/segment`` request holds 1 to :data:`~sam_demo.editor.MAX_OBJECTS` objects.

    Raises:
        InvalidPromptError: none, or too many.
    """
    if not count:
        raise InvalidPromptError("Give at least one object with points or a box.")
    if count > MAX_OBJECTS:  # each costs ~0.8 MB of logits until the answer is built
        raise InvalidPromptError(f"At most {MAX_OBJECTS} objects per request (got {count}).")
