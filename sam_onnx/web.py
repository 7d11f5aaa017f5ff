"""Files for a web page that decodes prompts itself with onnxruntime-web: its copy of the decoder, and an
image's embeddings as bytes. Pure functions plus one cached writer; no web server here.

**The page's decoder** (:func:`web_decoder_model`, :func:`write_web_decoder`) is the server's decoder graph
with three changes, nothing else:

1. the onnxruntime Concat repair (:mod:`sam_onnx.graph_repair`) applied, as on the server, but without
   the witness outputs only the server's self-check reads (the page's session has exactly the decoder's
   three outputs);
2. the three ``image_embeddings.*`` inputs take **float16**, each followed by a ``Cast`` to float32 before
   any other node reads it. The page receives the embeddings as float16 (half the bytes) and keeps them
   that way (half the memory); widening float16 to float32 is exact, so the decoder computes on exactly
   the numbers a float32 input holding the same float16 values would give;
3. every weight inline in one file (onnxruntime-web does not fetch an ``.onnx_data`` sidecar by itself).

Weights and every other node stay float32, bit for bit. The copy is written once per decoder file into
``<cache>/web/`` under a folder named by the source files' SHA-256 (:func:`model_fingerprint`) and
:data:`WEB_DECODER_FORMAT`, so a changed model or writer gives a new file and a stale copy is never served.

**Embedding payload** (:func:`embedding_payload`, :func:`read_embedding_payload`): one image's three
embedding levels as float16, 8,388,608 bytes of data plus a small header. Layout, version
:data:`PAYLOAD_VERSION`, all integers little-endian::

    offset  size  field
    0       8     magic b"SAM2EMB\\0"
    8       4     uint32 format version (1)
    12      4     uint32 n: length of the JSON header in bytes (a multiple of 8; padded with spaces)
    16      n     UTF-8 JSON: {"image": <image key>, "original_hw": [H, W], "dtype": "float16",
                               "levels": [{"name": "image_embeddings.0", "shape": [1, 32, 256, 256],
                                           "offset": 0, "bytes": 4194304}, ...]}
    16 + n  ...   the levels, float16 little-endian, C order, at their "offset" from here

The data section starts on an 8-byte boundary, so a page can view each level as a ``Uint16Array`` (the
float16 bit patterns that onnxruntime-web's ``float16`` tensors take) without copying.
"""

from __future__ import annotations

import json
import logging
import os
import struct
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnx
from numpy.typing import NDArray
from onnx import TensorProto, helper

from .encoders.fingerprint import model_fingerprint
from .graph_repair import load_decoder_model, repair_prompt_concat
from .hub import sha256_of
from .session import EMBEDDING_CHW, EMBEDDING_NAMES

logger = logging.getLogger(__name__)

WEB_DECODER_FORMAT = 1
"""Version of what :func:`web_decoder_model` writes; part of the cache folder's name (bump on any change)."""
WEB_DECODER_FILE = "decoder.onnx"
WEB_FOLDER = "web"
EMBEDDING_INPUT_DTYPE = TensorProto.FLOAT16
CAST_SUFFIX = "__float32"

PAYLOAD_MAGIC = b"SAM2EMB\0"
PAYLOAD_VERSION = 1
PAYLOAD_DTYPE = np.dtype("<f2")
PAYLOAD_ALIGN = 8
_PREFIX = struct.Struct("<8sII")
PAYLOAD_DATA_BYTES = sum(int(np.prod(chw)) for chw in EMBEDDING_CHW) * PAYLOAD_DTYPE.itemsize
"""8,388,608: the three levels as float16 (the header adds a few hundred bytes)."""


class PayloadError(ValueError):
    """Bytes that are not an embedding payload of this version, or embeddings that float16 cannot hold."""


# ---------------------------------------------------------------------------- the page's decoder
def web_decoder_model(model: onnx.ModelProto) -> onnx.ModelProto:
    """The page's copy of a decoder graph (changes listed in the module docstring). Pure: ``model`` is untouched.

    Args:
        model: the decoder as read from its file (external data inlined, not repaired;
            :func:`sam_onnx.graph_repair.load_decoder_model`).

    Returns:
        A new model: repaired, float16 embedding inputs cast to float32, outputs unchanged.

    Raises:
        ValueError: the graph lacks one of the three embedding inputs.
    """
    out = onnx.ModelProto()
    out.CopyFrom(model)
    repair_prompt_concat(out, witnesses=False)
    graph = out.graph
    inputs = {i.name: i for i in graph.input}
    missing = [name for name in EMBEDDING_NAMES if name not in inputs]
    if missing:
        raise ValueError(f"the decoder has no input {', '.join(missing)}")
    casts = []
    for name in EMBEDDING_NAMES:
        tensor_type = inputs[name].type.tensor_type
        if tensor_type.elem_type != TensorProto.FLOAT:
            raise ValueError(f"decoder input {name} is {TensorProto.DataType.Name(tensor_type.elem_type)}, "
                             "expected FLOAT")
        tensor_type.elem_type = EMBEDDING_INPUT_DTYPE
        widened = name + CAST_SUFFIX
        for node in graph.node:
            for slot, used in enumerate(node.input):
                if used == name:
                    node.input[slot] = widened
        casts.append(helper.make_node("Cast", [name], [widened], to=TensorProto.FLOAT, name=f"{name}_to_float32"))
    for position, node in enumerate(casts):
        graph.node.insert(position, node)
    return out


@dataclass(frozen=True)
class WebDecoder:
    """The page's decoder file on disk.

    Attributes:
        path: the single-file ONNX graph.
        sha256: hex SHA-256 of its bytes (names it in URLs, so a browser may cache it forever).
        nbytes: its size.
    """

    path: Path
    sha256: str
    nbytes: int


