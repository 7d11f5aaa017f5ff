"""Analytic stand-ins for the SAM 2.1 ONNX pair, for tests, benchmarks and load tests.

The two models built here have exactly the I/O contract of the real
onnx-community/sam2.1-hiera-small-ONNX files (names, dtypes, symbolic dims; see
docs/model-io.md), but their outputs follow a closed-form rule, so a test can predict
every mask pixel. The rule is made to react to the mistakes a wrapper can make below
the resolution of a mask's outline: a missing or extra "not a point" pad token, a
half-pixel shift of the prompts, and a swapped channel order.

Encoder (``build_encoder``)
    ``pixel_values`` float32 ``[batch_size, 3, 1024, 1024]`` ->
    ``image_embeddings.0`` ``[batch_size, 32, 256, 256]``,
    ``image_embeddings.1`` ``[batch_size, 64, 128, 128]``,
    ``image_embeddings.2`` ``[batch_size, 256, 64, 64]``.
    Level 0, per 4 x 4 model-pixel cell: channel ``KEY_CHANNELS[k]`` is the average of
    input channel k (normalised R, G, B), every other channel the average of the channel
    mean. Levels 1 and 2: every channel is the 8 x 8 / 16 x 16 average of the channel mean.

Decoder (``build_decoder``)
    Prompts arrive in the 1024x1024 model frame, pixel-index convention (``xy``
    order); like the real graph, the decoder adds ``PIXEL_CENTRE_SHIFT`` (0.5) to every
    point and box corner.  Low-res cell (row i, col j) has its centre at
    ``(4 j + 2, 4 i + 2)`` in the continuous model frame.  For prompt q and a position
    c (all distances in model units)::

        pos  = max over label-1 points  of (POS_RADIUS - |c - p|)
               (+BIG if q has no label-1 point but has a box, -BIG if it has neither)
        neg  = min over label-0 points  of (|c - p| - NEG_RADIUS)   (+BIG if none)
        box  = min(cx - x0, x1 - cx, cy - y0, y1 - cy)             (+BIG if no boxes)
        pad  = PAD_PENALTY * |number of label -1 tokens of q - (0 if the call has boxes else 1)|
        base = min(pos, neg, box) - pad
        base = min(base, -KEY_DEPTH)  in key cells (see below)
        pred_masks[b, q, k] = base + MASK_OFFSETS[k]

    The pad term stands in for what the real decoder does with the "not a point" token:
    the reference layout (one (0, 0) / -1 pad point when there is no box, none with a
    box; docs/model-io.md) gives the documented discs, any other count shrinks every
    mask by PAD_PENALTY model units. A **key cell** is a low-res cell whose level-0 R, G
    and B averages are all within ``KEY_TOLERANCE`` of the normalised ``KEY_RGB`` (pure
    blue): like a blue screen, it never belongs to a mask, so an encoder fed the
    channels in the wrong order cuts the wrong regions out. Label -10 (the processor
    pad) is ignored. ``iou_scores[b, q]`` is ``IOU_WITH_POSITIVE`` if q has a label-1
    point, else ``IOU_WITHOUT_POSITIVE``; ``object_score_logits[b, q, 0]`` is the mean of
    ``image_embeddings.2[b, 0]`` plus ``OBJECT_SCORE_PER_POSITIVE`` per label-1 point.

    Accepted layouts (B = batch): points only (points ``[B,P,N,2]``, labels
    ``[B,P,N]``, boxes ``[B,0,4]``; Q = P), boxes only (points ``[B,1,0,2]``, labels
    ``[B,M,0]`` or ``[B,1,0]``, boxes ``[B,M,4]``; Q = M) and points + boxes with P = M.
    The point-batch, label-batch and box axes broadcast against each other (size 1
    or Q), so the model accepts a little more than the real graph; layouts that do not
    broadcast are rejected by onnxruntime, as the real graph rejects them.

The numpy functions ``reference_encoder`` / ``reference_decoder`` compute the same
outputs independently (per prompt and per point, in float64).

Expectations for a wrapper that follows the spec (prompts given in original pixels,
as a user clicks them):

* ``pipeline_mask`` is the EXACT mask the pipeline must produce: the rule at the
  256 x 256 cell centres for the feeds the spec prescribes (``x * 1024 / W``, the pad
  point iff there is no box), upsampled with half-pixel bilinear and thresholded at 0,
  all in float64. It leaves out only the pixels whose logit is within
  ``PIPELINE_EPS`` of 0 (float32 rounding), so a 0.5-unit shift, a missing pad point or
  a swapped channel order (with ``key_cells`` of the image) shows.
* ``expected_mask_original`` is the idealised mask (the rule evaluated at every
  original pixel: discs become ellipses in a non-square image), for statements a user
  would make ("the click selects the region around it"); ``boundary_band`` /
  ``tolerance_px`` say where sampling on the 256 x 256 grid may differ from it.

Run as a script to write the pair to a folder::

    python -m tests.analytic_models --out DIR [--external-data]
"""

from __future__ import annotations

import argparse
import logging
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, external_data_helper, helper

from tools.onnx_contract import *  # noqa: F403 - the shared contract is part of this module's interface

logger = logging.getLogger(__name__)

# --- the I/O contract of the real pair (the shared part: tools/onnx_contract.py) -----------------

EMBEDDING_POOL = (4, 8, 16)
"""Average-pool kernel (= stride) in model pixels that produces each level."""

DECODER_PROMPT_INPUTS = ("input_points", "input_labels", "input_boxes")
LABEL_NOT_A_POINT = -1

