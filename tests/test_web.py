"""The files the page's decoder gets (sam_onnx.web): its copy of the decoder, and embeddings as bytes.

The page's copy must compute what the server computes: on the reduced real-architecture fixture (which has the
onnxruntime Concat quirk), the copy fed float16 embeddings gives the server's outputs for the same float16
values, for every prompt layout, and it is repeatable where the unrepaired file is not.
"""

from __future__ import annotations

import os

import numpy as np
import onnx
import onnxruntime as ort
import pytest

from sam_onnx import Box, Point, Prompts, Sam2Predictor, web
from sam_onnx.graph_repair import load_decoder_model
from sam_onnx.prompts import encode_prompts
from sam_onnx.session import DECODER_OUTPUT_NAMES, EMBEDDING_CHW, EMBEDDING_NAMES
from tests.test_reference_fixture import FIXTURE

IMAGE_HW = (150, 240)
LAYOUTS = {
    "points only": Prompts((Point(60, 40), Point(180, 100, 0))),
    "one point": Prompts((Point(120, 75),)),
    "box only": Prompts(box=Box(20, 30, 200, 140)),
    "box + points": Prompts((Point(100, 80), Point(30, 40, 0)), Box(10, 10, 220, 140)),
}
SAME_AS_SERVER = 1e-5
"""Largest |difference| allowed between the page's copy and the server's decoder on the same float16 values:
the copy differs only by a Cast in front of the inputs, so onnxruntime may order float32 sums differently
at most (measured 0: bit-identical)."""
KB = 1024


def _features(seed: int = 0) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [rng.standard_normal((1, *chw), dtype=np.float32) for chw in EMBEDDING_CHW]


@pytest.fixture(scope="module")
def copy_session():
    model = web.web_decoder_model(load_decoder_model(FIXTURE / "decoder.onnx"))
    return ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])


@pytest.fixture(scope="module")
def server():
    return Sam2Predictor.from_files(FIXTURE / "encoder.onnx", FIXTURE / "decoder.onnx", threads=1)


def _run(session, prompts: Prompts, features) -> list[np.ndarray]:
    from sam_onnx.geometry import Geometry

    (batch,) = encode_prompts([prompts], Geometry(IMAGE_HW))
    return session.run(list(DECODER_OUTPUT_NAMES), {**batch.feeds, **dict(zip(EMBEDDING_NAMES, features))})


@pytest.mark.parametrize("layout", list(LAYOUTS))
def test_the_copy_computes_what_the_server_computes_on_float16_embeddings(copy_session, server, layout):
    from sam_onnx.geometry import Geometry
    from sam_onnx.types import ImageEmbedding

    half = [f.astype(np.float16) for f in _features()]
    expected = server.decode(ImageEmbedding([h.astype(np.float32) for h in half], Geometry(IMAGE_HW)),
                             LAYOUTS[layout])
    iou, logits, obj = _run(copy_session, LAYOUTS[layout], half)
    np.testing.assert_allclose(iou[0, 0], expected.scores, atol=SAME_AS_SERVER)
    np.testing.assert_allclose(logits[0, 0], expected.low_res_logits, atol=SAME_AS_SERVER)
    assert obj[0, 0, 0] == pytest.approx(expected.object_score_logit, abs=SAME_AS_SERVER)


def test_the_copy_is_repaired_repeatable_and_differs_from_the_raw_file(copy_session):
    """Points-only prompts trip the Concat quirk in the raw file: its answers change after another prompt
    dirtied onnxruntime's buffers; the copy (made from the repaired graph) gives the same answer every time."""
    half = [f.astype(np.float16) for f in _features(1)]
    points, box = LAYOUTS["points only"], LAYOUTS["box only"]
    first = _run(copy_session, points, half)[1]
    _run(copy_session, box, half)
    assert np.array_equal(first, _run(copy_session, points, half)[1])
    raw = ort.InferenceSession(str(FIXTURE / "decoder.onnx"), providers=["CPUExecutionProvider"])
    widened = [h.astype(np.float32) for h in half]
    assert np.abs(_run(raw, points, widened)[1] - first).max() > 1e-2


