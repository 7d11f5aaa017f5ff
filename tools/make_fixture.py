#!/usr/bin/env python3
"""Build the small committed SAM 2.1 test fixture and its PyTorch reference outputs.

A reduced ``transformers`` ``Sam2Model`` with seeded random weights is exported to
ONNX with the I/O contract of the published ``onnx-community/sam2.1-hiera-small-ONNX``
files and the prompt-concatenation layout we infer they have (plain trace of the prompt
encoder called with points, labels AND boxes, so an empty ``input_boxes`` hits
onnxruntime's lenient Concat; see docs/model-io.md, "The Concat quirk").
Next to the graphs it stores a test image and the outputs of transformers' own
pipeline (image processor, prompt normalisation, model, ``post_process_masks``)
so that tests without torch can check an ONNX wrapper against them.

Usage (needs torch with a MATCHING torchvision -- transformers' Sam2ImageProcessor
imports torchvision -- plus transformers 5.x with Sam2, onnx, onnxruntime, Pillow,
numpy; tests/fixtures/sam2_tiny/README.md gives the exact environment)::

    python tools/make_fixture.py [--out tests/fixtures/sam2_tiny] [--seed 0] [--no-check]

Writes into ``--out``: encoder.onnx, decoder.onnx, image.png, reference.npz,
reference.json. The same seed and the same library builds give byte-identical
files. Self-check results go to stderr.
"""

from __future__ import annotations

import argparse
import io
import json
import sys
import zipfile
from pathlib import Path

import numpy as np

# --------------------------------------------------------------------------- constants

DEFAULT_SEED = 0
OPSET = 17
MODEL_SIDE = 1024  # the encoder's square input, pixels of the 1024 model frame
LOW_RES_SIDE = 256  # side of the decoder's mask logits
IMAGE_HW = (150, 240)  # test image (height, width): non-square, upscaled by the encoder resize
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
RESCALE = 1.0 / 255.0
ZERO_INIT_NOISE_STD = 0.02  # std of the noise given to tensors that HF initialises to exactly zero
ZIP_EPOCH = (1980, 1, 1, 0, 0, 0)  # fixed zip member timestamp -> byte-identical reference.npz
# With HF's init (std 0.02) a random model's heads give near-constant, tiny outputs (IoU
# 0.50 +- 0.005 with the same argmax for every prompt, mask logits ~1e-2). The output
# layers of the IoU head, the object-score head and the mask hypernetwork MLPs get their
# weights scaled by this gain: scores then differ visibly, the best mask varies between
# prompts, and mask logits are O(1) like a real model's.
HEAD_OUTPUT_GAIN = 100.0

# Subsampling of the stored reference arrays (keeps reference.npz small).
PIXEL_SUB = 4  # pixel values [1,3,1024,1024] -> [1,3,256,256]
EMB0_SUB = 4  # image_embeddings.0 [1,32,256,256] -> [1,32,64,64]
EMB1_SUB = 2  # image_embeddings.1 [1,64,128,128] -> [1,64,64,64]
LOW_RES_SUB = 2  # pred_masks logits [Q,3,256,256] -> [Q,3,128,128] (full size only for case c0)
FULL_LOW_RES_CASE = "c0"  # also stored unsubsampled as c0_low_res_full (post-processing tests)

# Reduced config (the smallest Hiera that exports with the real I/O shapes, with a slimmer mask decoder). The FPN and
# mask-decoder hidden size stays 256: the embedding channel counts 32/64/256 follow it.
HIERA = dict(
    hidden_size=16,
    num_attention_heads=1,
    blocks_per_stage=[1, 1, 2, 1],
    embed_dim_per_stage=[16, 32, 64, 128],
    num_attention_heads_per_stage=[1, 1, 1, 1],
    global_attention_blocks=[3],
    image_size=[MODEL_SIDE, MODEL_SIDE],
)
HIERA_PATCH_STRIDE = 4  # 1024 -> 256 tokens per side
VISION = dict(
    backbone_channel_list=[128, 64, 32, 16],  # embed_dim_per_stage, deepest first
    backbone_feature_sizes=[[256, 256], [128, 128], [64, 64]],
    fpn_hidden_size=256,
    fpn_top_down_levels=[2, 3],
    num_feature_levels=3,
)
MASK_DECODER = dict(
    hidden_size=256,
    num_hidden_layers=1,
    mlp_dim=64,
    num_attention_heads=8,
    iou_head_depth=3,
    iou_head_hidden_dim=32,
)