# --- the analytic rule -------------------------------------------------------------------------

POS_RADIUS = 64.0
"""Radius (model units) of the disc a positive click selects in candidate 1."""
NEG_RADIUS = 48.0
"""Radius (model units) of the disc a negative click removes in candidate 1."""
BIG = 10000.0
"""Stand-in for an absent term: +BIG never wins the min, -BIG always does."""
MASK_OFFSETS = (-16.0, 0.0, 16.0)
"""Added to the base logit for candidates 0, 1, 2: three nested masks (small to large)."""
IOU_WITH_POSITIVE = (0.80, 0.95, 0.60)
"""iou_scores of a prompt with at least one positive point (best candidate: 1)."""
IOU_WITHOUT_POSITIVE = (0.90, 0.70, 0.85)
"""iou_scores of a prompt without positive points (best candidate: 0)."""
OBJECT_SCORE_PER_POSITIVE = 0.5
"""Added to object_score_logits for every positive point of the prompt."""
PAD_PENALTY = 8.0
"""Model units every logit of a prompt loses per "not a point" token more or fewer than the reference layout
has (one without a box, none with one): two low-res cells, far outside any rounding."""
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
"""The normalisation the encoder input must have (restated here, not imported, so a test oracle built from
them is independent of sam_onnx.preprocess)."""
KEY_RGB = (0, 0, 255)
"""The "blue screen" colour: cells of this colour (after normalisation) never belong to a mask."""
KEY_TOLERANCE = 0.1
"""Largest |normalised channel average - key| of a key cell (about 6 grey levels)."""
KEY_ROUNDING_MARGIN = 1e-5
"""Cells this close to KEY_TOLERANCE are ambiguous: the pipeline's float32 normalisation and pooling differ
from the float64 reference by about 1e-7."""
KEY_DEPTH = 32.0
"""A key cell's base logit is at most -KEY_DEPTH: below 0 for every candidate (offsets up to +16)."""
KEY_CHANNELS = (1, 2, 3)
"""Level-0 embedding channels that carry the cell averages of normalised R, G and B."""
PIPELINE_EPS = 1e-3
"""Upsampled logits closer than this to 0 (model units) may round to either side in float32."""

BROKEN_DECODER_KINDS = ("missing_input", "renamed_output", "wrong_dtype")
RENAMED_PRED_MASKS = "masks"
"""Name that the "renamed_output" broken decoder uses instead of ``pred_masks``."""


PRODUCER = "tests.analytic_models"
"""The saved models' ``producer_name``."""


def key_normalised() -> np.ndarray:
    """``KEY_RGB`` after /255 and ImageNet normalisation: float32 ``(3,)``."""
    rgb = np.asarray(KEY_RGB, np.float64) / 255.0
    return ((rgb - np.asarray(IMAGENET_MEAN)) / np.asarray(IMAGENET_STD)).astype(np.float32)


def _level0_weights() -> np.ndarray:
    """Conv weights ``(32, 3, 4, 4)``: cell averages of the channel mean, and of R, G, B in KEY_CHANNELS."""
    pool = EMBEDDING_POOL[0]
    channels = EMBEDDING_CHW[0][0]
    weight = np.full((channels, 3, pool, pool), 1.0 / (3 * pool * pool), np.float32)
    for source, channel in enumerate(KEY_CHANNELS):
        weight[channel] = 0.0
        weight[channel, source] = 1.0 / (pool * pool)
    return weight


def build_encoder() -> onnx.ModelProto:
    """Analytic image encoder with the real encoder's I/O contract.

    Input ``pixel_values`` float32 ``[batch_size, 3, 1024, 1024]`` (normalised RGB, model
    frame). Outputs ``image_embeddings.0/1/2`` float32 ``[batch_size, C, S, S]`` with
    (C, S) = (32, 256), (64, 128), (256, 64). Level 0 is one strided Conv: channels
    ``KEY_CHANNELS`` are the 4 x 4 averages of R, G and B, the others of the channel mean.
    Levels 1 and 2 are 2x2 pools of the channel-mean average, which equals the 8x8 /
    16x16 pool of the full-resolution mean up to float rounding (~1e-7).
    """
    g = GraphBuilder("encoder", PRODUCER)
    pool = EMBEDDING_POOL[0]
    level0 = g.op(
        "Conv",
        ENCODER_INPUT,
        g.const("cell_average_weight", _level0_weights()),
        kernel_shape=[pool, pool],
        strides=[pool, pool],
    )  # [B,32,256,256]
    g.op("Identity", level0, out=EMBEDDING_NAMES[0])  # graph outputs are never read inside the graph
    pooled = g.op("Slice", level0, g.ints("start", 0), g.ints("end", 1), g.ints("axis", 1))  # channel mean
    for level in (1, 2):
        factor = EMBEDDING_POOL[level] // EMBEDDING_POOL[level - 1]
        pooled = g.op("AveragePool", pooled, kernel_shape=[factor] * 2, strides=[factor] * 2)
        channels = EMBEDDING_CHW[level][0]
        g.op("Expand", pooled, g.ints("channels", 1, channels, 1, 1), out=EMBEDDING_NAMES[level])
    inputs = [
        helper.make_tensor_value_info(
            ENCODER_INPUT, TensorProto.FLOAT, [BATCH_DIM, 3, MODEL_SIZE, MODEL_SIZE]
        )
    ]
    return g.model(
        "analytic_sam2_encoder", inputs, embedding_value_infos(), build_encoder.__doc__ or ""
    )


