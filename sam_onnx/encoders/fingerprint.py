"""A model file's identity: SHA-256 over the ``.onnx`` graph and the external-data files it names.

The published encoder keeps its weights in ``vision_encoder.onnx_data``; hashing
the 0.5 MB graph alone would miss a changed weight file. File hashes come from
:func:`sam_onnx.hub.sha256_of`, memoised per (path, size, mtime) and shared with the
hub's file check, so one start hashes each file once.
"""

from __future__ import annotations

import functools
import hashlib
from pathlib import Path

from ..hub import sha256_of


def external_data_files(path: Path) -> tuple[Path, ...]:
    """The external-data files an ``.onnx`` graph refers to, in first-use order.

    None for a single file, or for a file that is not a readable ONNX graph
    (then onnxruntime's load explains the problem).
    """
    stat = Path(path).stat()
    return _external_data_files(str(path), stat.st_size, stat.st_mtime_ns)


@functools.lru_cache(maxsize=16)
def _external_data_files(path_text: str, size: int, mtime_ns: int) -> tuple[Path, ...]:
    import onnx

    from ..graph_repair import tensors

    path = Path(path_text)
    try:
        model = onnx.load(path_text, load_external_data=False)
    except Exception:  # noqa: BLE001 - not a readable graph: the file alone identifies it, loading reports why
        return ()
    seen: dict[str, None] = {}
    for tensor in tensors(model.graph):
        if tensor.data_location == onnx.TensorProto.EXTERNAL:
            for entry in tensor.external_data:
                if entry.key == "location":
                    seen.setdefault(entry.value, None)
    return tuple(path.parent / name for name in seen)


def model_fingerprint(path: Path) -> str:
    """Hex SHA-256 of the graph file followed by its external-data files."""
    path = Path(path).absolute()  # not resolve(): the hub cache links each file to a blob elsewhere
    parts = (path, *external_data_files(path))
    digest = hashlib.sha256()
    for part in parts:
        digest.update(sha256_of(part).encode())
    return digest.hexdigest()
