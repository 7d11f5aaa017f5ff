"""The I/O contract of the real SAM 2.1 ONNX pair, and the small ONNX graph builder the stand-in models use.

One owner for what both offline stand-ins share: the analytic models (``tests/analytic_models.py``: discs of a
fixed size, for checking frames to the pixel) and the content models (``tools/content_models.py``: masks that
follow the image's colours, which the benchmarks also run). Names, dtypes and symbolic dims are those of
docs/model-io.md. It lives in ``tools/`` because ``bench/`` and ``tools/`` import nothing from ``tests/``; the
tests import it from here.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

__all__ = [  # what the stand-in modules take with "from tools.onnx_contract import *"
    "MODEL_SIZE",
    "LOWRES_SIZE",
    "CELL_SIZE",
    "NUM_CANDIDATES",
    "PIXEL_CENTRE_SHIFT",
    "ENCODER_INPUT",
    "EMBEDDING_NAMES",
    "EMBEDDING_CHW",
    "DECODER_OUTPUTS",
    "BATCH_DIM",
    "POINT_BATCH_DIM",
    "NUM_POINTS_DIM",
    "NUM_BOXES_DIM",
    "NUM_MASKS_DIM",
    "LABEL_POSITIVE",
    "LABEL_NEGATIVE",
    "LABEL_PROCESSOR_PAD",
    "OPSET",
    "IR_VERSION",
    "GraphBuilder",
    "append_along",
    "cell_centres",
    "coordinate",
    "embedding_value_infos",
]

MODEL_SIZE = 1024
"""Side of the square model frame (pixels of the resized image)."""
LOWRES_SIZE = 256
"""Side of the low-resolution mask logits returned by the decoder."""
CELL_SIZE = MODEL_SIZE // LOWRES_SIZE
"""Model units covered by one low-res cell along each axis (4)."""
NUM_CANDIDATES = 3
"""Masks returned per prompt (multimask output)."""
PIXEL_CENTRE_SHIFT = 0.5
"""Added by the decoder graph to every point and box corner (model frame)."""

ENCODER_INPUT = "pixel_values"
EMBEDDING_NAMES = ("image_embeddings.0", "image_embeddings.1", "image_embeddings.2")
EMBEDDING_CHW = ((32, 256, 256), (64, 128, 128), (256, 64, 64))
"""(channels, height, width) of each embedding level, in EMBEDDING_NAMES order."""
DECODER_OUTPUTS = ("iou_scores", "pred_masks", "object_score_logits")

BATCH_DIM, POINT_BATCH_DIM, NUM_POINTS_DIM = "batch_size", "point_batch_size", "num_points"
NUM_BOXES_DIM, NUM_MASKS_DIM = "num_boxes", "num_masks"
LABEL_POSITIVE, LABEL_NEGATIVE, LABEL_PROCESSOR_PAD = 1, 0, -10
"""Point labels: a positive and a negative click, and the pad label transformers' processor adds."""
OPSET, IR_VERSION = 17, 8
"""What the models are saved as (onnxruntime >= 1.20 reads both)."""


def cell_centres() -> np.ndarray:
    """Centres of the low-res cells along one axis: float64 ``(256,)``, model frame."""
    return np.arange(LOWRES_SIZE, dtype=np.float64) * CELL_SIZE + CELL_SIZE / 2


class GraphBuilder:
    """Collects nodes and initializers; every helper returns the name of its output.

    Args:
        prefix: start of every generated tensor name (``"encoder"``, ``"decoder"``, ...).
        producer: the saved model's ``producer_name`` (the module that builds it).
    """

    def __init__(self, prefix: str, producer: str) -> None:
        self._prefix, self._producer, self._count = prefix, producer, 0
        self.nodes: list[onnx.NodeProto] = []
        self.initializers: list[onnx.TensorProto] = []

    def _fresh(self, hint: str) -> str:
        self._count += 1
        return f"{self._prefix}/{hint}_{self._count}"

    def const(self, hint: str, value: np.ndarray) -> str:
        """Store ``value`` as an initializer (never as a node attribute, so that
        ``save_as_external_data`` moves it to the sidecar)."""
        name = self._fresh(hint)
        self.initializers.append(numpy_helper.from_array(np.asarray(value), name))
        return name

    def ints(self, hint: str, *values: int) -> str:
        return self.const(hint, np.array(values, dtype=np.int64))

    def op(self, op_type: str, *inputs: str, out: str | None = None, **attrs: object) -> str:
        output = out if out is not None else self._fresh(op_type.lower())
        self.nodes.append(helper.make_node(op_type, list(inputs), [output], **attrs))
        return output

    def model(self, name: str, inputs: Sequence[onnx.ValueInfoProto], outputs: Sequence[onnx.ValueInfoProto],
              doc: str) -> onnx.ModelProto:
        graph = helper.make_graph(self.nodes, name, list(inputs), list(outputs), initializer=self.initializers)
        graph.doc_string = doc
        return helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)],
                                 producer_name=self._producer, ir_version=IR_VERSION)


def embedding_value_infos() -> list[onnx.ValueInfoProto]:
    """The encoder's three outputs (the decoder's embedding inputs): float32 ``[batch_size, C, S, S]``."""
    return [helper.make_tensor_value_info(name, TensorProto.FLOAT, [BATCH_DIM, *chw])
            for name, chw in zip(EMBEDDING_NAMES, EMBEDDING_CHW, strict=True)]


def append_along(g: GraphBuilder, tensor: str, filler: np.ndarray, axis: int) -> str:
    """Concatenate one slice of ``filler`` (shape [1]*axis + [1] + rest) to ``tensor`` along
    ``axis``, broadcasting the filler over the leading ``axis`` dims of ``tensor``."""
    lead = g.op("Shape", tensor, start=0, end=axis)
    target = g.op("Concat", lead, g.ints("filler_tail", 1, *filler.shape[axis + 1:]), axis=0)
    return g.op("Concat", tensor, g.op("Expand", g.const("filler", filler), target), axis=axis)


def coordinate(g: GraphBuilder, coords: str, index: int, rank_after: int) -> str:
    """Component ``index`` of the last axis of ``coords``, with singleton axes appended up to ``rank_after``
    dims (the last two being 1, 1)."""
    component = g.op("Slice", coords, g.ints("start", index), g.ints("end", index + 1), g.ints("axis", -1))
    return g.op("Unsqueeze", component, g.ints("axes", rank_after - 1))