def build_decoder(
    *,
    with_boxes_input: bool = True,
    pred_masks_name: str = "pred_masks",
    labels_dtype: int = TensorProto.INT64,
) -> onnx.ModelProto:
    """Analytic prompt encoder + mask decoder with the real decoder's I/O contract.

    Inputs: ``input_points`` float32 ``[batch_size, point_batch_size, num_points, 2]``
    (``xy``, model frame, pixel-index convention), ``input_labels`` int64
    ``[batch_size, point_batch_size, num_points]``, ``input_boxes`` float32
    ``[batch_size, num_boxes, 4]`` (x0, y0, x1, y1, model frame) and the three
    ``image_embeddings``. Outputs: ``iou_scores`` float32 ``[batch_size, num_masks, 3]``,
    ``pred_masks`` float32 ``[batch_size, num_masks, 3, 256, 256]`` (logits),
    ``object_score_logits`` float32 ``[batch_size, num_masks, 1]``. See the module
    docstring for the rule. Distances are computed in float64 and rounded once.

    The keyword arguments exist only for ``build_broken_decoder``.
    """
    g = GraphBuilder("decoder", PRODUCER)
    points, labels, boxes, emb0, _, emb2 = (*DECODER_PROMPT_INPUTS, *EMBEDDING_NAMES)
    if not with_boxes_input:
        boxes = g.const("absent_boxes", np.zeros((1, 0, 4), dtype=np.float32))
    if labels_dtype != TensorProto.INT64:
        labels = g.op("Cast", labels, to=TensorProto.INT64)

    centres = cell_centres()
    grid_x = g.const("cell_centre_x", centres)  # [256]: broadcasts along the last axis
    grid_y = g.const("cell_centre_y", centres[:, None])  # [256, 1]
    shift = g.const("pixel_centre_shift", np.array(PIXEL_CENTRE_SHIFT))
    inf = g.const("inf", np.array(np.inf))
    big = g.const("big", np.array(BIG))
    minus_big = g.const("minus_big", np.array(-BIG))

    # Points: append one ignored point (label -10) so the point axis is never empty.
    pts = append_along(g, points, np.zeros((1, 1, 1, 2), np.float32), axis=2)  # [B,P,N+1,2]
    labs = append_along(g, labels, np.full((1, 1, 1), LABEL_PROCESSOR_PAD, np.int64), axis=2)
    pts = g.op("Add", g.op("Cast", pts, to=TensorProto.DOUBLE), shift)
    px = coordinate(g, pts, 0, rank_after=5)  # [B,P,N+1,1,1]
    py = coordinate(g, pts, 1, rank_after=5)
    dx = g.op("Sub", grid_x, px)  # [B,P,N+1,1,256]
    dy = g.op("Sub", grid_y, py)  # [B,P,N+1,256,1]
    dx2, dy2 = g.op("Mul", dx, dx), g.op("Mul", dy, dy)

    def nearest_distance(label: int) -> tuple[str, str]:
        """(distance to the nearest point with ``label`` [B,Q,256,256] float64 (inf if
        none), count of such points [B,Pl,1] float32)."""
        is_label = g.op("Equal", labs, g.const(f"label_{label}", np.array(label, np.int64)))
        selector = g.op("Unsqueeze", is_label, g.ints("axes", 3, 4))  # [B,Pl,N+1,1,1]
        masked_dx2 = g.op("Where", selector, dx2, inf)  # the other points are infinitely far
        squared = g.op("Add", masked_dx2, dy2)  # [B,Q,N+1,256,256]
        nearest = g.op("Sqrt", g.op("ReduceMin", squared, axes=[2], keepdims=0))
        count = g.op(
            "ReduceSum", g.op("Cast", is_label, to=TensorProto.FLOAT), g.ints("axes", 2), keepdims=1
        )
        return nearest, count

    def per_prompt(flag: str) -> str:
        """[B,Pl,1] bool -> [B,Pl,1,1] for broadcasting against [B,Q,256,256]."""
        return g.op("Unsqueeze", flag, g.ints("axes", 3))

    zero_f = g.const("zero", np.array(0.0, np.float32))
    pos_nearest, pos_count = nearest_distance(LABEL_POSITIVE)
    neg_nearest, neg_count = nearest_distance(LABEL_NEGATIVE)
    has_pos = g.op("Greater", pos_count, zero_f)  # [B,Pl,1]
    has_neg = g.op("Greater", neg_count, zero_f)

    num_boxes = g.op("Shape", boxes, start=1, end=2)  # [1]
    has_box = g.op("Greater", num_boxes, g.ints("zero", 0))  # [1] bool
    pos_fallback = g.op("Where", has_box, big, minus_big)
    pos = g.op(
        "Where",
        per_prompt(has_pos),
        g.op("Sub", g.const("pos_radius", np.array(POS_RADIUS)), pos_nearest),
        pos_fallback,
    )
    neg = g.op(
        "Where",
        per_prompt(has_neg),
        g.op("Sub", neg_nearest, g.const("neg_radius", np.array(NEG_RADIUS))),
        big,
    )

    # Boxes: append a dummy box and keep max(M, 1) of them, so the axis is never empty;
    # the dummy (used only when M == 0) is replaced by +BIG below.
    bxs = append_along(g, boxes, np.zeros((1, 1, 4), np.float32), axis=1)  # [B,M+1,4]
    kept = g.op("Max", num_boxes, g.ints("one", 1))
    bxs = g.op("Slice", bxs, g.ints("start", 0), kept, g.ints("axis", 1))  # [B,max(M,1),4]
    bxs = g.op("Add", g.op("Cast", bxs, to=TensorProto.DOUBLE), shift)
    x0, y0, x1, y1 = (coordinate(g, bxs, i, rank_after=4) for i in range(4))  # [B,K,1,1]
    inside_x = g.op("Min", g.op("Sub", grid_x, x0), g.op("Sub", x1, grid_x))  # [B,K,1,256]
    inside_y = g.op("Min", g.op("Sub", grid_y, y0), g.op("Sub", y1, grid_y))  # [B,K,256,1]
    box = g.op("Where", has_box, g.op("Min", inside_x, inside_y), big)

    # Pad tokens: PAD_PENALTY per token more or fewer than the reference layout has.
    is_pad = g.op("Equal", labs, g.const("label_pad", np.array(LABEL_NOT_A_POINT, np.int64)))
    pad_count = g.op(
        "ReduceSum", g.op("Cast", is_pad, to=TensorProto.FLOAT), g.ints("axes", 2), keepdims=1
    )  # [B,Pl,1]
    expected_pads = g.op(
        "Where", has_box, g.const("pads_with_box", np.array([0.0], np.float32)),
        g.const("pads_without_box", np.array([1.0], np.float32)),
    )
    pad_error = g.op("Abs", g.op("Sub", pad_count, expected_pads))
    penalty = g.op(
        "Cast",
        g.op("Mul", per_prompt(pad_error), g.const("pad_penalty", np.array(PAD_PENALTY, np.float32))),
        to=TensorProto.DOUBLE,
    )  # [B,Pl,1,1]
    base = g.op("Sub", g.op("Min", pos, neg, box), penalty)

    # Key cells ("blue screen"): every channel average within KEY_TOLERANCE of the key colour.
    rgb_cells = g.op(
        "Slice", emb0, g.ints("start", KEY_CHANNELS[0]), g.ints("end", KEY_CHANNELS[-1] + 1), g.ints("axis", 1)
    )  # [B,3,256,256]
    key_distance = g.op(
        "ReduceMax",
        g.op("Abs", g.op("Sub", rgb_cells, g.const("key", key_normalised().reshape(3, 1, 1)))),
        axes=[1],
        keepdims=1,
    )  # [B,1,256,256]
    is_key = g.op("LessOrEqual", key_distance, g.const("key_tolerance", np.array(KEY_TOLERANCE, np.float32)))
    base = g.op("Where", is_key, g.op("Min", base, g.const("key_depth", np.array(-KEY_DEPTH))), base)
    base = g.op("Cast", base, to=TensorProto.FLOAT)  # [B,Q,256,256]
    offsets = g.const("mask_offsets", np.array(MASK_OFFSETS, np.float32).reshape(-1, 1, 1))
    g.op("Add", g.op("Unsqueeze", base, g.ints("axes", 2)), offsets, out=pred_masks_name)

    num_masks = g.op("Shape", base, start=1, end=2)
    iou = g.op(
        "Where",
        has_pos,
        g.const("iou_with_positive", np.array(IOU_WITH_POSITIVE, np.float32)),
        g.const("iou_without_positive", np.array(IOU_WITHOUT_POSITIVE, np.float32)),
    )  # [B,Pl,3]
    g.op(
        "Expand",
        iou,
        g.op("Concat", g.ints("one", 1), num_masks, g.ints("three", NUM_CANDIDATES), axis=0),
        out="iou_scores",
    )

    channel0 = g.op("Slice", emb2, g.ints("start", 0), g.ints("end", 1), g.ints("axis", 1))
    image_score = g.op("ReduceMean", channel0, axes=[1, 2, 3], keepdims=1)  # [B,1,1,1]
    image_score = g.op("Squeeze", image_score, g.ints("axes", 3))  # [B,1,1]
    obj = g.op(
        "Add",
        image_score,
        g.op(
            "Mul",
            pos_count,
            g.const("per_positive", np.array(OBJECT_SCORE_PER_POSITIVE, np.float32)),
        ),
    )
    g.op(
        "Expand",
        obj,
        g.op("Concat", g.ints("one", 1), num_masks, g.ints("one", 1), axis=0),
        out="object_score_logits",
    )

    inputs = [
        helper.make_tensor_value_info(
            "input_points", TensorProto.FLOAT, [BATCH_DIM, POINT_BATCH_DIM, NUM_POINTS_DIM, 2]
        ),
        helper.make_tensor_value_info(
            "input_labels", labels_dtype, [BATCH_DIM, POINT_BATCH_DIM, NUM_POINTS_DIM]
        ),
    ]
    if with_boxes_input:
        inputs.append(
            helper.make_tensor_value_info(
                "input_boxes", TensorProto.FLOAT, [BATCH_DIM, NUM_BOXES_DIM, 4]
            )
        )
    inputs += embedding_value_infos()
    outputs = [
        helper.make_tensor_value_info(
            "iou_scores", TensorProto.FLOAT, [BATCH_DIM, NUM_MASKS_DIM, NUM_CANDIDATES]
        ),
        helper.make_tensor_value_info(
            pred_masks_name,
            TensorProto.FLOAT,
            [BATCH_DIM, NUM_MASKS_DIM, NUM_CANDIDATES, LOWRES_SIZE, LOWRES_SIZE],
        ),
        helper.make_tensor_value_info(
            "object_score_logits", TensorProto.FLOAT, [BATCH_DIM, NUM_MASKS_DIM, 1]
        ),
    ]
    return g.model("analytic_sam2_decoder", inputs, outputs, build_decoder.__doc__ or "")