def write_web_decoder(decoder: str | os.PathLike, cache_dir: str | os.PathLike) -> WebDecoder:
    """The page's copy of ``decoder``, written once into ``cache_dir/web/<source hash>-v<format>/``.

    Reuses the copy when it exists (a later start costs one hash of the source files, which the
    predictor's load has usually memoised already). Written to a temporary file and renamed, so a
    crash or a second process never leaves a partial file under the final name.

    Args:
        decoder: the decoder ``.onnx`` (its ``.onnx_data`` beside it, if any).
        cache_dir: folder for derived files (``$SAM_ONNX_CACHE_DIR``).

    Raises:
        ModelLoadError: the decoder cannot be read.
        OSError: the cache folder is not writable.
    """
    decoder = Path(decoder)
    folder = Path(cache_dir) / WEB_FOLDER / f"{model_fingerprint(decoder)[:32]}-v{WEB_DECODER_FORMAT}"
    target = folder / WEB_DECODER_FILE
    if not target.is_file():
        folder.mkdir(parents=True, exist_ok=True)
        data = web_decoder_model(load_decoder_model(decoder)).SerializeToString()
        with tempfile.NamedTemporaryFile(dir=folder, prefix=".decoder-", suffix=".tmp", delete=False) as fh:
            fh.write(data)
        os.replace(fh.name, target)
        logger.info("wrote the page's decoder %s (%.1f MB) from %s", target, len(data) / 1e6, decoder)
    return WebDecoder(target, sha256_of(target), target.stat().st_size)


# ---------------------------------------------------------------------------- embeddings as bytes
def embedding_payload(features: Sequence[NDArray[np.floating]], image_key: str,
                      original_hw: tuple[int, int]) -> bytes:
    """One image's embeddings as the payload above (float16, round to nearest even).

    Args:
        features: the three levels, ``(1, 32, 256, 256)``, ``(1, 64, 128, 128)``, ``(1, 256, 64, 64)``,
            float32 (an :class:`~sam_onnx.types.ImageEmbedding`'s ``features``). Embeddings that came
            from a Ray Serve replica as float16 convert back exactly.
        image_key: the image's content hash (the page's cache key).
        original_hw: ``(H, W)`` of the upright original image.

    Returns:
        :data:`PAYLOAD_DATA_BYTES` of data plus the header.

    Raises:
        PayloadError: wrong shapes, or a value float16 cannot hold (it would be infinite in the page).
    """
    shapes = [(1, *chw) for chw in EMBEDDING_CHW]
    if len(features) != len(shapes) or any(tuple(f.shape) != s for f, s in zip(features, shapes)):
        raise PayloadError(f"expected embeddings of shapes {shapes}, got {[tuple(f.shape) for f in features]}")
    levels, chunks, offset = [], [], 0
    for name, array in zip(EMBEDDING_NAMES, features):
        with np.errstate(over="ignore"):  # overflow is reported just below, with the level's name
            half = np.ascontiguousarray(array, dtype=PAYLOAD_DTYPE)
        if not np.isfinite(half).all():
            raise PayloadError(f"{name} holds values float16 cannot represent (beyond ±65504 or not finite)")
        chunks.append(half.tobytes())
        levels.append({"name": name, "shape": list(half.shape), "offset": offset, "bytes": half.nbytes})
        offset += half.nbytes
    h, w = (int(v) for v in original_hw)
    header = json.dumps({"image": str(image_key), "original_hw": [h, w], "dtype": "float16", "levels": levels},
                        separators=(",", ":")).encode()
    header += b" " * (-len(header) % PAYLOAD_ALIGN)
    return b"".join([_PREFIX.pack(PAYLOAD_MAGIC, PAYLOAD_VERSION, len(header)), header, *chunks])


@dataclass(frozen=True)
class EmbeddingPayload:
    """A parsed payload: its header fields and the three float16 levels (read-only views of the bytes)."""

    image_key: str
    original_hw: tuple[int, int]
    features: tuple[NDArray[np.float16], ...]


def read_embedding_payload(data: bytes) -> EmbeddingPayload:
    """Parse :func:`embedding_payload`'s bytes (the page does the same in ``sam_demo/static/decoder``).

    Raises:
        PayloadError: not a payload of this version, or inconsistent sizes.
    """
    if len(data) < _PREFIX.size:
        raise PayloadError("too short for an embedding payload")
    magic, version, header_len = _PREFIX.unpack_from(data)
    if magic != PAYLOAD_MAGIC or version != PAYLOAD_VERSION:
        raise PayloadError(f"not an embedding payload of version {PAYLOAD_VERSION}")
    start = _PREFIX.size + header_len
    if header_len % PAYLOAD_ALIGN or start > len(data):
        raise PayloadError("the payload's header length is inconsistent")
    try:
        header = json.loads(bytes(data[_PREFIX.size:start]))
    except ValueError as exc:
        raise PayloadError("the payload's header is not JSON") from exc
    features = []
    for level, name, chw in zip(header["levels"], EMBEDDING_NAMES, EMBEDDING_CHW):
        shape = (1, *chw)
        if level["name"] != name or tuple(level["shape"]) != shape:
            raise PayloadError(f"unexpected level {level['name']} {level['shape']}")
        count = int(np.prod(shape))
        at = start + int(level["offset"])
        if at + count * PAYLOAD_DTYPE.itemsize > len(data):
            raise PayloadError("the payload is truncated")
        features.append(np.frombuffer(data, PAYLOAD_DTYPE, count, at).reshape(shape))
    h, w = header["original_hw"]
    return EmbeddingPayload(str(header["image"]), (int(h), int(w)), tuple(features))
