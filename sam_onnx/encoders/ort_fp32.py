"""The reference engine: onnxruntime on the encoder file as published (fp32).

:class:`OrtEncoder` wraps any onnxruntime encoder session; the int8 and fp16
engines reuse it for their files.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .. import session as ort_session
from .base import EncoderSource, Variant, check_embeddings

FP32 = "fp32"
FP16 = "fp16"


class OrtEncoder:
    """An onnxruntime encoder session behind the :class:`~sam_onnx.encoders.ImageEncoder` seam.

    Accepts float32 or float16 encoder graphs (the published fp16 file takes and
    returns float16; the conversion happens here). ``InferenceSession.run`` is
    thread-safe, so ``encode`` needs no lock.
    """

    __slots__ = ("name", "description", "path", "_session", "_dtype")

    def __init__(self, session, *, name: str | None = None, description: str = "", path: str = "") -> None:
        """Check ``session`` against the SAM 2.1 encoder contract and wrap it.

        ``name`` defaults to ``"fp32"``, or ``"fp16"`` for a float16 graph.

        Raises:
            ModelLoadError: its inputs or outputs are not SAM 2.1's.
        """
        ort_session.check_contract(session, ort_session.ENCODER_INPUTS, ort_session.ENCODER_OUTPUTS,
                                   label=f"encoder {path}".strip())
        self._session = session
        self._dtype = ort_session.input_type(session, "pixel_values")
        self.name = name or (FP16 if self._dtype == np.float16 else FP32)
        self.path = path
        self.description = description or (f"onnxruntime {ort_session.version()} {np.dtype(self._dtype).name} "
                                            f"on {', '.join(self.providers)}")

    @property
    def session(self):
        """The wrapped onnxruntime session (for diagnostics and fault-injection tests)."""
        return self._session

    @property
    def providers(self) -> tuple[str, ...]:
        return tuple(self._session.get_providers())

    @property
    def input_dtype(self) -> str:
        """``"float32"``, or ``"float16"`` for the half-precision file."""
        return np.dtype(self._dtype).name

    def encode(self, pixel_values: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        outputs = ort_session.run(self._session, ort_session.EMBEDDING_NAMES,
                                  {"pixel_values": pixel_values.astype(self._dtype, copy=False)},
                                  label="image encoder")
        return check_embeddings(outputs, label=f"{self.name} image encoder")

    def __repr__(self) -> str:
        return f"OrtEncoder({self.name!r}, {self.description!r})"


def load_file(path: Path, source: EncoderSource, *, name: str | None = None, description: str = "") -> OrtEncoder:
    """An :class:`OrtEncoder` on ``path`` with the app's session options.

    ``name`` defaults to ``"fp32"``, or ``"fp16"`` for a float16 graph.
    """
    session = ort_session.create_session(path, label=f"{name or 'image'} encoder {path}",
                                         providers=source.providers, threads=source.threads)
    return OrtEncoder(session, name=name, description=description, path=str(path))


def load(source: EncoderSource) -> OrtEncoder:
    """onnxruntime on the fp32 file: the reference every other variant is checked against."""
    return load_file(source.encoder_path, source)


VARIANTS = (Variant(FP32, load, auto_candidate=False),)