def build_broken_decoder(kind: str) -> onnx.ModelProto:
    """A valid, loadable decoder that violates the I/O contract in one way.

    ``kind``: ``"missing_input"`` (no ``input_boxes`` input; the graph uses an empty
    constant instead), ``"renamed_output"`` (``pred_masks`` is called
    ``RENAMED_PRED_MASKS``), ``"wrong_dtype"`` (``input_labels`` is float32).
    Raises ValueError for any other kind.
    """
    if kind == "missing_input":
        return build_decoder(with_boxes_input=False)
    if kind == "renamed_output":
        return build_decoder(pred_masks_name=RENAMED_PRED_MASKS)
    if kind == "wrong_dtype":
        return build_decoder(labels_dtype=TensorProto.FLOAT)
    raise ValueError(
        f"unknown broken decoder kind {kind!r}; expected one of {BROKEN_DECODER_KINDS}"
    )


# --- saving ------------------------------------------------------------------------------------


def save_model(model: onnx.ModelProto, path: str | Path, *, external_data: bool = False) -> Path:
    """Write ``model`` to ``path`` and return ``path``.

    With ``external_data`` every floating-point initializer (the weights, grids and
    tables) goes to the sidecar ``<file name>_data`` next to it (e.g.
    ``decoder.onnx_data``), like the real onnx-community files. The small int64
    shape/axes tensors stay inline: onnxruntime refuses to load a graph whose Slice /
    Unsqueeze / Expand parameters live in external data ("Cannot parse data from
    external tensors"). ``model`` itself is not modified.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if not external_data:
        onnx.save_model(model, path)
        return path
    sidecar = path.parent / f"{path.name}_data"
    sidecar.unlink(missing_ok=True)  # onnx appends to an existing sidecar
    detached = onnx.ModelProto()
    detached.CopyFrom(model)
    moved = 0
    for tensor in detached.graph.initializer:
        if tensor.data_type != TensorProto.INT64:
            external_data_helper.set_external_data(tensor, location=sidecar.name)
            moved += 1
    external_data_helper.write_external_data_tensors(detached, str(path.parent))
    onnx.save_model(detached, path)
    logger.debug("saved %s with %d tensors in %s", path, moved, sidecar.name)
    return path


def save_models(
    out_dir: str | Path,
    *,
    external_data: bool = False,
    encoder_name: str = "encoder.onnx",
    decoder_name: str = "decoder.onnx",
) -> tuple[Path, Path]:
    """Build both analytic models and write them into ``out_dir`` (created if needed).

    Returns ``(encoder_path, decoder_path)``. With ``external_data`` the tensors of each
    model live in ``<name>_data`` sidecars, like the real onnx-community files.
    """
    out = Path(out_dir)
    encoder = save_model(build_encoder(), out / encoder_name, external_data=external_data)
    decoder = save_model(build_decoder(), out / decoder_name, external_data=external_data)
    return encoder, decoder


# --- numpy reference ---------------------------------------------------------------------------


def reference_encoder(pixel_values: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """What ``build_encoder`` computes: float32 ``[B,3,1024,1024]`` -> the three
    embeddings ``[B,C,S,S]`` float32 (pooled directly from the full-resolution values)."""
    values = np.asarray(pixel_values, dtype=np.float64)
    grey = values.mean(axis=1)  # [B,1024,1024]
    batch = grey.shape[0]
    levels = []
    for (channels, size, _), pool in zip(EMBEDDING_CHW, EMBEDDING_POOL, strict=True):
        pooled = grey.reshape(batch, size, pool, size, pool).mean(axis=(2, 4))
        levels.append(np.repeat(pooled[:, None], channels, axis=1))
    cell, size = EMBEDDING_POOL[0], EMBEDDING_CHW[0][1]
    for source, channel in enumerate(KEY_CHANNELS):
        levels[0][:, channel] = values[:, source].reshape(batch, size, cell, size, cell).mean(axis=(2, 4))
    return tuple(level.astype(np.float32) for level in levels)  # type: ignore[return-value]


def key_distance(emb0: np.ndarray) -> np.ndarray:
    """Largest |channel average - normalised key| per cell, float32 ``[B,256,256]`` from emb0 ``[B,32,256,256]``
    (float32 arithmetic, as in the graph)."""
    cells = np.asarray(emb0, np.float32)[:, list(KEY_CHANNELS)]
    return np.abs(cells - key_normalised()[None, :, None, None]).max(axis=1)


def _pad_penalty(labels: np.ndarray, has_box: bool) -> float:
    pads = int(np.sum(np.asarray(labels) == LABEL_NOT_A_POINT))
    return PAD_PENALTY * abs(pads - (0 if has_box else 1))


def _base_logits(
    xs: np.ndarray,
    ys: np.ndarray,
    points: np.ndarray,
    labels: np.ndarray,
    box: np.ndarray | None,
    call_has_box: bool | None = None,
) -> np.ndarray:
    """The base logit of one prompt at positions ``xs`` (W,) x ``ys`` (H,), float64 (H, W), before key cells.

    ``points`` (N, 2) and ``box`` (4,) are in the continuous model frame (the 0.5 shift
    already applied); ``labels`` (N,) int. ``call_has_box``: whether the decoder call has
    boxes (default: whether this prompt has one), which sets the expected pad count.
    """
    gx, gy = xs[None, :], ys[:, None]
    pos = np.full((ys.size, xs.size), -np.inf)
    neg = np.full((ys.size, xs.size), np.inf)
    has_pos = has_neg = False
    for (px, py), label in zip(points, labels, strict=True):
        distance = np.hypot(gx - px, gy - py)
        if label == LABEL_POSITIVE:
            pos, has_pos = np.maximum(pos, POS_RADIUS - distance), True
        elif label == LABEL_NEGATIVE:
            neg, has_neg = np.minimum(neg, distance - NEG_RADIUS), True
    if not has_pos:
        pos = np.full_like(pos, BIG if box is not None else -BIG)
    if not has_neg:
        neg = np.full_like(neg, BIG)
    if box is None:
        box_term = np.full_like(pos, BIG)
    else:
        x0, y0, x1, y1 = box
        box_term = np.minimum(np.minimum(gx - x0, x1 - gx), np.minimum(gy - y0, y1 - gy))
    has_box = box is not None if call_has_box is None else call_has_box
    return np.minimum(np.minimum(pos, neg), box_term) - _pad_penalty(labels, has_box)


def _apply_key(base: np.ndarray, key: np.ndarray | None) -> np.ndarray:
    """``base`` (..., 256, 256) with key cells (bool (256, 256)) pushed to at most -KEY_DEPTH."""
    if key is None:
        return base
    return np.where(key, np.minimum(base, -KEY_DEPTH), base)


def _broadcast_prompts(points_axis: int, labels_axis: int, boxes_axis: int) -> int:
    """Number of prompts Q for the given point-batch, label-batch and box axis sizes."""
    sizes = [points_axis, labels_axis] + ([boxes_axis] if boxes_axis > 0 else [])
    q = max(sizes)
    if any(size not in (1, q) for size in sizes):
        raise ValueError(
            "prompt axes do not broadcast: "
            f"points {points_axis}, labels {labels_axis}, boxes {boxes_axis}"
        )
    return q


def reference_decoder(
    points: np.ndarray,
    labels: np.ndarray,
    boxes: np.ndarray,
    emb2: np.ndarray,
    emb0: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """What ``build_decoder`` computes, in numpy.

    ``points`` float32 ``[B,P,N,2]``, ``labels`` int ``[B,Pl,N]``, ``boxes`` float32
    ``[B,M,4]`` (model frame, pixel-index convention, no 0.5 added), ``emb2`` float32
    ``[B,256,64,64]``, ``emb0`` float32 ``[B,32,256,256]`` (None: no key cells). Returns
    ``(iou [B,Q,3], masks [B,Q,3,256,256], obj [B,Q,1])``, all float32. Raises ValueError
    for layouts whose prompt axes do not broadcast.
    """
    points = np.asarray(points, np.float64) + PIXEL_CENTRE_SHIFT
    labels = np.asarray(labels)
    boxes = np.asarray(boxes, np.float64) + PIXEL_CENTRE_SHIFT
    batch = points.shape[0]
    q_count = _broadcast_prompts(points.shape[1], labels.shape[1], boxes.shape[1])
    centres = cell_centres()
    offsets = np.array(MASK_OFFSETS, np.float32)
    keys = None if emb0 is None else key_distance(emb0) <= np.float32(KEY_TOLERANCE)
    iou = np.empty((batch, q_count, NUM_CANDIDATES), np.float32)
    masks = np.empty((batch, q_count, NUM_CANDIDATES, LOWRES_SIZE, LOWRES_SIZE), np.float32)
    obj = np.empty((batch, q_count, 1), np.float32)
    for b in range(batch):
        image_score = np.float32(np.mean(np.asarray(emb2, np.float64)[b, 0]))
        for q in range(q_count):
            pts = points[b, min(q, points.shape[1] - 1)]
            labs = labels[b, min(q, labels.shape[1] - 1)]
            box = boxes[b, min(q, boxes.shape[1] - 1)] if boxes.shape[1] > 0 else None
            base = _base_logits(centres, centres, pts, labs, box)
            base = _apply_key(base, None if keys is None else keys[b]).astype(np.float32)
            masks[b, q] = base[None] + offsets[:, None, None]
            positives = int(np.sum(labs == LABEL_POSITIVE))
            iou[b, q] = IOU_WITH_POSITIVE if positives else IOU_WITHOUT_POSITIVE
            obj[b, q, 0] = image_score + np.float32(OBJECT_SCORE_PER_POSITIVE * positives)
    return iou, masks, obj


# --- expectations in the original image frame -------------------------------------------------


def reference_pixel_values(rgb: np.ndarray) -> np.ndarray:
    """The encoder input the spec prescribes for an ``(H, W, 3)`` uint8 RGB image, float64 ``[1,3,1024,1024]``:
    Pillow bilinear squash to 1024 x 1024, /255, ImageNet mean and std in R, G, B order (written out here,
    independently of sam_onnx.preprocess)."""
    from PIL import Image

    resized = np.asarray(
        Image.fromarray(np.ascontiguousarray(rgb, dtype=np.uint8), mode="RGB").resize(
            (MODEL_SIZE, MODEL_SIZE), Image.Resampling.BILINEAR
        ),
        np.float64,
    )
    normalised = (resized / 255.0 - np.asarray(IMAGENET_MEAN)) / np.asarray(IMAGENET_STD)
    return normalised.transpose(2, 0, 1)[None]


def key_cells(rgb: np.ndarray, *, check_margin: bool = True) -> np.ndarray:
    """Key cells of an ``(H, W, 3)`` uint8 RGB image as the spec's preprocessing yields them: bool (256, 256).

    With ``check_margin`` (default), raises ValueError if a cell lies within ``KEY_ROUNDING_MARGIN`` of the
    tolerance, where float32 rounding in the pipeline could put it on either side.
    """
    emb0 = reference_encoder(reference_pixel_values(rgb).astype(np.float32))[0]
    distance = key_distance(emb0)[0]
    if check_margin and np.any(np.abs(distance - KEY_TOLERANCE) < KEY_ROUNDING_MARGIN):
        raise ValueError("test picture has cells at the edge of the key tolerance; use clearer key regions")
    return distance <= np.float32(KEY_TOLERANCE)


def _wrapper_prompt(
    points_xy_px: Sequence[Sequence[float]] | np.ndarray | None,
    labels: Sequence[int] | np.ndarray | None,
    box_xyxy_px: Sequence[float] | None,
    original_hw: tuple[int, int],
    dtype: type = np.float64,
) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """The prompt as the spec feeds it, in the continuous model frame: ``x * 1024 / W`` (cast to ``dtype``,
    as the feed is), plus the graph's 0.5; the (0, 0) / -1 pad point appended iff there is no box."""
    height, width = original_hw
    scale = np.array([MODEL_SIZE / width, MODEL_SIZE / height])
    pts = (
        np.zeros((0, 2))
        if points_xy_px is None
        else np.asarray(points_xy_px, np.float64).reshape(-1, 2)
    )
    labs = np.zeros(0, np.int64) if labels is None else np.asarray(labels, np.int64).reshape(-1)
    if len(pts) != len(labs):
        raise ValueError(f"{len(pts)} points but {len(labs)} labels")
    pts = (pts * scale).astype(dtype).astype(np.float64)
    box = None
    if box_xyxy_px is not None:
        box = (np.asarray(box_xyxy_px, np.float64) * np.tile(scale, 2)).astype(dtype).astype(np.float64)
        box = box + PIXEL_CENTRE_SHIFT
    elif len(pts):
        pts = np.concatenate([pts, np.zeros((1, 2))])
        labs = np.concatenate([labs, [LABEL_NOT_A_POINT]])
    return pts + PIXEL_CENTRE_SHIFT, labs, box