ENC_IN = ["pixel_values"]
EMB = ["image_embeddings.0", "image_embeddings.1", "image_embeddings.2"]
DEC_IN = ["input_points", "input_labels", "input_boxes"] + EMB
DEC_OUT = ["iou_scores", "pred_masks", "object_score_logits"]
# The published export's I/O contract: name -> (ONNX elem type name, dims).
IO_CONTRACT = {
    "encoder.onnx": {
        "inputs": {"pixel_values": ("FLOAT", ["batch_size", 3, MODEL_SIDE, MODEL_SIDE])},
        "outputs": {
            "image_embeddings.0": ("FLOAT", ["batch_size", 32, 256, 256]),
            "image_embeddings.1": ("FLOAT", ["batch_size", 64, 128, 128]),
            "image_embeddings.2": ("FLOAT", ["batch_size", 256, 64, 64]),
        },
    },
    "decoder.onnx": {
        "inputs": {
            "input_points": ("FLOAT", ["batch_size", "point_batch_size", "num_points", 2]),
            "input_labels": ("INT64", ["batch_size", "point_batch_size", "num_points"]),
            "input_boxes": ("FLOAT", ["batch_size", "num_boxes", 4]),
            "image_embeddings.0": ("FLOAT", ["batch_size", 32, 256, 256]),
            "image_embeddings.1": ("FLOAT", ["batch_size", 64, 128, 128]),
            "image_embeddings.2": ("FLOAT", ["batch_size", 256, 64, 64]),
        },
        "outputs": {
            "iou_scores": ("FLOAT", ["batch_size", "num_masks", 3]),
            "pred_masks": ("FLOAT", ["batch_size", "num_masks", 3, LOW_RES_SIDE, LOW_RES_SIDE]),
            "object_score_logits": ("FLOAT", ["batch_size", "num_masks", 1]),
        },
    },
}
ENC_OUT_DIMS = {
    "image_embeddings.0": ["batch_size", 32, 256, 256],
    "image_embeddings.1": ["batch_size", 64, 128, 128],
    "image_embeddings.2": ["batch_size", 256, 64, 64],
}
DEC_OUT_DIMS = {
    "iou_scores": ["batch_size", "num_masks", 3],
    "pred_masks": ["batch_size", "num_masks", 3, LOW_RES_SIDE, LOW_RES_SIDE],
    "object_score_logits": ["batch_size", "num_masks", 1],
}
DEC_DYNAMIC_AXES = {
    "input_points": {0: "batch_size", 1: "point_batch_size", 2: "num_points"},
    "input_labels": {0: "batch_size", 1: "point_batch_size", 2: "num_points"},
    "input_boxes": {0: "batch_size", 1: "num_boxes"},
    "image_embeddings.0": {0: "batch_size"},
    "image_embeddings.1": {0: "batch_size"},
    "image_embeddings.2": {0: "batch_size"},
    "iou_scores": {0: "batch_size", 1: "num_masks"},
    "pred_masks": {0: "batch_size", 1: "num_masks"},
    "object_score_logits": {0: "batch_size", 1: "num_masks"},
}

POSITIVE, NEGATIVE, NOT_A_POINT = 1, 0, -1


def prompt_cases(hw: tuple[int, int]) -> list[dict]:
    """Decoder reference cases in ORIGINAL image pixels.

    Each case is ``{"name", "objects"}``; each object is
    ``{"points": [[x, y, label], ...], "box": [x0, y0, x1, y1] or None}``.
    """
    h, w = hw
    cx, cy = w // 2, h // 2

    def obj(points=(), box=None):
        return {"points": [list(p) for p in points], "box": None if box is None else list(box)}

    return [
        {"name": "one_positive_point", "objects": [obj([(cx, cy, POSITIVE)])]},
        {"name": "positive_and_negative_point",
         "objects": [obj([(70, 60, POSITIVE), (180, 90, NEGATIVE)])]},
        {"name": "negative_point_only", "objects": [obj([(40, 120, NEGATIVE)])]},
        {"name": "one_box", "objects": [obj(box=(130, 25, 225, 130))]},
        {"name": "box_positive_negative",
         "objects": [obj([(175, 75, POSITIVE), (40, 40, NEGATIVE)], box=(20, 15, 215, 135))]},
        {"name": "three_boxes",
         "objects": [obj(box=(35, 25, 110, 100)), obj(box=(135, 30, 220, 125)), obj(box=(5, 95, 95, 148))]},
        {"name": "two_objects_one_point_each",
         "objects": [obj([(70, 60, POSITIVE)]), obj([(175, 75, POSITIVE)])]},
        {"name": "two_objects_1_and_3_points",
         "objects": [obj([(70, 60, POSITIVE)]),
                     obj([(175, 75, POSITIVE), (200, 40, NEGATIVE), (150, 110, POSITIVE)])]},
        {"name": "mixed_points_box_boxpoint",
         "objects": [obj([(70, 60, POSITIVE)]), obj(box=(135, 30, 220, 125)),
                     obj([(50, 125, POSITIVE)], box=(5, 95, 95, 148))]},
        {"name": "points_at_image_corners",
         "objects": [obj([(0, 0, POSITIVE), (w - 1, h - 1, POSITIVE)])]},
        {"name": "box_whole_image", "objects": [obj(box=(0, 0, w, h))]},
    ]


