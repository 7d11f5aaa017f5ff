"""The encoder deployment's wire format, shared by the client (:mod:`.remote`) and the server (:mod:`sam_serve`).

Protocol version :data:`PROTOCOL`, over HTTP::

    GET  <url>/info     -> JSON {"protocol", "encoder", "description", "host", "pid", "load_seconds"}
    POST <url>/encode   body: pixel_values, little-endian float32, C order, (1, 3, 1024, 1024)
                        -> 200, body: image_embeddings.0/.1/.2, little-endian float16, C order,
                           concatenated; header X-Encode-Seconds (the replica's own encoder time)
                        -> 400 + text for a malformed body, 5xx when a replica failed or died

Embeddings travel as float16 (8.4 MB instead of 16.8 MB); the client widens
them to float32, so they equal the local fp32 embeddings rounded to float16.
Both sides pack and unpack only through the functions here.
"""

from __future__ import annotations

import numpy as np

from ..errors import InferenceError
from .base import EMBEDDING_SHAPES, PIXEL_SHAPE

PROTOCOL = 1
"""Version of the wire protocol above; the client refuses a deployment that speaks another."""
ROUTE_PREFIX = "/sam-encoder"
"""Where the deployment is mounted on the Serve HTTP proxy (added when an address has no path)."""
DEFAULT_HTTP_PORT = 8000
"""Ray Serve's default HTTP port (added when an http:// address has no port)."""
INFO_PATH = "/info"
ENCODE_PATH = "/encode"
PIXEL_DTYPE = np.dtype("<f4")
EMBEDDING_DTYPE = np.dtype("<f2")
PIXEL_BYTES = int(np.prod(PIXEL_SHAPE)) * PIXEL_DTYPE.itemsize
"""12,582,912 bytes: one upload's request body."""
EMBEDDING_BYTES = sum(int(np.prod(s)) for s in EMBEDDING_SHAPES) * EMBEDDING_DTYPE.itemsize
"""8,388,608 bytes: one upload's response body."""
ENCODE_SECONDS_HEADER = "X-Encode-Seconds"
OCTET_STREAM = "application/octet-stream"


def pack_pixels(pixel_values: np.ndarray) -> bytes:
    """``(1, 3, 1024, 1024)`` model-frame pixels -> the request body (float32, little-endian, C order)."""
    return np.ascontiguousarray(pixel_values, dtype=PIXEL_DTYPE).tobytes()


def pixels_problem(body: bytes) -> str | None:
    """Why ``body`` is not one request's pixels (its length), or ``None`` when it is."""
    if len(body) != PIXEL_BYTES:
        return f"expected {PIXEL_BYTES} bytes of float32 pixels {PIXEL_SHAPE}, got {len(body)}"
    return None


def unpack_pixels(body: bytes) -> np.ndarray:
    """The request body -> ``(1, 3, 1024, 1024)`` float32 (read-only, no copy); check :func:`pixels_problem` first."""
    return np.frombuffer(body, PIXEL_DTYPE).reshape(PIXEL_SHAPE)


def pack_embeddings(embeddings) -> bytes:
    """The three embeddings (any float dtype, contract shapes) -> the response body (float16, concatenated)."""
    return b"".join(np.ascontiguousarray(e, dtype=EMBEDDING_DTYPE).tobytes() for e in embeddings)


def unpack_embeddings(blob: bytes, *, sender: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The response body -> the three embeddings as float16 views of ``blob`` (the contract's shapes).

    Raises:
        InferenceError: the body has the wrong length (``sender`` names who sent it).
    """
    if len(blob) != EMBEDDING_BYTES:
        raise InferenceError(f"The encoder deployment at {sender} returned {len(blob)} bytes, expected "
                             f"{EMBEDDING_BYTES}; deploy the same version of sam_onnx on both sides.")
    flat = np.frombuffer(blob, EMBEDDING_DTYPE)
    arrays, start = [], 0
    for shape in EMBEDDING_SHAPES:
        size = int(np.prod(shape))
        arrays.append(flat[start:start + size].reshape(shape))
        start += size
    return tuple(arrays)  # type: ignore[return-value]
