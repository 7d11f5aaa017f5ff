"""The content-following test models: the real I/O contract, masks that follow the image's colours.

Also the precision benchmark's measure (bench/bench_refine.py): a boundary error of 0 for the
true mask and of the shift for a shifted one, so its numbers mean what the README says.
"""

from __future__ import annotations

import numpy as np
import onnxruntime as ort
import pytest

from sam_onnx import Box, Point, Prompts, Sam2Predictor
from sam_onnx.session import DECODER_INPUTS, DECODER_OUTPUTS, ENCODER_INPUTS, ENCODER_OUTPUTS, check_contract
from tools import content_models as cm

LAYOUTS = {
    "points only": ([[[[100, 200], [500, 600], [0, 0]]]], [[[1, 0, -1]]], np.zeros((1, 0, 4))),
    "two point batches": ([[[[300, 300], [0, 0]], [[700, 700], [0, 0]]]], [[[1, -1], [0, -1]]], np.zeros((1, 0, 4))),
    "boxes only": (np.zeros((1, 1, 0, 2)), np.zeros((1, 2, 0)), [[[100, 100, 400, 500], [0, 0, 50, 50]]]),
    "box and points": ([[[[300, 300]], [[700, 700]]]], [[[1], [1]]], [[[100, 100, 400, 500], [600, 600, 900, 900]]]),
    "a point at the far edge": ([[[[1023.9, 1023.9], [0, 0]]]], [[[1, -1]]], np.zeros((1, 0, 4))),
    # 0.4 model units before a cell's edge: the graph's 0.5 shift puts it in the next cell
    "a point just before a cell edge": ([[[[403.7, 599.6], [0, 0]]]], [[[1, -1]]], np.zeros((1, 0, 4))),
}


@pytest.fixture(scope="module")
def sessions():
    enc = ort.InferenceSession(cm.build_encoder().SerializeToString(), providers=["CPUExecutionProvider"])
    dec = ort.InferenceSession(cm.build_decoder().SerializeToString(), providers=["CPUExecutionProvider"])
    return enc, dec


@pytest.fixture(scope="module")
def content_predictor(tmp_path_factory):
    folder = tmp_path_factory.mktemp("content")
    cm.save_models(folder)
    return Sam2Predictor.from_files(folder / "encoder.onnx", folder / "decoder.onnx", threads=1)


def test_the_models_have_the_real_io_contract(sessions):
    enc, dec = sessions
    check_contract(enc, ENCODER_INPUTS, ENCODER_OUTPUTS, label="content encoder")
    check_contract(dec, DECODER_INPUTS, DECODER_OUTPUTS, label="content decoder")


@pytest.mark.parametrize("layout", LAYOUTS)
def test_the_graphs_compute_the_documented_rule(sessions, layout):
    enc, dec = sessions
    pixels = np.random.default_rng(1).normal(size=(1, 3, 1024, 1024)).astype(np.float32)
    embeddings = enc.run(None, {"pixel_values": pixels})
    for got, expected in zip(embeddings, cm.reference_encoder(pixels)):
        np.testing.assert_allclose(got, expected, atol=1e-5)
    points, labels, boxes = LAYOUTS[layout]
    feeds = {"input_points": np.asarray(points, np.float32), "input_labels": np.asarray(labels, np.int64),
             "input_boxes": np.asarray(boxes, np.float32),
             **dict(zip(("image_embeddings.0", "image_embeddings.1", "image_embeddings.2"), embeddings))}
    for got, expected in zip(dec.run(None, feeds), cm.reference_decoder(feeds["input_points"], feeds["input_labels"],
                                                                        feeds["input_boxes"], embeddings[0])):
        np.testing.assert_allclose(got, expected, atol=1e-4)


def test_a_click_selects_the_region_of_its_colour_to_within_a_cell(content_predictor):
    """A 300 x 200 px dark square on a light 1200 x 900 image: the click's mask is the square, edges within one
    low-res cell (1200 / 256 = 4.7 px); a click on the background selects the background, not the square."""
    rgb = np.full((900, 1200, 3), 200, np.uint8)
    rgb[300:500, 400:700] = (60, 60, 120)
    embedding = content_predictor.encode(rgb)
    square = content_predictor.decode(embedding, Prompts((Point(550, 400),))).best_mask
    truth = np.zeros((900, 1200), bool)
    truth[300:500, 400:700] = True
    assert (square & ~truth).sum() + (truth & ~square).sum() <= 2 * 5 * (300 + 200)  # a 5 px band at most
    assert square[310:490, 410:690].all() and not square[:290].any()
    background = content_predictor.decode(embedding, Prompts((Point(100, 100),))).best_mask
    assert background[:290].all() and not background[310:490, 410:690].any()
    boxed = content_predictor.decode(embedding, Prompts((Point(550, 400),), Box(0, 0, 550, 900))).best_mask
    assert boxed[310:490, 410:540].all() and not boxed[:, 560:].any()


def test_the_benchmarks_boundary_error_is_zero_for_the_truth_and_the_shift_for_a_shifted_mask():
    from bench.bench_refine import boundary_error

    truth = np.zeros((200, 200), bool)
    truth[50:150, 60:140] = True
    assert boundary_error(truth, truth) == {"mean": 0.0, "p95": 0.0, "iou": 1.0}
    shifted = np.roll(truth, 3, axis=1)
    error = boundary_error(shifted, truth)
    assert 1.0 < error["mean"] <= 3.0 and error["p95"] == 3.0  # the left and right edges are 3 px off
    # Both ways: a mask that misses a whole part of the shape is off by that part's distance.
    two_parts = truth.copy()
    two_parts[160:190, 60:140] = True
    assert boundary_error(truth, two_parts)["p95"] >= 10
    empty = boundary_error(np.zeros_like(truth), truth)
    assert np.isnan(empty["mean"]) and empty["iou"] == 0.0
