"""A content-following stand-in for the SAM 2.1 ONNX pair: its masks follow the colours of the image.

The analytic models (``tests/analytic_models.py``) draw discs whose size is fixed in model units,
whatever the picture shows: right for checking frames to the pixel, useless for checking that a
mask is *as sharp as the photo*. These two models have the same I/O contract as the real files
(names, dtypes, symbolic dims; docs/model-io.md), but a mask here covers the low-res cells whose
colour is close to the colour under the click, so its edges are where the image's edges are, as
finely as the 256 x 256 grid of the encoded frame can place them. Encoding a crop instead of the
whole image makes that grid finer, which is what ``bench/bench_refine.py`` measures.

Encoder (``build_encoder``)
    ``pixel_values`` float32 ``[batch_size, 3, 1024, 1024]`` (normalised RGB) ->
    ``image_embeddings.0`` ``[batch_size, 32, 256, 256]``, ``.1`` ``[batch_size, 64, 128, 128]``,
    ``.2`` ``[batch_size, 256, 64, 64]``: channels 0, 1, 2 of each level hold the average of
    normalised R, G and B over the 4 x 4, 8 x 8 and 16 x 16 model pixels of each cell (the
    colours kept at 256², 128² and 64²); every other channel is 0.

Decoder (``build_decoder``)
    Prompts arrive in the 1024 model frame; like the real graph the decoder adds
    ``PIXEL_CENTRE_SHIFT`` (0.5) to points and box corners. Low-res cell (row i, col j) has
    colour ``c(i, j)`` = level 0's channels 0..2 and centre ``(4 j + 2, 4 i + 2)``. A point at
    ``(x, y)`` reads the colour of the cell holding it, ``r = c(floor((y + .5) / 4), floor((x + .5) / 4))``
    (clamped to the grid). For prompt q, with ``d(r) = |c(i, j) - r|`` (Euclidean, 3 channels)::

        pos  = SCALE * max over label-1 points of (TOLERANCE - d(r_p))
               (+BIG if q has no label-1 point but a box, -BIG if neither)
        neg  = SCALE * min over label-0 points of (d(r_p) - TOLERANCE)     (+BIG if none)
        box  = min(cx - x0, x1 - cx, cy - y0, y1 - cy)                      (+BIG if no box)
        pred_masks[b, q, k] = min(pos, neg, box) + MASK_OFFSETS[k]

    Labels -1 and -10 (padding) are ignored. ``iou_scores`` are ``IOU_SCORES`` (best: 1) and
    ``object_score_logits`` ``OBJECT_SCORE_LOGIT`` for every prompt. Points of one call are read
    from batch element 0's colours when ``batch_size`` > 1 only through ``GatherElements`` per
    batch element, so any batch size works.

The logit falls linearly with the colour distance, so on an edge between two flat colours
the zero crossing sits where a cell is covered by the clicked colour to the fraction
``1 - TOLERANCE / contrast``; bilinear upsampling of the logits then places the edge within a
cell. A line narrower than half a cell never fills one, and the whole-image pass misses it.

``reference_decoder`` computes the same in numpy (float64) for the tests. Run as a script to
write the pair to a folder::

    python -m tools.content_models --out DIR

It lives in ``tools/`` rather than beside ``tests/analytic_models.py`` because the benchmark runs it
(``bench/`` and ``tools/`` import nothing from the tests); the contract constants and graph helpers it
shares with the analytic models are ``tools/onnx_contract.py``'s.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper

from tools.onnx_contract import *  # noqa: F403 - the shared contract and graph helpers (its __all__)

PRODUCER = "tools.content_models"
"""The saved models' ``producer_name``."""