def expected_low_res(
    points_xy_px: Sequence[Sequence[float]] | np.ndarray | None,
    labels: Sequence[int] | np.ndarray | None,
    box_xyxy_px: Sequence[float] | None,
    original_hw: tuple[int, int],
    candidate: int = 1,
    *,
    key: np.ndarray | None = None,
) -> np.ndarray:
    """The decoder's low-res logits for one prompt fed as the spec says: float32 (256, 256), model frame.

    Prompts in original pixels (``xy``; box x0, y0, x1, y1) as a user gives them, ``key``: bool (256, 256)
    key cells of the image (``key_cells``), or None for an image without any.
    """
    pts, labs, box = _wrapper_prompt(points_xy_px, labels, box_xyxy_px, original_hw, np.float32)
    centres = cell_centres()
    base = _apply_key(_base_logits(centres, centres, pts, labs, box), key)
    return (base + MASK_OFFSETS[candidate]).astype(np.float32)


def upsample_half_pixel(low_res: np.ndarray, out_hw: tuple[int, int]) -> np.ndarray:
    """Bilinear resize of ``(h, w)`` logits to ``out_hw`` with half-pixel centres (PyTorch
    ``align_corners=False``, no antialias), float64: the reference's post-processing, written out here."""

    def axis(out_size: int, in_size: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        src = np.maximum((np.arange(out_size) + 0.5) * in_size / out_size - 0.5, 0.0)
        i0 = np.minimum(np.floor(src).astype(int), in_size - 1)
        return i0, np.minimum(i0 + 1, in_size - 1), src - i0

    low_res = np.asarray(low_res, np.float64)
    r0, r1, wr = axis(out_hw[0], low_res.shape[0])
    c0, c1, wc = axis(out_hw[1], low_res.shape[1])
    rows = low_res[r0] * (1 - wr[:, None]) + low_res[r1] * wr[:, None]  # (H, w)
    return rows[:, c0] * (1 - wc) + rows[:, c1] * wc


def pipeline_mask(
    points_xy_px: Sequence[Sequence[float]] | np.ndarray | None,
    labels: Sequence[int] | np.ndarray | None,
    box_xyxy_px: Sequence[float] | None,
    original_hw: tuple[int, int],
    candidate: int = 1,
    *,
    key: np.ndarray | None = None,
    out_hw: tuple[int, int] | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """The exact mask a spec-following pipeline gives for one prompt, and where rounding may flip it.

    Returns ``(mask, unsure)``, both bool ``out_hw`` (default: ``original_hw``): ``mask`` is
    ``upsample_half_pixel(expected_low_res(...)) > 0``; ``unsure`` marks the pixels whose logit is within
    ``PIPELINE_EPS`` of 0 (typically none or a few). Anything else that differs is a bug: half a model
    unit of shift, a missing pad point or a wrong channel order changes many pixels.
    """
    low_res = expected_low_res(points_xy_px, labels, box_xyxy_px, original_hw, candidate, key=key)
    logits = upsample_half_pixel(low_res, original_hw if out_hw is None else out_hw)
    return logits > 0, np.abs(logits) <= PIPELINE_EPS


def assert_pipeline_mask(
    mask: np.ndarray,
    points_xy_px: Sequence[Sequence[float]] | np.ndarray | None,
    labels: Sequence[int] | np.ndarray | None,
    box_xyxy_px: Sequence[float] | None,
    original_hw: tuple[int, int],
    candidate: int = 1,
    *,
    key: np.ndarray | None = None,
) -> None:
    """Assert that ``mask`` (bool, original frame) is exactly ``pipeline_mask(...)`` outside its rounding pixels."""
    exact, unsure = pipeline_mask(points_xy_px, labels, box_xyxy_px, original_hw, candidate, key=key)
    assert mask.shape == exact.shape, f"mask is {mask.shape}, expected {exact.shape}"
    wrong = (np.asarray(mask, bool) != exact) & ~unsure
    assert exact[~unsure].any(), "test set-up: the expected mask is empty"
    assert not wrong.any(), (
        f"{int(wrong.sum())} pixels differ from the exact pipeline mask "
        f"(first at row/col {np.argwhere(wrong)[0].tolist()})"
    )


def expected_logits_original(
    points_xy_px: Sequence[Sequence[float]] | np.ndarray | None,
    labels: Sequence[int] | np.ndarray | None,
    box_xyxy_px: Sequence[float] | None,
    original_hw: tuple[int, int],
    candidate: int = 1,
) -> np.ndarray:
    """Idealised logit of one prompt at every pixel of the original image, float64 (H, W).

    ``points_xy_px`` (N, 2) ``xy`` and ``box_xyxy_px`` (x0, y0, x1, y1) are in original
    pixels, as a user clicks them (pixel-index convention). They are mapped to the model
    frame as the wrapper does (``x * 1024 / W``, ``y * 1024 / H``, the pad point when there
    is no box) plus the graph's 0.5; pixel (row v, col u) is evaluated at the model-frame
    position of its centre, ``((u + 0.5) * 1024 / W, (v + 0.5) * 1024 / H)`` -- the position
    that half-pixel upsampling of the 256x256 logits samples. Values are in model units.
    No key cells (an image without pure blue).
    """
    height, width = original_hw
    pts, labs, box = _wrapper_prompt(points_xy_px, labels, box_xyxy_px, original_hw)
    xs = (np.arange(width) + 0.5) * MODEL_SIZE / width
    ys = (np.arange(height) + 0.5) * MODEL_SIZE / height
    return _base_logits(xs, ys, pts, labs, box) + MASK_OFFSETS[candidate]


def expected_mask_original(
    points_xy_px: Sequence[Sequence[float]] | np.ndarray | None,
    labels: Sequence[int] | np.ndarray | None,
    box_xyxy_px: Sequence[float] | None,
    original_hw: tuple[int, int],
    candidate: int = 1,
) -> np.ndarray:
    """The idealised mask of one prompt, bool (H, W), in the original image frame.

    Computed directly per original pixel (``expected_logits_original(...) > 0``): the
    discs around clicks and the box, mapped into the original frame (ellipses for a
    non-square image). The real pipeline instead samples the rule at 256x256 cell centres
    and upsamples, so its mask differs from this one only within about one low-res cell
    of the boundary: ``CELL_SIZE`` (4) model units, i.e. W/256 original pixels
    horizontally and H/256 vertically. Ignore that band with ``boundary_band`` (exact) or
    ``tolerance_px`` (its size in pixels); for the exact pipeline mask, use
    ``pipeline_mask``.
    """
    return expected_logits_original(points_xy_px, labels, box_xyxy_px, original_hw, candidate) > 0


def boundary_band(
    points_xy_px: Sequence[Sequence[float]] | np.ndarray | None,
    labels: Sequence[int] | np.ndarray | None,
    box_xyxy_px: Sequence[float] | None,
    original_hw: tuple[int, int],
    candidate: int = 1,
    margin: float = CELL_SIZE,
) -> np.ndarray:
    """Pixels where ``expected_mask_original`` may legitimately differ from the pipeline,
    bool (H, W): those whose ideal logit is within ``margin`` model units of 0.

    Why this suffices: the logit is 1-Lipschitz in the model frame (it is a min/max of
    distances and box-edge distances), so a pixel with |logit| > margin lies more than
    ``margin`` model units from the boundary. Nearest-neighbour or bilinear upsampling
    reads cell centres at most 2*sqrt(2) ~ 2.83 model units away, so its value differs
    from the ideal one by less than ``CELL_SIZE`` and keeps the sign.
    """
    logits = expected_logits_original(points_xy_px, labels, box_xyxy_px, original_hw, candidate)
    return np.abs(logits) <= margin


def tolerance_px(original_hw: tuple[int, int]) -> tuple[float, float]:
    """Size of one low-res cell in original pixels, ``(rows, cols)`` = (H/256, W/256):
    how far from the ideal boundary the pipeline's mask may deviate along each axis."""
    height, width = original_hw
    return CELL_SIZE * height / MODEL_SIZE, CELL_SIZE * width / MODEL_SIZE


# --- command line ------------------------------------------------------------------------------


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m tests.analytic_models",
        description="Write the analytic encoder.onnx / decoder.onnx pair to a folder.",
    )
    parser.add_argument("--out", required=True, type=Path, help="output folder (created if needed)")
    parser.add_argument(
        "--external-data",
        action="store_true",
        help="store tensors in <name>.onnx_data sidecars, like the real files",
    )
    args = parser.parse_args(argv)
    for path in save_models(args.out, external_data=args.external_data):
        print(path)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