def _log(msg: str) -> None:
    """Progress and self-check lines go to stderr (this is a command-line tool)."""
    print(msg, file=sys.stderr)


# --------------------------------------------------------------------------- image

def make_test_image(hw: tuple[int, int], seed: int) -> np.ndarray:
    """Deterministic RGB test image, uint8 [H, W, 3]: gradients, a disc, a rectangle, a triangle, noise."""
    h, w = hw
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float64)
    img = np.empty((h, w, 3), np.float64)
    img[..., 0] = 30 + 190 * xx / (w - 1)
    img[..., 1] = 50 + 150 * yy / (h - 1)
    img[..., 2] = 110 + 60 * np.sin(xx / 13.0) * np.cos(yy / 9.0)
    disc = (xx - 70) ** 2 + (yy - 60) ** 2 <= 32 ** 2
    img[disc] = (235, 205, 40)
    rect = (xx >= 140) & (xx < 215) & (yy >= 35) & (yy < 120)
    img[rect] = (25, 55, 190)
    stripes = rect & ((xx // 6) % 2 == 0) & (yy >= 60) & (yy < 95)
    img[stripes] = (240, 240, 245)
    tri = (yy >= 100) & (yy < 146) & (np.abs(xx - 50) <= (yy - 100) * 0.9)
    img[tri] = (20, 20, 25)
    img += np.random.default_rng(seed).normal(0.0, 3.0, img.shape)
    return np.clip(np.rint(img), 0, 255).astype(np.uint8)


def pil_pixel_values(rgb: np.ndarray) -> np.ndarray:
    """PIL recipe: bilinear squash to 1024x1024, /255, ImageNet norm. float32 [1,3,1024,1024], RGB, NCHW."""
    from PIL import Image

    resized = Image.fromarray(rgb, "RGB").resize((MODEL_SIDE, MODEL_SIDE), Image.BILINEAR)
    x = np.asarray(resized, np.float32) * np.float32(RESCALE)
    x = (x - np.asarray(IMAGENET_MEAN, np.float32)) / np.asarray(IMAGENET_STD, np.float32)
    return np.ascontiguousarray(x.transpose(2, 0, 1)[None])


# --------------------------------------------------------------------------- model

def build_model(seed: int):
    """Reduced Sam2Model with seeded weights; all-zero float tensors get small seeded noise."""
    import torch
    from transformers import (
        Sam2Config,
        Sam2HieraDetConfig,
        Sam2MaskDecoderConfig,
        Sam2Model,
        Sam2PromptEncoderConfig,
        Sam2VisionConfig,
    )

    torch.manual_seed(seed)
    vision = Sam2VisionConfig(backbone_config=Sam2HieraDetConfig(**HIERA), **VISION)
    config = Sam2Config(
        vision_config=vision,
        prompt_encoder_config=Sam2PromptEncoderConfig(),
        mask_decoder_config=Sam2MaskDecoderConfig(**MASK_DECODER),
    )
    config._attn_implementation = "sdpa"
    model = Sam2Model(config).eval()
    gen = torch.Generator().manual_seed(seed + 1)
    with torch.no_grad():
        for t in list(model.parameters()) + list(model.buffers()):
            if t.is_floating_point() and t.numel() and not bool(t.any()):
                t.copy_(torch.randn(t.shape, generator=gen) * ZERO_INIT_NOISE_STD)
        decoder = model.mask_decoder
        heads = [decoder.iou_prediction_head, decoder.pred_obj_score_head, *decoder.output_hypernetworks_mlps]
        for head in heads:
            head.proj_out.weight.mul_(HEAD_OUTPUT_GAIN)
    for p in model.parameters():
        p.requires_grad_(False)
    return model


def make_export_modules(model):
    """Encoder/decoder modules with the published export's I/O.

    Weight-only tensors (Hiera's interpolated positional embedding, the decoder's
    64x64 dense positional embedding) are precomputed and stored as constants.
    """
    import torch
    from torch import nn

    class Encoder(nn.Module):
        def __init__(self, m):
            super().__init__()
            self.m = m
            backbone = m.vision_encoder.backbone
            side = MODEL_SIDE // HIERA_PATCH_STRIDE
            with torch.no_grad():
                self.register_buffer("hiera_pos_embed", backbone._get_pos_embed((side, side)).contiguous())
            backbone._get_pos_embed = self._pos_embed  # instance override used by the backbone's forward

        def _pos_embed(self, hw):
            return self.hiera_pos_embed

        def forward(self, pixel_values):
            e = self.m.get_image_embeddings(pixel_values)
            return e[0], e[1], e[2]

    class Decoder(nn.Module):
        def __init__(self, m):
            super().__init__()
            self.m = m
            with torch.no_grad():
                self.register_buffer("image_pe", m.get_image_wide_positional_embeddings().contiguous())

        def forward(self, input_points, input_labels, input_boxes, emb0, emb1, emb2):
            # Plain trace of Sam2PromptEncoder with boxes given: no in-graph pad point, and
            # torch.cat([point tokens [B,P,N,C], box tokens [B,M,3,C]], dim=2).
            sparse, dense = self.m.prompt_encoder(
                input_points=input_points, input_labels=input_labels, input_boxes=input_boxes, input_masks=None)
            masks, iou, _, obj = self.m.mask_decoder(
                image_embeddings=emb2,
                image_positional_embeddings=self.image_pe.repeat(emb2.shape[0], 1, 1, 1),
                sparse_prompt_embeddings=sparse,
                dense_prompt_embeddings=dense,
                multimask_output=True,
                high_resolution_features=[emb0, emb1],
            )
            return iou, masks, obj

    return Encoder(model).eval(), Decoder(model).eval()


def export_onnx(enc, dec, out_dir: Path, pixel_values) -> tuple[Path, Path]:
    """Legacy (TorchScript) export, opset 17, single files; static dims written into the outputs."""
    import torch

    enc_path, dec_path = out_dir / "encoder.onnx", out_dir / "decoder.onnx"
    with torch.no_grad():
        e0, e1, e2 = enc(pixel_values)
        torch.onnx.export(
            enc, (pixel_values,), str(enc_path), dynamo=False, opset_version=OPSET,
            input_names=ENC_IN, output_names=EMB,
            dynamic_axes={n: {0: "batch_size"} for n in ENC_IN + EMB}, do_constant_folding=True,
        )
        # Trace with 2 points AND 1 box so that both prompt branches and their Concat are in the graph.
        pts = torch.tensor([[[[500.0, 375.0], [200.0, 600.0]]]])
        lab = torch.tensor([[[POSITIVE, NEGATIVE]]], dtype=torch.int64)
        box = torch.tensor([[[100.0, 150.0, 700.0, 800.0]]])
        torch.onnx.export(
            dec, (pts, lab, box, e0, e1, e2), str(dec_path), dynamo=False, opset_version=OPSET,
            input_names=DEC_IN, output_names=DEC_OUT, dynamic_axes=DEC_DYNAMIC_AXES, do_constant_folding=True,
        )
    set_output_dims(enc_path, ENC_OUT_DIMS)
    set_output_dims(dec_path, DEC_OUT_DIMS)
    return enc_path, dec_path


def set_output_dims(path: Path, dims: dict) -> None:
    """Write static/named dims into the graph outputs and drop tracer value_info."""
    import onnx

    m = onnx.load(str(path))
    for out in m.graph.output:
        want = dims[out.name]
        shape = out.type.tensor_type.shape
        assert len(shape.dim) == len(want), (out.name, len(shape.dim), want)
        for d, w in zip(shape.dim, want):
            d.Clear()
            if isinstance(w, int):
                d.dim_value = w
            else:
                d.dim_param = w
    del m.graph.value_info[:]
    onnx.checker.check_model(m)
    onnx.save(m, str(path))


def assert_io_contract(path: Path) -> None:
    """Fail unless the file's graph inputs/outputs, dtypes and dims equal IO_CONTRACT, opset 17, no external data."""
    import onnx

    m = onnx.load(str(path))
    want = IO_CONTRACT[path.name]

    def describe(values):
        return {v.name: (onnx.TensorProto.DataType.Name(v.type.tensor_type.elem_type),
                         [d.dim_param or d.dim_value for d in v.type.tensor_type.shape.dim]) for v in values}

    got = {"inputs": describe(m.graph.input), "outputs": describe(m.graph.output)}
    for side in ("inputs", "outputs"):
        if got[side] != want[side] or list(got[side]) != list(want[side]):
            raise SystemExit(f"{path.name} {side} differ from the contract:\n got  {got[side]}\n want {want[side]}")
    opsets = {o.domain or "ai.onnx": o.version for o in m.opset_import}
    if opsets != {"ai.onnx": OPSET}:
        raise SystemExit(f"{path.name}: opsets {opsets}")
    if any(t.data_location == onnx.TensorProto.EXTERNAL for t in m.graph.initializer):
        raise SystemExit(f"{path.name}: has external data")
    _log(f"{path.name}: I/O contract OK ({len(m.graph.node)} nodes, {len(m.graph.initializer)} initializers)")


# --------------------------------------------------------------------------- references

def make_processor():
    """transformers' Sam2Processor with SAM 2.1 image-processor defaults (1024x1024, bilinear, ImageNet)."""
    from transformers import Sam2ImageProcessor, Sam2Processor

    return Sam2Processor(image_processor=Sam2ImageProcessor())


def processor_prompts(processor, obj: dict, hw: tuple[int, int]) -> dict:
    """transformers' prompt tensors (1024 frame) for ONE object.

    input_points [1,1,N,2], input_labels [1,1,N], input_boxes [1,1,4].
    """
    kwargs = {}
    if obj["points"]:
        kwargs["input_points"] = [[[[float(x), float(y)] for x, y, _ in obj["points"]]]]
        kwargs["input_labels"] = [[[int(lab) for _, _, lab in obj["points"]]]]
    if obj["box"] is not None:
        kwargs["input_boxes"] = [[[float(v) for v in obj["box"]]]]
    enc = processor(original_sizes=[list(hw)], return_tensors="pt", **kwargs)
    return {k: enc[k] for k in ("input_points", "input_labels", "input_boxes") if k in enc}


def reference_case(model, processor, embeddings, case: dict, hw: tuple[int, int]) -> tuple[dict, list]:
    """Run transformers' pipeline per object; stack into [Q, ...] arrays."""
    import torch

    iou, low, obj_score, masks, model_inputs = [], [], [], [], []
    for obj in case["objects"]:
        prompts = processor_prompts(processor, obj, hw)
        with torch.no_grad():
            out = model(image_embeddings=embeddings, multimask_output=True, **prompts)
        full = processor.post_process_masks(out.pred_masks, [list(hw)])[0]  # bool [1,3,H,W]
        iou.append(out.iou_scores[0, 0].numpy())
        low.append(out.pred_masks[0, 0].numpy())
        obj_score.append(out.object_score_logits[0, 0].numpy())
        masks.append(full[0].numpy())
        model_inputs.append({k: v[0].tolist() for k, v in prompts.items()})
    arrays = {
        "iou": np.stack(iou).astype(np.float32),
        "low_res": np.stack(low).astype(np.float32),
        "object_score": np.stack(obj_score).astype(np.float32),
        "masks": np.stack(masks).astype(bool),
    }
    return arrays, model_inputs


# --------------------------------------------------------------------------- onnxruntime feeds

def ort_feeds(model_inputs: list[dict], emb: list[np.ndarray], layout: str) -> dict:
    """Decoder feed for a group of objects that share one prompt layout (1024-frame tensors).

    layout "points": all objects points-only, same N; a (0,0)/-1 pad point is appended and
        input_boxes is empty [1,0,4] (the section 7.1 layout).
    layout "boxes": all objects box-only; input_points [1,1,0,2], input_labels [1,M,0].
    layout "box_points": one object with a box and N points.
    """
    if layout == "points":
        pts = np.array([mi["input_points"][0] + [[0.0, 0.0]] for mi in model_inputs], np.float32)[None]
        lab = np.array([mi["input_labels"][0] + [NOT_A_POINT] for mi in model_inputs], np.int64)[None]
        box = np.zeros((1, 0, 4), np.float32)
    elif layout == "boxes":
        box = np.array([mi["input_boxes"][0] for mi in model_inputs], np.float32)[None]
        pts = np.zeros((1, 1, 0, 2), np.float32)
        lab = np.zeros((1, len(model_inputs), 0), np.int64)
    elif layout == "box_points":
        (mi,) = model_inputs
        pts = np.array(mi["input_points"], np.float32)[None]
        lab = np.array(mi["input_labels"], np.int64)[None]
        box = np.array(mi["input_boxes"], np.float32)[None]
    else:
        raise ValueError(layout)
    feed = {"input_points": pts, "input_labels": lab, "input_boxes": box}
    feed.update(dict(zip(EMB, emb)))
    return feed


def max_diff(ort_out: list[np.ndarray], ref: dict) -> dict:
    iou, masks, obj = ort_out
    return {
        "iou": float(np.abs(iou[0] - ref["iou"]).max()),
        "low_res": float(np.abs(masks[0] - ref["low_res"]).max()),
        "object_score": float(np.abs(obj[0] - ref["object_score"]).max()),
    }


def find_prompt_concat(model_proto):
    """The Concat(axis=2) whose input 0 depends only on input_points/labels and input 1 only on input_boxes."""
    producer = {o: n for n in model_proto.graph.node for o in n.output}
    graph_inputs = {i.name for i in model_proto.graph.input}
    memo: dict[str, frozenset] = {}

    def sources(name: str) -> frozenset:
        if name in memo:
            return memo[name]
        stack, seen, found = [name], set(), set()
        while stack:
            t = stack.pop()
            if t in seen:
                continue
            seen.add(t)
            if t in graph_inputs:
                found.add(t)
            elif t in producer:
                stack.extend(x for x in producer[t].input if x)
        memo[name] = frozenset(found)
        return memo[name]

    hits = []
    for n in model_proto.graph.node:
        if n.op_type != "Concat" or len(n.input) != 2:
            continue
        axis = next((a.i for a in n.attribute if a.name == "axis"), None)
        if axis != 2:
            continue
        a, b = sources(n.input[0]), sources(n.input[1])
        if a and a <= {"input_points", "input_labels"} and b == {"input_boxes"}:
            hits.append(n)
    return hits


def sliced_box_tokens_model(model_proto, concat_node):
    """In-memory copy with the section 7.1 fix: box tokens sliced to 3*min(M,1) along axis 2 (diagnostic only)."""
    import copy

    from onnx import TensorProto, helper

    m = copy.deepcopy(model_proto)
    node = next(n for n in m.graph.node if n.name == concat_node.name)
    box_tokens = node.input[1]
    p = "fixture_diag_"

    def const(name, vals):
        return helper.make_node(
            "Constant", [], [p + name], value=helper.make_tensor(p + name, TensorProto.INT64, [len(vals)], vals))

    new = [
        helper.make_node("Shape", ["input_boxes"], [p + "m"], start=1, end=2),
        const("one", [1]), const("three", [3]), const("zero", [0]), const("axis", [2]),
        helper.make_node("Min", [p + "m", p + "one"], [p + "has_box"]),
        helper.make_node("Mul", [p + "has_box", p + "three"], [p + "k"]),
        helper.make_node("Slice", [box_tokens, p + "zero", p + "k", p + "axis"], [p + "box_tokens"]),
    ]
    node.input[1] = p + "box_tokens"
    idx = list(m.graph.node).index(node)
    for i, n in enumerate(new):
        m.graph.node.insert(idx + i, n)
    return m


# --------------------------------------------------------------------------- self-check

def self_check(enc_path: Path, dec_path: Path, pixel_values: np.ndarray, torch_emb: list[np.ndarray],
               cases: list[dict], refs: dict, model_inputs: dict) -> dict:
    """Compare onnxruntime with PyTorch and demonstrate the Concat quirk. Returns the numbers."""
    import onnx
    import onnxruntime as ort

    log = _log
    res: dict = {}
    so = ort.SessionOptions()
    providers = ["CPUExecutionProvider"]
    enc_s = ort.InferenceSession(str(enc_path), so, providers=providers)
    ort_emb = enc_s.run(None, {"pixel_values": pixel_values})
    res["encoder"] = {n: float(np.abs(o - r).max()) for n, o, r in zip(EMB, ort_emb, torch_emb)}
    for n, d in res["encoder"].items():
        log(f"check encoder {n}: max|ort-torch| = {d:.2e}")
    ort_emb2 = enc_s.run(None, {"pixel_values": np.concatenate([pixel_values, -pixel_values])})
    batch_diff = max(float(np.abs(o[:1] - r).max()) for o, r in zip(ort_emb2, torch_emb))
    log(f"check encoder batch 2: shapes {[list(o.shape) for o in ort_emb2]}, max|ort[0]-torch| = {batch_diff:.2e}")

    dec_proto = onnx.load(str(dec_path))
    dec_s = ort.InferenceSession(dec_proto.SerializeToString(), so, providers=providers)
    by_name = {c["name"]: i for i, c in enumerate(cases)}

    def run_case(sess, name, layout, objects=None):
        i = by_name[name]
        mi = model_inputs[f"c{i}"]
        ref = dict(refs[f"c{i}"])
        if objects is not None:
            mi = [mi[j] for j in objects]
            ref = {k: v[objects] for k, v in ref.items()}
        out = sess.run(None, ort_feeds(mi, torch_emb, layout))
        return out, max_diff(out, ref)

    for name, layout, objs in [("one_box", "boxes", None), ("three_boxes", "boxes", None),
                               ("box_whole_image", "boxes", None), ("box_positive_negative", "box_points", None),
                               ("mixed_points_box_boxpoint", "box_points", [2])]:
        _, d = run_case(dec_s, name, layout, objs)
        res[f"decoder {name} ({layout})"] = d
        log(f"check decoder {name} [{layout}]: max|ort-torch| iou {d['iou']:.1e} "
            f"low_res {d['low_res']:.1e} object_score {d['object_score']:.1e}")

    hits = find_prompt_concat(dec_proto)
    res["prompt_concat_nodes"] = [h.name for h in hits]
    log(f"graph: Concat(axis=2) of [input_points/input_labels branch] ++ [input_boxes branch]: "
        f"{[h.name for h in hits] or 'NOT FOUND'}")

    quirk = {}
    for name in ("one_positive_point", "positive_and_negative_point", "negative_point_only",
                 "two_objects_one_point_each", "points_at_image_corners"):
        out1, d1 = run_case(dec_s, name, "points")
        out2, _ = run_case(dec_s, name, "points")
        rerun = max(float(np.abs(a - b).max()) for a, b in zip(out1, out2))
        shape = list(out1[1].shape)
        quirk[name] = {**d1, "rerun_max_diff": rerun}
        log(f"quirk  decoder {name} [points + pad, input_boxes [1,0,4]]: pred_masks {shape}; max|ort-torch| "
            f"iou {d1['iou']:.1e} low_res {d1['low_res']:.1e} object_score {d1['object_score']:.1e}; "
            f"rerun diff {rerun:.1e}")
    res["quirk_points_only"] = quirk

    if hits:
        fixed = ort.InferenceSession(sliced_box_tokens_model(dec_proto, hits[0]).SerializeToString(), so,
                                     providers=providers)
        diag = {}
        for name, layout in [("one_positive_point", "points"), ("positive_and_negative_point", "points"),
                             ("two_objects_one_point_each", "points"), ("three_boxes", "boxes"),
                             ("box_positive_negative", "box_points")]:
            _, d = run_case(fixed, name, layout)
            diag[name] = d
            log(f"diag   box tokens sliced to 3*min(M,1) (section 7.1 fix, in memory): {name} [{layout}]: "
                f"max|ort-torch| iou {d['iou']:.1e} low_res {d['low_res']:.1e} "
                f"object_score {d['object_score']:.1e}")
        res["with_section_7_1_fix"] = diag
    return res


# --------------------------------------------------------------------------- writing

def save_npz_deterministic(path: Path, arrays: dict) -> None:
    """Like np.savez_compressed, but with a fixed member timestamp and order (byte-identical reruns)."""
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for key in sorted(arrays):
            buf = io.BytesIO()
            np.lib.format.write_array(buf, np.ascontiguousarray(arrays[key]), allow_pickle=False)
            info = zipfile.ZipInfo(key + ".npy", date_time=ZIP_EPOCH)
            info.compress_type = zipfile.ZIP_DEFLATED
            info.external_attr = 0o644 << 16
            zf.writestr(info, buf.getvalue(), compresslevel=9)


def main(argv=None) -> int:
    repo = Path(__file__).resolve().parent.parent
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", type=Path, default=repo / "tests" / "fixtures" / "sam2_tiny")
    ap.add_argument("--seed", type=int, default=DEFAULT_SEED)
    ap.add_argument("--no-check", action="store_true", help="skip the onnxruntime self-check")
    args = ap.parse_args(argv)

    import onnx
    import onnxruntime
    import PIL
    import torch
    import transformers
    from PIL import Image

    try:
        import torchvision  # noqa: F401  (transformers' Sam2ImageProcessor needs it)
    except Exception as exc:  # noqa: BLE001 - a CUDA torchvision on a +cpu torch fails with RuntimeError
        raise SystemExit(f"torchvision is not usable here ({type(exc).__name__}: {exc}); "
                         "see tests/fixtures/sam2_tiny/README.md for the environment") from exc

    log = _log
    out = args.out
    out.mkdir(parents=True, exist_ok=True)
    hw = IMAGE_HW

    # Image, written first and read back so that every reference starts from the PNG bytes.
    Image.fromarray(make_test_image(hw, args.seed), "RGB").save(out / "image.png", optimize=False)
    image = Image.open(out / "image.png").convert("RGB")
    rgb = np.asarray(image)
    assert rgb.shape[:2] == hw

    processor = make_processor()
    pixel_hf = processor(images=image, return_tensors="pt")["pixel_values"].numpy().astype(np.float32)
    pixel_pil = pil_pixel_values(rgb)
    log(f"pixel values: hf vs PIL recipe max|diff| = {np.abs(pixel_hf - pixel_pil).max():.2e} "
        f"(1/255 in normalised units is ~{RESCALE / min(IMAGENET_STD):.3f})")

    model = build_model(args.seed)
    n_params = sum(p.numel() for p in model.parameters())
    log(f"Sam2Model (reduced, seed {args.seed}): {n_params / 1e6:.3f} M parameters; torch {torch.__version__}, "
        f"transformers {transformers.__version__}")

    # PyTorch references with the untouched model (before the export wrappers override anything).
    with torch.no_grad():
        emb = [t.contiguous() for t in model.get_image_embeddings(torch.from_numpy(pixel_pil))]
    emb_np = [t.numpy().astype(np.float32) for t in emb]
    cases = prompt_cases(hw)
    arrays = {
        "pixel_values_hf": pixel_hf[:, :, ::PIXEL_SUB, ::PIXEL_SUB],
        "pixel_values_pil_sub": pixel_pil[:, :, ::PIXEL_SUB, ::PIXEL_SUB],
        "emb0_sub": emb_np[0][:, :, ::EMB0_SUB, ::EMB0_SUB],
        "emb1_sub": emb_np[1][:, :, ::EMB1_SUB, ::EMB1_SUB],
        "emb2": emb_np[2],
    }
    refs, model_inputs, case_meta = {}, {}, []
    for i, case in enumerate(cases):
        key = f"c{i}"
        ref, mi = reference_case(model, processor, emb, case, hw)
        refs[key], model_inputs[key] = ref, mi
        arrays[f"{key}_iou"] = ref["iou"]
        arrays[f"{key}_low_res"] = ref["low_res"][:, :, ::LOW_RES_SUB, ::LOW_RES_SUB]
        if key == FULL_LOW_RES_CASE:
            arrays[f"{key}_low_res_full"] = ref["low_res"]
        arrays[f"{key}_object_score"] = ref["object_score"]
        arrays[f"{key}_masks"] = np.packbits(ref["masks"])
        frac = ref["masks"].reshape(len(case["objects"]), 3, -1).mean(axis=-1)
        case_meta.append({
            "name": case["name"], "key": key, "objects": case["objects"],
            "masks_shape": list(ref["masks"].shape),
            "model_inputs": mi,
            "mask_fraction": np.round(frac, 4).tolist(),
        })
        log(f"reference {key} {case['name']}: Q={len(case['objects'])} iou {np.round(ref['iou'], 3).tolist()} "
            f"mask fraction {np.round(frac, 3).tolist()}")

    enc, dec = make_export_modules(model)
    enc_path, dec_path = export_onnx(enc, dec, out, torch.from_numpy(pixel_pil))
    for path in (enc_path, dec_path):
        assert_io_contract(path)

    save_npz_deterministic(out / "reference.npz", arrays)
    meta = {
        "description": "PyTorch (transformers) reference outputs for the random-weight sam2_tiny fixture",
        "seed": args.seed,
        "image": {"file": "image.png", "hw": list(hw)},
        "model_side": MODEL_SIDE,
        "subsampling": {"pixel_values_hf": PIXEL_SUB, "pixel_values_pil_sub": PIXEL_SUB,
                        "emb0_sub": EMB0_SUB, "emb1_sub": EMB1_SUB, "emb2": 1,
                        "c{i}_low_res": LOW_RES_SUB, f"{FULL_LOW_RES_CASE}_low_res_full": 1},
        "config": {"hiera": HIERA, "vision": VISION, "mask_decoder": MASK_DECODER,
                   "head_output_gain": HEAD_OUTPUT_GAIN, "zero_init_noise_std": ZERO_INIT_NOISE_STD,
                   "prompt_encoder": "Sam2PromptEncoderConfig() defaults", "attn_implementation": "sdpa",
                   "parameters": n_params, "opset": OPSET, "exporter": "torch.onnx.export(dynamo=False)"},
        "versions": {"torch": torch.__version__, "transformers": transformers.__version__,
                     "onnx": onnx.__version__, "onnxruntime": onnxruntime.__version__,
                     "numpy": np.__version__, "pillow": PIL.__version__, "python": sys.version.split()[0]},
        "cases": case_meta,
    }
    (out / "reference.json").write_text(json.dumps(meta, indent=1) + "\n")
    if not args.no_check:
        self_check(enc_path, dec_path, pixel_pil, emb_np, cases, refs, model_inputs)
    for p in sorted(out.iterdir()):
        log(f"{p.name}: {p.stat().st_size:,} bytes")
    return 0


if __name__ == "__main__":
    sys.exit(main())