def save_model(model: onnx.ModelProto, path: str | Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    onnx.save_model(model, path)
    return path


COLOUR_CHANNELS = 3
"""Channels 0..2 of every level hold the cell averages of normalised R, G, B."""
POOLS = (4, 8, 16)
"""Model pixels per cell side of each level (256², 128², 64² cells)."""
TOLERANCE = 1.0
"""Colour distance (normalised RGB units; black to white is about 7.6) at which a cell stops matching."""
SCALE = 8.0
"""Logit units per colour unit: an exact colour match has logit SCALE * TOLERANCE."""
BIG = 10000.0
MASK_OFFSETS = (-2.0, 0.0, 2.0)
"""Added to the base logit for candidates 0, 1, 2 (a quarter of the tolerance either way)."""
IOU_SCORES = (0.80, 0.95, 0.60)
OBJECT_SCORE_LOGIT = 2.0


# --- graphs ------------------------------------------------------------------------------------
def _selection_weights(channels: int) -> np.ndarray:
    """1 x 1 conv weights ``(channels, 3, 1, 1)``: output channel c < 3 copies input channel c, the rest are 0."""
    weight = np.zeros((channels, COLOUR_CHANNELS, 1, 1), np.float32)
    for c in range(COLOUR_CHANNELS):
        weight[c, c] = 1.0
    return weight


def build_encoder() -> onnx.ModelProto:
    """Content-model image encoder: average pools of normalised RGB at 256², 128² and 64² (see the module)."""
    g = GraphBuilder("content_encoder", PRODUCER)
    pooled = ENCODER_INPUT
    previous = 1
    for name, (channels, _, _), pool in zip(EMBEDDING_NAMES, EMBEDDING_CHW, POOLS, strict=True):
        factor = pool // previous
        pooled = g.op("AveragePool", pooled, kernel_shape=[factor] * 2, strides=[factor] * 2)  # [B,3,S,S]
        g.op("Conv", pooled, g.const("select", _selection_weights(channels)), kernel_shape=[1, 1], out=name)
        previous = pool
    inputs = [helper.make_tensor_value_info(ENCODER_INPUT, TensorProto.FLOAT, [BATCH_DIM, 3, MODEL_SIZE, MODEL_SIZE])]
    return g.model("content_sam2_encoder", inputs, embedding_value_infos(), build_encoder.__doc__ or "")


def build_decoder() -> onnx.ModelProto:
    """Content-model prompt encoder + mask decoder with the real decoder's I/O contract (see the module)."""
    g = GraphBuilder("content_decoder", PRODUCER)
    points, labels, boxes, emb0 = "input_points", "input_labels", "input_boxes", EMBEDDING_NAMES[0]
    centres = cell_centres()
    grid_x = g.const("cell_centre_x", centres)
    grid_y = g.const("cell_centre_y", centres[:, None])
    shift = g.const("shift", np.array(PIXEL_CENTRE_SHIFT, np.float32))
    big, minus_big = g.const("big", np.array(BIG)), g.const("minus_big", np.array(-BIG))
    neg_inf, pos_inf = g.const("neg_inf", np.array(-np.inf)), g.const("pos_inf", np.array(np.inf))

    # Points: one ignored point appended (label -10) so the point axis is never empty.
    pts = append_along(g, points, np.zeros((1, 1, 1, 2), np.float32), axis=2)  # [B,P,N+1,2]
    labs = append_along(g, labels, np.full((1, 1, 1), LABEL_PROCESSOR_PAD, np.int64), axis=2)  # [B,Pl,N+1]
    cells = g.op("Div", g.op("Add", pts, shift), g.const("cell", np.array(CELL_SIZE, np.float32)))
    cells = g.op("Clip", g.op("Floor", cells), g.const("lo", np.array(0.0, np.float32)),
                 g.const("hi", np.array(LOWRES_SIZE - 1, np.float32)))
    cells = g.op("Cast", cells, to=TensorProto.INT64)  # [B,P,N+1,2] (col, row)
    col = g.op("Squeeze", g.op("Slice", cells, g.ints("s", 0), g.ints("e", 1), g.ints("a", 3)), g.ints("ax", 3))
    row = g.op("Squeeze", g.op("Slice", cells, g.ints("s", 1), g.ints("e", 2), g.ints("a", 3)), g.ints("ax", 3))
    flat_index = g.op("Add", g.op("Mul", row, g.ints("side", LOWRES_SIZE)), col)  # [B,P,N+1]
    point_shape = g.op("Shape", flat_index)  # [B, P, N+1]

    colours = g.op("Slice", emb0, g.ints("s", 0), g.ints("e", COLOUR_CHANNELS), g.ints("a", 1))  # [B,3,256,256]
    flat = g.op("Reshape", colours, g.ints("flat", 0, COLOUR_CHANNELS, LOWRES_SIZE * LOWRES_SIZE))  # [B,3,65536]
    index = g.op("Reshape", flat_index, g.ints("flat_points", 0, 1, -1))  # [B,1,P*(N+1)]
    batch = g.op("Shape", index, start=0, end=1)
    index = g.op("Expand", index, g.op("Concat", batch, g.ints("three", COLOUR_CHANNELS),
                                       g.op("Shape", index, start=2, end=3), axis=0))  # [B,3,P*(N+1)]
    refs = g.op("GatherElements", flat, index, axis=2)  # [B,3,P*(N+1)]
    ref_shape = g.op("Concat", batch, g.ints("three", COLOUR_CHANNELS), g.op("Slice", point_shape, g.ints("s", 1),
                                                                            g.ints("e", 3), g.ints("a", 0)),
                     g.ints("ones", 1, 1), axis=0)
    refs = g.op("Reshape", refs, ref_shape)  # [B,3,P,N+1,1,1]
    grid = g.op("Unsqueeze", colours, g.ints("axes", 2, 3))  # [B,3,1,1,256,256]
    diff = g.op("Sub", grid, refs)
    distance = g.op("Sqrt", g.op("ReduceSum", g.op("Mul", diff, diff), g.ints("axis", 1), keepdims=0))  # [B,P,N+1,S,S]
    distance = g.op("Cast", distance, to=TensorProto.DOUBLE)
    tolerance = g.const("tolerance", np.array(TOLERANCE))
    scale = g.const("scale", np.array(SCALE))

    def selector(label: int) -> tuple[str, str]:
        is_label = g.op("Equal", labs, g.const(f"label_{label}", np.array(label, np.int64)))  # [B,Pl,N+1]
        count = g.op("ReduceSum", g.op("Cast", is_label, to=TensorProto.FLOAT), g.ints("axes", 2), keepdims=1)
        return g.op("Unsqueeze", is_label, g.ints("axes", 3, 4)), count  # [B,Pl,N+1,1,1], [B,Pl,1]

    def per_prompt(flag: str) -> str:
        return g.op("Unsqueeze", flag, g.ints("axes", 3))  # [B,Pl,1] -> [B,Pl,1,1]

    zero = g.const("zero", np.array(0.0, np.float32))
    pos_sel, pos_count = selector(LABEL_POSITIVE)
    neg_sel, neg_count = selector(LABEL_NEGATIVE)
    pos_best = g.op("ReduceMax", g.op("Where", pos_sel, g.op("Sub", tolerance, distance), neg_inf), axes=[2],
                    keepdims=0)  # [B,Q,S,S]
    neg_best = g.op("ReduceMin", g.op("Where", neg_sel, g.op("Sub", distance, tolerance), pos_inf), axes=[2],
                    keepdims=0)
    num_boxes = g.op("Shape", boxes, start=1, end=2)
    has_box = g.op("Greater", num_boxes, g.ints("zero", 0))
    pos = g.op("Where", per_prompt(g.op("Greater", pos_count, zero)), g.op("Mul", scale, pos_best),
               g.op("Where", has_box, big, minus_big))
    neg = g.op("Where", per_prompt(g.op("Greater", neg_count, zero)), g.op("Mul", scale, neg_best), big)

    bxs = append_along(g, boxes, np.zeros((1, 1, 4), np.float32), axis=1)
    kept = g.op("Max", num_boxes, g.ints("one", 1))
    bxs = g.op("Slice", bxs, g.ints("start", 0), kept, g.ints("axis", 1))
    bxs = g.op("Add", g.op("Cast", bxs, to=TensorProto.DOUBLE), g.const("shift64", np.array(PIXEL_CENTRE_SHIFT)))
    x0, y0, x1, y1 = (coordinate(g, bxs, i, rank_after=4) for i in range(4))
    inside_x = g.op("Min", g.op("Sub", grid_x, x0), g.op("Sub", x1, grid_x))
    inside_y = g.op("Min", g.op("Sub", grid_y, y0), g.op("Sub", y1, grid_y))
    box = g.op("Where", has_box, g.op("Min", inside_x, inside_y), big)

    base = g.op("Cast", g.op("Min", pos, neg, box), to=TensorProto.FLOAT)  # [B,Q,S,S]
    offsets = g.const("mask_offsets", np.array(MASK_OFFSETS, np.float32).reshape(-1, 1, 1))
    g.op("Add", g.op("Unsqueeze", base, g.ints("axes", 2)), offsets, out="pred_masks")
    num_masks = g.op("Shape", base, start=1, end=2)
    batch_out = g.op("Shape", base, start=0, end=1)
    g.op("Expand", g.const("iou", np.array(IOU_SCORES, np.float32)),
         g.op("Concat", batch_out, num_masks, g.ints("three", NUM_CANDIDATES), axis=0), out="iou_scores")
    g.op("Expand", g.const("object_score", np.array([OBJECT_SCORE_LOGIT], np.float32)),
         g.op("Concat", batch_out, num_masks, g.ints("one", 1), axis=0), out="object_score_logits")

    inputs = [
        helper.make_tensor_value_info("input_points", TensorProto.FLOAT, [BATCH_DIM, POINT_BATCH_DIM, NUM_POINTS_DIM, 2]),
        helper.make_tensor_value_info("input_labels", TensorProto.INT64, [BATCH_DIM, POINT_BATCH_DIM, NUM_POINTS_DIM]),
        helper.make_tensor_value_info("input_boxes", TensorProto.FLOAT, [BATCH_DIM, NUM_BOXES_DIM, 4]),
        *embedding_value_infos(),
    ]
    names = dict(zip(DECODER_OUTPUTS, ([BATCH_DIM, NUM_MASKS_DIM, NUM_CANDIDATES],
                                       [BATCH_DIM, NUM_MASKS_DIM, NUM_CANDIDATES, LOWRES_SIZE, LOWRES_SIZE],
                                       [BATCH_DIM, NUM_MASKS_DIM, 1]), strict=True))
    outputs = [helper.make_tensor_value_info(name, TensorProto.FLOAT, dims) for name, dims in names.items()]
    return g.model("content_sam2_decoder", inputs, outputs, build_decoder.__doc__ or "")


def save_models(out_dir: str | Path) -> tuple[Path, Path]:
    """Write ``encoder.onnx`` and ``decoder.onnx`` of the content models into ``out_dir``."""
    out = Path(out_dir)
    return (save_model(build_encoder(), out / "encoder.onnx"), save_model(build_decoder(), out / "decoder.onnx"))


# --- numpy reference ---------------------------------------------------------------------------
def reference_encoder(pixel_values: np.ndarray) -> tuple[np.ndarray, ...]:
    """What ``build_encoder`` computes, from float32 ``[B,3,1024,1024]`` (float64 pooling, float32 out)."""
    values = np.asarray(pixel_values, np.float64)
    batch = values.shape[0]
    levels = []
    for (channels, size, _), pool in zip(EMBEDDING_CHW, POOLS, strict=True):
        level = np.zeros((batch, channels, size, size))
        level[:, :COLOUR_CHANNELS] = values.reshape(batch, 3, size, pool, size, pool).mean(axis=(3, 5))
        levels.append(level.astype(np.float32))
    return tuple(levels)


def reference_decoder(points: np.ndarray, labels: np.ndarray, boxes: np.ndarray, emb0: np.ndarray
                      ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """What ``build_decoder`` computes, in numpy: ``(iou [B,Q,3], masks [B,Q,3,256,256], obj [B,Q,1])``.

    ``points`` float32 ``[B,P,N,2]``, ``labels`` ``[B,Pl,N]``, ``boxes`` float32 ``[B,M,4]`` (model frame, no
    0.5 added), ``emb0`` float32 ``[B,32,256,256]``.
    """
    points, labels, boxes = np.asarray(points, np.float32), np.asarray(labels), np.asarray(boxes, np.float32)
    colours = np.asarray(emb0, np.float32)[:, :COLOUR_CHANNELS]
    batch = points.shape[0]
    q_count = max(points.shape[1], labels.shape[1], boxes.shape[1] if boxes.shape[1] else 1)
    centres = cell_centres()
    masks = np.empty((batch, q_count, NUM_CANDIDATES, LOWRES_SIZE, LOWRES_SIZE), np.float32)
    for b in range(batch):
        for q in range(q_count):
            pts = points[b, min(q, points.shape[1] - 1)]
            labs = labels[b, min(q, labels.shape[1] - 1)]
            box = boxes[b, min(q, boxes.shape[1] - 1)].astype(np.float64) + PIXEL_CENTRE_SHIFT \
                if boxes.shape[1] else None
            pos = np.full((LOWRES_SIZE, LOWRES_SIZE), -np.inf)
            neg = np.full((LOWRES_SIZE, LOWRES_SIZE), np.inf)
            for (x, y), label in zip(pts, labs, strict=True):
                if label not in (LABEL_POSITIVE, LABEL_NEGATIVE):
                    continue
                cx, cy = (np.clip(np.floor((np.float32(v) + np.float32(PIXEL_CENTRE_SHIFT)) / np.float32(CELL_SIZE)),
                                  0, LOWRES_SIZE - 1).astype(int) for v in (x, y))
                diff = colours[b] - colours[b][:, cy, cx][:, None, None]
                distance = np.sqrt(np.sum(diff * diff, axis=0, dtype=np.float32)).astype(np.float64)
                if label == LABEL_POSITIVE:
                    pos = np.maximum(pos, TOLERANCE - distance)
                else:
                    neg = np.minimum(neg, distance - TOLERANCE)
            has_pos, has_neg = bool(np.sum(labs == LABEL_POSITIVE)), bool(np.sum(labs == LABEL_NEGATIVE))
            pos = SCALE * pos if has_pos else np.full_like(pos, BIG if box is not None else -BIG)
            neg = SCALE * neg if has_neg else np.full_like(neg, BIG)
            if box is None:
                box_term = np.full_like(pos, BIG)
            else:
                gx, gy = centres[None, :], centres[:, None]
                box_term = np.minimum(np.minimum(gx - box[0], box[2] - gx), np.minimum(gy - box[1], box[3] - gy))
            base = np.minimum(np.minimum(pos, neg), box_term).astype(np.float32)
            masks[b, q] = base[None] + np.asarray(MASK_OFFSETS, np.float32)[:, None, None]
    iou = np.broadcast_to(np.asarray(IOU_SCORES, np.float32), (batch, q_count, NUM_CANDIDATES)).copy()
    obj = np.full((batch, q_count, 1), OBJECT_SCORE_LOGIT, np.float32)
    return iou, masks, obj


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tools.content_models",
                                     description="Write the content-following encoder.onnx / decoder.onnx pair.")
    parser.add_argument("--out", required=True, type=Path, help="output folder (created if needed)")
    args = parser.parse_args(argv)
    for path in save_models(args.out):
        print(path)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