def test_the_copy_has_the_decoder_outputs_and_float16_embedding_inputs_only():
    source = load_decoder_model(FIXTURE / "decoder.onnx")
    before = source.SerializeToString()
    model = web.web_decoder_model(source)
    assert source.SerializeToString() == before  # pure: the argument is untouched
    onnx.checker.check_model(model)
    assert [o.name for o in model.graph.output] == list(DECODER_OUTPUT_NAMES)
    types = {i.name: i.type.tensor_type.elem_type for i in model.graph.input}
    assert all(types[name] == onnx.TensorProto.FLOAT16 for name in EMBEDDING_NAMES)
    assert types["input_points"] == onnx.TensorProto.FLOAT
    assert not any(t.data_location == onnx.TensorProto.EXTERNAL for t in model.graph.initializer)
    # every weight is the source's, unchanged (float32, same bytes)
    weights = {t.name: t.raw_data for t in source.graph.initializer}
    assert all(weights[t.name] == t.raw_data for t in model.graph.initializer if t.name in weights)


def test_write_web_decoder_writes_once_per_source_file(tmp_path):
    first = web.write_web_decoder(FIXTURE / "decoder.onnx", tmp_path)
    stamp = first.path.stat().st_mtime_ns
    again = web.write_web_decoder(FIXTURE / "decoder.onnx", tmp_path)
    assert again == first and first.path.stat().st_mtime_ns == stamp
    assert not list(first.path.parent.glob(".decoder-*"))  # no temporary file left behind
    assert first.nbytes == first.path.stat().st_size
    other = tmp_path / "other"
    other.mkdir()
    model = load_decoder_model(FIXTURE / "decoder.onnx")
    model.doc_string = "a different decoder file"
    onnx.save(model, other / "decoder.onnx")
    changed = web.write_web_decoder(other / "decoder.onnx", tmp_path)
    assert changed.path.parent != first.path.parent and changed.sha256 != first.sha256


def test_a_copy_from_an_external_data_decoder_is_one_file(tmp_path):
    model = load_decoder_model(FIXTURE / "decoder.onnx")
    onnx.save(model, tmp_path / "decoder.onnx", save_as_external_data=True, location="decoder.onnx_data",
              size_threshold=1 * KB)
    assert os.path.getsize(tmp_path / "decoder.onnx") < 1024 * KB
    written = web.write_web_decoder(tmp_path / "decoder.onnx", tmp_path / "cache")
    loaded = onnx.load(str(written.path), load_external_data=False)
    assert not any(t.data_location == onnx.TensorProto.EXTERNAL for t in loaded.graph.initializer)


# ---------------------------------------------------------------------------- embedding payload
def test_payload_round_trip_is_float16_of_the_embeddings():
    features = _features(2)
    data = web.embedding_payload(features, "abc123", (3000, 4000))
    assert web.PAYLOAD_DATA_BYTES == 8_388_608
    assert web.PAYLOAD_DATA_BYTES < len(data) <= web.PAYLOAD_DATA_BYTES + 1 * KB  # "<= 8.5 MB" with room
    parsed = web.read_embedding_payload(data)
    assert parsed.image_key == "abc123" and parsed.original_hw == (3000, 4000)
    for got, original in zip(parsed.features, features):
        assert got.dtype == np.float16 and got.shape == original.shape
        assert np.array_equal(got, original.astype(np.float16))
    header_len = int.from_bytes(data[12:16], "little")
    assert (16 + header_len) % 8 == 0  # the data starts aligned for a Uint16Array view


def test_payload_of_embeddings_from_float16_is_exact():
    """Embeddings that came from a Ray Serve replica as float16 (widened to float32) go back without loss."""
    half = [f.astype(np.float16) for f in _features(3)]
    parsed = web.read_embedding_payload(web.embedding_payload([h.astype(np.float32) for h in half], "k", (2, 2)))
    assert all(np.array_equal(a, b) for a, b in zip(parsed.features, half))


def test_payload_refuses_what_float16_cannot_hold_and_wrong_shapes():
    features = _features(4)
    features[1][0, 0, 0, 0] = 1e6  # beyond float16's 65504: it would be infinite in the page
    with pytest.raises(web.PayloadError, match="image_embeddings.1"):
        web.embedding_payload(features, "k", (10, 10))
    with pytest.raises(web.PayloadError, match="shapes"):
        web.embedding_payload(_features()[:2], "k", (10, 10))


@pytest.mark.parametrize("damage", ["truncated", "magic", "version", "header"])
def test_reading_a_damaged_payload_fails_clearly(damage):
    data = bytearray(web.embedding_payload(_features(), "k", (10, 10)))
    if damage == "truncated":
        data = data[:-2]
    elif damage == "magic":
        data[0:1] = b"X"
    elif damage == "version":
        data[8] = 9
    else:
        data[16] = ord("{") + 1
    with pytest.raises(web.PayloadError):
        web.read_embedding_payload(bytes(data))
