"""Exactness against PyTorch: a reduced transformers Sam2 exported like the published decoder.

tests/fixtures/sam2_tiny holds a small Sam2Model (random weights) exported with the plain
trace layout, which has the onnxruntime Concat quirk, plus the outputs of transformers'
own pipeline (processor coordinate mapping, Sam2Model, post_process_masks) for every
prompt layout. The wrapper must reproduce them: logits within 1e-4, masks bit for bit
except where a logit is within float rounding of the threshold.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest
from PIL import Image

from sam_onnx import Box, Point, Prompts, Sam2Predictor
from sam_onnx.postprocess import upsample_logits
from sam_onnx.preprocess import preprocess_image
from sam_onnx.prompts import encode_prompts

FIXTURE = Path(__file__).parent / "fixtures" / "sam2_tiny"
META = json.loads((FIXTURE / "reference.json").read_text())
REF = np.load(FIXTURE / "reference.npz")
LOGIT_TOL = 1e-4
NEAR_THRESHOLD = 1e-3  # logits this close to 0 may round to either side in float32
CASES = META["cases"]


def _objects(case) -> list[Prompts]:
    return [Prompts(tuple(Point(*p) for p in obj["points"]), Box(*obj["box"]) if obj["box"] else None)
            for obj in case["objects"]]


def _unpack_masks(case) -> np.ndarray:
    shape = case["masks_shape"]
    return np.unpackbits(REF[f"{case['key']}_masks"], count=int(np.prod(shape))).reshape(shape).astype(bool)


@pytest.fixture(scope="module")
def image() -> np.ndarray:
    return np.asarray(Image.open(FIXTURE / "image.png").convert("RGB"))


@pytest.fixture(scope="module")
def fixture_predictor() -> Sam2Predictor:
    return Sam2Predictor.from_files(FIXTURE / "encoder.onnx", FIXTURE / "decoder.onnx", threads=1)


@pytest.fixture(scope="module")
def embedding(fixture_predictor, image):
    return fixture_predictor.encode(image)


def test_fixture_is_what_the_tests_assume(image):
    assert image.shape[:2] == tuple(META["image"]["hw"]) and image.shape[0] != image.shape[1]


def test_decoder_repair_was_applied(fixture_predictor):
    assert fixture_predictor.info.repaired_concats == 1


def test_preprocessing_matches_the_reference(image):
    pixel_values, geometry = preprocess_image(image)
    assert geometry.original_hw == image.shape[:2]
    np.testing.assert_allclose(pixel_values[:, :, ::4, ::4], REF["pixel_values_pil_sub"], atol=1e-5)
    # transformers' own (torchvision) processor: identical when upscaling, <= 1 grey level otherwise.
    np.testing.assert_allclose(pixel_values[:, :, ::4, ::4], REF["pixel_values_hf"], atol=1.01 / 255 / 0.224)


def test_encoder_matches_pytorch(embedding):
    e0, e1, e2 = embedding.features
    np.testing.assert_allclose(e0[:, :, ::4, ::4], REF["emb0_sub"], atol=LOGIT_TOL)
    np.testing.assert_allclose(e1[:, :, ::2, ::2], REF["emb1_sub"], atol=LOGIT_TOL)
    np.testing.assert_allclose(e2, REF["emb2"], atol=LOGIT_TOL)


@pytest.mark.parametrize("case", CASES, ids=[c["name"] for c in CASES])
def test_prompt_mapping_matches_transformers_processor(case, image):
    objects = _objects(case)
    from sam_onnx.geometry import Geometry

    batches = encode_prompts(objects, Geometry(image.shape[:2]))
    for batch in batches:
        for q, index in enumerate(batch.object_indices):
            ref = case["model_inputs"][index]
            if "input_points" in ref:
                n = len(ref["input_points"][0])
                np.testing.assert_allclose(batch.feeds["input_points"][0, q, :n], ref["input_points"][0], rtol=1e-6)
                np.testing.assert_array_equal(batch.feeds["input_labels"][0, q, :n], ref["input_labels"][0])
            if "input_boxes" in ref:
                np.testing.assert_allclose(batch.feeds["input_boxes"][0, q], np.ravel(ref["input_boxes"]), rtol=1e-6)


@pytest.mark.parametrize("case", CASES, ids=[c["name"] for c in CASES])
def test_decoder_and_masks_match_pytorch(case, fixture_predictor, embedding):
    key = case["key"]
    results = fixture_predictor.decode_many(embedding, _objects(case))
    low_res = np.stack([r.low_res_logits for r in results])
    np.testing.assert_allclose(low_res[:, :, ::2, ::2], REF[f"{key}_low_res"], atol=LOGIT_TOL)
    np.testing.assert_allclose(np.stack([r.scores for r in results]), REF[f"{key}_iou"], atol=LOGIT_TOL)
    np.testing.assert_allclose([[r.object_score_logit] for r in results], REF[f"{key}_object_score"], atol=LOGIT_TOL)
    ref_masks = _unpack_masks(case)
    masks = np.stack([r.masks for r in results])
    logits = np.stack([upsample_logits(r.low_res_logits, r.geometry.original_hw) for r in results])
    differ = masks != ref_masks
    assert not (differ & (np.abs(logits) > NEAR_THRESHOLD)).any()
    assert differ.mean() < 1e-4


def test_full_resolution_low_res_logits_of_the_first_case(fixture_predictor, embedding):
    (result,) = fixture_predictor.decode_many(embedding, _objects(CASES[0]))
    np.testing.assert_allclose(result.low_res_logits[None], REF["c0_low_res_full"], atol=LOGIT_TOL)


def test_without_the_repair_points_only_prompts_are_wrong(embedding):
    """The control: the same feeds through the unrepaired graph miss the reference by far more than 1e-4."""
    session = ort.InferenceSession(str(FIXTURE / "decoder.onnx"), providers=["CPUExecutionProvider"])
    case = CASES[0]  # one positive point
    (batch,) = encode_prompts(_objects(case), embedding.geometry)
    feeds = {**batch.feeds, **dict(zip(("image_embeddings.0", "image_embeddings.1", "image_embeddings.2"),
                                       embedding.features))}
    _, logits, _ = session.run(None, feeds)
    assert logits.shape[1] == 1
    assert np.abs(logits[0][:, :, ::2, ::2] - REF[f"{case['key']}_low_res"]).max() > 100 * LOGIT_TOL
