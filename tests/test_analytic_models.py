"""The analytic stand-in models: I/O contract, agreement with the numpy reference, the
original-frame expectation helpers, saving (also with external data) and the CLI."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnxruntime.capi import onnxruntime_pybind11_state as _ort_state

from tests import analytic_models as am

REPO_ROOT = Path(__file__).resolve().parents[1]
TOLERANCE = 1e-4
PROVIDERS = ["CPUExecutionProvider"]
ORT_ERRORS = (_ort_state.Fail, _ort_state.RuntimeException, _ort_state.InvalidArgument)


def _session(model: onnx.ModelProto | Path) -> ort.InferenceSession:
    source = str(model) if isinstance(model, Path) else model.SerializeToString()
    return ort.InferenceSession(source, providers=PROVIDERS)


@pytest.fixture(scope="module")
def encoder() -> ort.InferenceSession:
    return _session(am.build_encoder())


@pytest.fixture(scope="module")
def decoder() -> ort.InferenceSession:
    return _session(am.build_decoder())


def _image_embeddings(batch: int, seed: int = 0) -> list[np.ndarray]:
    """Embeddings of a random image, via the numpy reference encoder (cheap, exact)."""
    pixels = np.random.default_rng(seed).normal(size=(batch, 3, 1024, 1024)).astype(np.float32)
    return list(am.reference_encoder(pixels))


@pytest.fixture(scope="module")
def embeddings() -> list[np.ndarray]:
    return _image_embeddings(1)


def _feed(points, labels, boxes, embeddings) -> dict[str, np.ndarray]:
    feed = {
        "input_points": np.asarray(points, np.float32),
        "input_labels": np.asarray(labels, np.int64),
        "input_boxes": np.asarray(boxes, np.float32),
    }
    feed.update(zip(am.EMBEDDING_NAMES, embeddings, strict=True))
    return feed


def _run(decoder, points, labels, boxes, embeddings) -> list[np.ndarray]:
    return decoder.run(list(am.DECODER_OUTPUTS), _feed(points, labels, boxes, embeddings))


def _assert_matches_reference(decoder, points, labels, boxes, embeddings) -> list[np.ndarray]:
    outputs = _run(decoder, points, labels, boxes, embeddings)
    expected = am.reference_decoder(
        np.asarray(points, np.float32),
        np.asarray(labels, np.int64),
        np.asarray(boxes, np.float32),
        embeddings[2],
        embeddings[0],
    )
    for name, got, want in zip(am.DECODER_OUTPUTS, outputs, expected, strict=True):
        assert got.shape == want.shape, name
        assert got.dtype == np.float32, name
        assert np.all(np.isfinite(got)), name
        assert np.max(np.abs(got - want)) <= TOLERANCE, name
    return outputs


NO_BOXES = np.zeros((1, 0, 4))
NO_POINTS = np.zeros((1, 1, 0, 2))
PAD = [0.0, 0.0]  # the (0, 0) / -1 "not a point" pad the wrapper appends

LAYOUTS = {
    "points_P1_with_pad": ([[[[500, 300], [520, 330], PAD]]], [[[1, 0, -1]]], NO_BOXES),
    "points_P2_with_pad": (
        [[[[100, 900], [130, 880], PAD], [[700.25, 600.75], [650, 640], PAD]]],
        [[[1, 1, -1], [1, 0, -1]]],
        NO_BOXES,
    ),
    "box_M1_labels_1x0": (NO_POINTS, np.zeros((1, 1, 0)), [[[100, 200, 600, 500]]]),
    "box_M3_labels_Mx0": (
        NO_POINTS,
        np.zeros((1, 3, 0)),
        [[[100, 200, 600, 500], [0, 0, 1023, 1023], [900.5, 10, 1000, 200.25]]],
    ),
    "box_M3_labels_1x0": (
        NO_POINTS,
        np.zeros((1, 1, 0)),
        [[[100, 200, 600, 500], [0, 0, 1023, 1023], [900.5, 10, 1000, 200.25]]],
    ),
    "points_and_box_P1_M1": ([[[[300, 350], [420, 300]]]], [[[1, 0]]], [[[100, 200, 600, 500]]]),
    "points_and_box_P2_M2": (
        [[[[300, 350], [420, 300]], [[800, 800], PAD]]],
        [[[1, 0], [0, -1]]],
        [[[100, 200, 600, 500], [700, 700, 1000, 950]]],
    ),
    "negative_only": ([[[[512, 512], [100, 100]]]], [[[0, 0]]], NO_BOXES),
    "far_outside_frame": ([[[[-5000, 2e6], [1023, 0]]]], [[[1, 0]]], NO_BOXES),
}


@pytest.mark.parametrize("layout", sorted(LAYOUTS))
def test_decoder_matches_numpy_reference(decoder, embeddings, layout):
    points, labels, boxes = LAYOUTS[layout]
    outputs = _assert_matches_reference(decoder, points, labels, boxes, embeddings)
    expected_prompts = max(np.asarray(points).shape[1], np.asarray(boxes).shape[1])
    assert [out.shape[1] for out in outputs] == [expected_prompts] * 3


def test_batch_of_two_images_matches_reference_per_image(decoder):
    embeddings = _image_embeddings(2, seed=1)
    points = [[[[500, 300], PAD]], [[[20, 1000], [40, 990]]]]
    labels = [[[1, -1]], [[1, 0]]]
    outputs = _assert_matches_reference(decoder, points, labels, np.zeros((2, 0, 4)), embeddings)
    single = _run(decoder, points[1:], labels[1:], np.zeros((1, 0, 4)), [e[1:] for e in embeddings])
    for both, alone in zip(outputs, single, strict=True):
        np.testing.assert_array_equal(both[1:], alone)


def test_reference_decoder_matches_the_documented_rule():
    """Independent spot checks of the rule itself (so reference and graph cannot share a bug)."""
    emb2 = np.zeros((1, 256, 64, 64), np.float32)
    # One positive click at model pixel (500, 300) -> continuous (500.5, 300.5), plus the pad point.
    iou, masks, obj = am.reference_decoder(
        np.array([[[[500, 300], PAD]]], np.float32),
        np.array([[[1, -1]]]),
        np.zeros((1, 0, 4), np.float32),
        emb2,
    )
    cell = (300 // am.CELL_SIZE, 500 // am.CELL_SIZE)  # centre (502, 302), 2.12 units away
    assert masks[0, 0, 1][cell] == pytest.approx(am.POS_RADIUS - np.hypot(1.5, 1.5), abs=1e-4)
    assert masks[0, 0, 0][cell] == pytest.approx(masks[0, 0, 1][cell] - 16, abs=1e-4)
    area = np.count_nonzero(masks[0, 0, 1] > 0) * am.CELL_SIZE**2
    assert area == pytest.approx(np.pi * am.POS_RADIUS**2, rel=0.05)
    assert int(np.argmax(iou[0, 0])) == 1
    assert obj[0, 0, 0] == pytest.approx(am.OBJECT_SCORE_PER_POSITIVE)
    # Without the pad point (or with two), every logit is PAD_PENALTY lower.
    for points, labels in (([[500, 300]], [1]), ([[500, 300], PAD, PAD], [1, -1, -1])):
        _, other, _ = am.reference_decoder(
            np.array([[points]], np.float32), np.array([[labels]]), np.zeros((1, 0, 4), np.float32), emb2
        )
        np.testing.assert_allclose(other, masks - am.PAD_PENALTY, atol=1e-4)
    # One box (model pixels 100..199 x 40..79): candidate 1 = the cells whose centre is inside.
    iou, masks, _ = am.reference_decoder(
        np.zeros((1, 1, 0, 2), np.float32),
        np.zeros((1, 1, 0), np.int64),
        np.array([[[100, 40, 199, 79]]], np.float32),
        emb2,
    )
    inside = np.zeros((256, 256), bool)
    inside[10:20, 25:50] = (
        True  # centres 42..78 (rows) and 102..198 (cols) lie in [40.5, 79.5] x [100.5, 199.5]
    )
    np.testing.assert_array_equal(masks[0, 0, 1] > 0, inside)
    assert int(np.argmax(iou[0, 0])) == 0
    # Key cells: a pure-blue cell never belongs to a mask, whatever the prompt.
    emb0 = np.zeros((1, 32, 256, 256), np.float32)
    emb0[0, list(am.KEY_CHANNELS), 12, 30] = am.key_normalised()
    _, keyed, _ = am.reference_decoder(
        np.zeros((1, 1, 0, 2), np.float32), np.zeros((1, 1, 0), np.int64),
        np.array([[[100, 40, 199, 79]]], np.float32), emb2, emb0,
    )
    assert not np.any(keyed[0, 0, :, 12, 30] > 0)
    inside[12, 30] = False
    np.testing.assert_array_equal(keyed[0, 0, 1] > 0, inside)


def test_candidates_are_nested(decoder, embeddings):
    points, labels, boxes = LAYOUTS["points_and_box_P2_M2"]
    _, masks, _ = _run(decoder, points, labels, boxes, embeddings)
    small, medium, large = (masks[0, :, k] > 0 for k in range(3))
    assert np.all(small <= medium) and np.all(medium <= large)
    assert np.count_nonzero(small) < np.count_nonzero(medium) < np.count_nonzero(large)


def test_iou_scores_pick_candidate_1_for_clicks_and_0_without_positive(decoder, embeddings):
    for layout, best in [("points_P1_with_pad", 1), ("box_M3_labels_Mx0", 0), ("negative_only", 0)]:
        iou, _, _ = _run(decoder, *LAYOUTS[layout], embeddings)
        assert np.all(np.argmax(iou, axis=-1) == best), layout


def test_negative_only_prompt_selects_nothing(decoder, embeddings):
    _, masks, _ = _run(decoder, *LAYOUTS["negative_only"], embeddings)
    assert not np.any(masks > 0)


def test_processor_pad_label_minus_10_changes_nothing(decoder, embeddings):
    points = [[[[500, 300], [520, 330], PAD]]]
    labels = [[[1, 0, -1]]]
    plain = _run(decoder, points, labels, NO_BOXES, embeddings)
    padded_points = [[[[500, 300], [700, 100], [520, 330], [510, 305], PAD]]]
    padded_labels = [[[1, -10, 0, -10, -1]]]
    padded = _run(decoder, padded_points, padded_labels, NO_BOXES, embeddings)
    for a, b in zip(plain, padded, strict=True):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("pads,boxes", [(0, NO_BOXES), (2, NO_BOXES), (1, [[[100, 200, 600, 500]]])])
def test_a_pad_count_other_than_the_reference_layout_shrinks_every_mask(decoder, embeddings, pads, boxes):
    """The reference layout is one (0, 0) / -1 token without a box and none with one; each token more or fewer
    costs PAD_PENALTY model units everywhere, so a wrapper that drops (or adds) the pad point is caught."""
    right_points = [[[[500, 300], [520, 330]] + ([PAD] if not np.size(boxes) else [])]]
    right_labels = [[[1, 0] + ([-1] if not np.size(boxes) else [])]]
    _, right, _ = _run(decoder, right_points, right_labels, boxes, embeddings)
    _, wrong, _ = _assert_matches_reference(
        decoder, [[[[500, 300], [520, 330]] + [PAD] * pads]], [[[1, 0] + [-1] * pads]], boxes, embeddings
    )
    np.testing.assert_allclose(wrong, right - am.PAD_PENALTY, atol=1e-4)
    assert np.count_nonzero(wrong > 0) < np.count_nonzero(right > 0)


def test_object_score_depends_on_image_and_prompt(decoder):
    dark, bright = _image_embeddings(1, seed=2), _image_embeddings(1, seed=2)
    bright = [e + 1.0 for e in bright]
    one_click = ([[[[500, 300]]]], [[[1]]], NO_BOXES)
    two_clicks = ([[[[500, 300], [600, 300]]]], [[[1, 1]]], NO_BOXES)
    score = lambda emb, prompt: float(_run(decoder, *prompt, emb)[2][0, 0, 0])  # noqa: E731
    assert score(bright, one_click) == pytest.approx(score(dark, one_click) + 1.0, abs=1e-5)
    assert score(dark, two_clicks) == pytest.approx(
        score(dark, one_click) + am.OBJECT_SCORE_PER_POSITIVE, abs=1e-6
    )


def test_decoder_is_deterministic_across_calls_and_sessions(decoder, embeddings):
    first = _run(decoder, *LAYOUTS["points_P1_with_pad"], embeddings)
    _run(decoder, *LAYOUTS["box_M3_labels_Mx0"], embeddings)
    again = _run(decoder, *LAYOUTS["points_P1_with_pad"], embeddings)
    fresh = _run(_session(am.build_decoder()), *LAYOUTS["points_P1_with_pad"], embeddings)
    for a, b, c in zip(first, again, fresh, strict=True):
        np.testing.assert_array_equal(a, b)
        np.testing.assert_array_equal(a, c)


def test_point_and_box_batches_that_do_not_pair_are_rejected(decoder, embeddings):
    points = [[[[1, 1]], [[2, 2]]]]  # P = 2
    boxes = [[[0, 0, 9, 9]] * 3]  # M = 3
    with pytest.raises(ORT_ERRORS, match="broadcast"):
        _run(decoder, points, [[[1], [1]]], boxes, embeddings)
    with pytest.raises(ValueError, match="broadcast"):
        am.reference_decoder(
            np.asarray(points, np.float32),
            np.ones((1, 2, 1), np.int64),
            np.asarray(boxes, np.float32),
            embeddings[2],
        )


def test_decoder_call_is_fast(decoder, embeddings):
    rng = np.random.default_rng(3)
    points = rng.uniform(0, 1023, size=(1, 4, 8, 2))
    labels = rng.integers(-1, 2, size=(1, 4, 8))
    feed = _feed(points, labels, NO_BOXES, embeddings)
    decoder.run(None, feed)
    timings = []
    for _ in range(10):
        start = time.process_time()  # CPU time (all threads): the work done, not how busy the machine is
        decoder.run(None, feed)
        timings.append(time.process_time() - start)
    # Typically ~3 ms of CPU on 2 cores; the bound (30x) only catches a blow-up (e.g. an extra 256x256 axis).
    assert np.median(timings) < 0.1


def test_encoder_matches_numpy_reference(encoder):
    pixels = np.random.default_rng(4).normal(size=(2, 3, 1024, 1024)).astype(np.float32)
    pixels[1] += 3.0  # the second image differs, so batching mistakes show
    outputs = encoder.run(list(am.EMBEDDING_NAMES), {am.ENCODER_INPUT: pixels})
    for got, want, chw in zip(outputs, am.reference_encoder(pixels), am.EMBEDDING_CHW, strict=True):
        assert got.shape == want.shape == (2, *chw)
        assert got.dtype == np.float32
        assert np.max(np.abs(got - want)) <= TOLERANCE


def test_models_pass_the_onnx_checker_with_symbolic_dims():
    encoder, decoder = am.build_encoder(), am.build_decoder()
    for model in (encoder, decoder):
        onnx.checker.check_model(model, full_check=True)

    def dims(value_info):
        return [d.dim_param or d.dim_value for d in value_info.type.tensor_type.shape.dim]

    assert {v.name: dims(v) for v in encoder.graph.input} == {
        "pixel_values": ["batch_size", 3, 1024, 1024]
    }
    decoder_inputs = {v.name: dims(v) for v in decoder.graph.input}
    assert decoder_inputs == {
        "input_points": ["batch_size", "point_batch_size", "num_points", 2],
        "input_labels": ["batch_size", "point_batch_size", "num_points"],
        "input_boxes": ["batch_size", "num_boxes", 4],
        "image_embeddings.0": ["batch_size", 32, 256, 256],
        "image_embeddings.1": ["batch_size", 64, 128, 128],
        "image_embeddings.2": ["batch_size", 256, 64, 64],
    }
    assert [v.name for v in decoder.graph.input] == [*am.DECODER_PROMPT_INPUTS, *am.EMBEDDING_NAMES]


def test_sessions_expose_the_real_io_contract(encoder, decoder):
    def signature(args):
        return [(a.name, a.type, a.shape) for a in args]

    assert signature(encoder.get_inputs()) == [
        ("pixel_values", "tensor(float)", ["batch_size", 3, 1024, 1024])
    ]
    assert signature(encoder.get_outputs()) == [
        ("image_embeddings.0", "tensor(float)", ["batch_size", 32, 256, 256]),
        ("image_embeddings.1", "tensor(float)", ["batch_size", 64, 128, 128]),
        ("image_embeddings.2", "tensor(float)", ["batch_size", 256, 64, 64]),
    ]
    assert signature(decoder.get_inputs()) == [
        ("input_points", "tensor(float)", ["batch_size", "point_batch_size", "num_points", 2]),
        ("input_labels", "tensor(int64)", ["batch_size", "point_batch_size", "num_points"]),
        ("input_boxes", "tensor(float)", ["batch_size", "num_boxes", 4]),
        ("image_embeddings.0", "tensor(float)", ["batch_size", 32, 256, 256]),
        ("image_embeddings.1", "tensor(float)", ["batch_size", 64, 128, 128]),
        ("image_embeddings.2", "tensor(float)", ["batch_size", 256, 64, 64]),
    ]
    assert signature(decoder.get_outputs()) == [
        ("iou_scores", "tensor(float)", ["batch_size", "num_masks", 3]),
        ("pred_masks", "tensor(float)", ["batch_size", "num_masks", 3, 256, 256]),
        ("object_score_logits", "tensor(float)", ["batch_size", "num_masks", 1]),
    ]


def test_encoder_output_feeds_decoder(encoder, decoder):
    pixels = np.zeros((1, 3, 1024, 1024), np.float32)
    pixels[:, :, :512] = 2.0  # top half bright: channel-0 mean of level 2 is 1.0
    embeddings = encoder.run(None, {am.ENCODER_INPUT: pixels})
    _, _, obj = _run(decoder, *LAYOUTS["points_P1_with_pad"], embeddings)
    assert obj[0, 0, 0] == pytest.approx(1.0 + am.OBJECT_SCORE_PER_POSITIVE, abs=1e-5)


def test_save_models_plain(tmp_path, embeddings):
    encoder_path, decoder_path = am.save_models(tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["decoder.onnx", "encoder.onnx"]
    _run(_session(decoder_path), *LAYOUTS["points_P1_with_pad"], embeddings)
    assert [i.name for i in _session(encoder_path).get_inputs()] == ["pixel_values"]


def test_save_models_with_external_data_writes_and_loads_sidecars(tmp_path, embeddings):
    encoder_path, decoder_path = am.save_models(
        tmp_path,
        external_data=True,
        encoder_name="vision_encoder.onnx",
        decoder_name="decoder.onnx",
    )
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "decoder.onnx",
        "decoder.onnx_data",
        "vision_encoder.onnx",
        "vision_encoder.onnx_data",
    ]
    for path in (encoder_path, decoder_path):
        sidecar = path.with_name(path.name + "_data")
        assert sidecar.stat().st_size > 0
        stored = onnx.load(str(path), load_external_data=False)
        external = [
            t for t in stored.graph.initializer if t.data_location == onnx.TensorProto.EXTERNAL
        ]
        assert external and all(
            entry.value == sidecar.name
            for t in external
            for entry in t.external_data
            if entry.key == "location"
        )
    # The sidecar is really needed: without it the decoder cannot be loaded.
    layout = LAYOUTS["points_and_box_P2_M2"]
    from_files = _run(_session(decoder_path), *layout, embeddings)
    for got, want in zip(
        from_files, _run(_session(am.build_decoder()), *layout, embeddings), strict=True
    ):
        np.testing.assert_array_equal(got, want)
    pixels = np.ones((1, 3, 1024, 1024), np.float32)
    assert _session(encoder_path).run(None, {am.ENCODER_INPUT: pixels})[2] == pytest.approx(1.0)
    (tmp_path / "decoder.onnx_data").unlink()
    with pytest.raises(ORT_ERRORS):
        _session(decoder_path)


def test_saving_twice_with_external_data_does_not_grow_the_sidecar(tmp_path):
    _, decoder_path = am.save_models(tmp_path, external_data=True)
    size = (tmp_path / "decoder.onnx_data").stat().st_size
    am.save_models(tmp_path, external_data=True)
    assert (tmp_path / "decoder.onnx_data").stat().st_size == size
    _session(decoder_path)


@pytest.mark.parametrize("kind", am.BROKEN_DECODER_KINDS)
def test_broken_decoders_load_but_break_the_contract(kind):
    model = am.build_broken_decoder(kind)
    onnx.checker.check_model(model, full_check=True)
    session = _session(model)
    inputs = {i.name: i.type for i in session.get_inputs()}
    outputs = [o.name for o in session.get_outputs()]
    if kind == "missing_input":
        assert "input_boxes" not in inputs and "input_points" in inputs
    elif kind == "renamed_output":
        assert "pred_masks" not in outputs and am.RENAMED_PRED_MASKS in outputs
    else:
        assert inputs["input_labels"] == "tensor(float)"


def test_unknown_broken_kind_is_rejected():
    with pytest.raises(ValueError, match="unknown"):
        am.build_broken_decoder("nonsense")


def test_module_runs_as_script(tmp_path):
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "tests.analytic_models",
            "--out",
            str(tmp_path / "models"),
            "--external-data",
        ],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    written = sorted(p.name for p in (tmp_path / "models").iterdir())
    assert written == ["decoder.onnx", "decoder.onnx_data", "encoder.onnx", "encoder.onnx_data"]
    assert str(tmp_path / "models" / "decoder.onnx") in result.stdout


# --- expectations in the original frame ---------------------------------------------------


def _to_model(points_xy, box, hw):
    height, width = hw
    scale = np.array([1024 / width, 1024 / height])
    return np.asarray(points_xy, np.float64) * scale, np.asarray(box, np.float64) * np.tile(
        scale, 2
    )


def _spec_feeds(points_xy, labels, box, hw, shift=0.0, pad=True):
    """(points, labels, boxes) decoder feeds for a prompt in original pixels, laid out as the spec says
    (``x * 1024 / W`` in float32, the (0, 0) / -1 pad point iff there is no box). ``shift`` and ``pad=False``
    make the two mistakes the exact expectation must notice."""
    model_points, model_box = _to_model(
        points_xy if points_xy else np.zeros((0, 2)), box or [0, 0, 0, 0], hw
    )
    model_points, model_box = model_points + shift, model_box + shift
    if points_xy is None:
        points, labels_in = np.zeros((1, 1, 0, 2)), np.zeros((1, 1, 0))
    elif box is None and pad:
        points = np.concatenate([model_points, [PAD]])[None, None]
        labels_in = np.asarray([*labels, -1])[None, None]
    else:
        points, labels_in = model_points[None, None], np.asarray(labels)[None, None]
    boxes = model_box[None, None] if box is not None else NO_BOXES
    return np.asarray(points, np.float32), labels_in, np.asarray(boxes, np.float32)


def _nearest_upsample(lowres: np.ndarray, hw) -> np.ndarray:
    height, width = hw
    rows = np.floor((np.arange(height) + 0.5) * lowres.shape[0] / height).astype(int)
    cols = np.floor((np.arange(width) + 0.5) * lowres.shape[1] / width).astype(int)
    return lowres[rows][:, cols]


def _bilinear_upsample(lowres: np.ndarray, hw) -> np.ndarray:
    """Half-pixel bilinear (align_corners=False), as the wrapper upsamples logits."""

    def axis(out_size, in_size):
        src = np.maximum((np.arange(out_size) + 0.5) * in_size / out_size - 0.5, 0)
        i0 = np.floor(src).astype(int)
        return i0, np.minimum(i0 + 1, in_size - 1), src - i0

    r0, r1, wr = axis(hw[0], lowres.shape[0])
    c0, c1, wc = axis(hw[1], lowres.shape[1])
    top = lowres[r0][:, c0] * (1 - wc) + lowres[r0][:, c1] * wc
    bottom = lowres[r1][:, c0] * (1 - wc) + lowres[r1][:, c1] * wc
    return top * (1 - wr[:, None]) + bottom * wr[:, None]


ORIGINAL_HW = (300, 500)  # non-square: the discs become ellipses in the original frame
ORIGINAL_PROMPTS = {
    "click": ([[250, 140]], [1], None),
    "clicks_and_negative": ([[100, 60], [130, 70], [115, 80]], [1, 1, 0], None),
    "box_with_click": ([[300, 200], [320, 180]], [1, 0], [200, 100, 420, 260]),
    "box_only": (None, None, [30.5, 200, 260, 290]),
}


@pytest.mark.parametrize("candidate", [0, 1, 2])
@pytest.mark.parametrize("prompt", sorted(ORIGINAL_PROMPTS))
def test_expected_mask_original_agrees_with_upsampled_logits_outside_band(
    decoder, embeddings, prompt, candidate
):
    points_xy, labels, box = ORIGINAL_PROMPTS[prompt]
    _, masks, _ = _run(decoder, *_spec_feeds(points_xy, labels, box, ORIGINAL_HW), embeddings)
    lowres = masks[0, 0, candidate]

    expected = am.expected_mask_original(points_xy, labels, box, ORIGINAL_HW, candidate=candidate)
    band = am.boundary_band(points_xy, labels, box, ORIGINAL_HW, candidate=candidate)
    assert expected.shape == band.shape == ORIGINAL_HW and expected.dtype == bool
    assert 0 < np.count_nonzero(expected) < expected.size * 0.5
    # The band is a ring around the boundary, not a licence to ignore the mask.
    assert np.count_nonzero(band) < 0.6 * np.count_nonzero(expected)
    assert np.any(expected & ~band) and np.any(~expected & ~band)
    for upsample in (_nearest_upsample, _bilinear_upsample):
        pipeline = upsample(lowres, ORIGINAL_HW) > 0
        disagree = pipeline != expected
        assert not np.any(disagree & ~band), upsample.__name__


def test_expected_logits_original_equal_decoder_logits_for_a_256px_image(decoder, embeddings):
    """For a 256x256 original every pixel centre is a low-res cell centre, so the idealised
    field must equal the decoder's logits exactly: this pins both half-pixel conventions
    (pixel centres and the graph's +0.5), which the band test is too coarse to see."""
    hw = (256, 256)
    points_xy, labels, box = [[100.25, 60], [130, 70], [115, 80]], [1, 1, 0], [50, 40, 200.5, 150]
    model_points, model_box = _to_model(points_xy, box, hw)
    _, masks, _ = _run(
        decoder, model_points[None, None], [[labels]], model_box[None, None], embeddings
    )
    for candidate in range(am.NUM_CANDIDATES):
        field = am.expected_logits_original(points_xy, labels, box, hw, candidate=candidate)
        np.testing.assert_allclose(masks[0, 0, candidate], field, rtol=0, atol=1e-3)


def test_expected_mask_original_is_the_mapped_ellipse():
    height, width = ORIGINAL_HW
    mask = am.expected_mask_original([[250, 140]], [1], None, ORIGINAL_HW)
    # POS_RADIUS = 64 model units: 64 * 500/1024 = 31.25 px across, 64 * 300/1024 = 18.75 px down.
    rows, cols = np.nonzero(mask)
    assert cols.max() - cols.min() + 1 == pytest.approx(2 * am.POS_RADIUS * width / 1024, abs=2)
    assert rows.max() - rows.min() + 1 == pytest.approx(2 * am.POS_RADIUS * height / 1024, abs=2)
    assert mask[140, 250] and not mask[140, 250 + 33] and not mask[140 + 20, 250]


def test_tolerance_px_is_one_lowres_cell():
    assert am.tolerance_px(ORIGINAL_HW) == pytest.approx((300 / 256, 500 / 256))
    assert am.tolerance_px((1024, 1024)) == (4.0, 4.0)


def test_boundary_band_width_matches_tolerance_px():
    band = am.boundary_band(None, None, [100, 50, 400, 250], ORIGINAL_HW)
    tol_rows, tol_cols = am.tolerance_px(ORIGINAL_HW)
    middle_row = band[150]  # crosses the left and right edges of the box
    middle_col = band[:, 250]  # crosses the top and bottom edges
    assert np.count_nonzero(middle_row) == pytest.approx(2 * 2 * tol_cols, abs=2)
    assert np.count_nonzero(middle_col) == pytest.approx(2 * 2 * tol_rows, abs=2)


PIPELINE_SIZES = [(300, 500), (500, 300), (24, 16), (1, 1), (257, 255), (1200, 1600)]


@pytest.mark.parametrize("hw", PIPELINE_SIZES)
@pytest.mark.parametrize("prompt", sorted(ORIGINAL_PROMPTS))
def test_pipeline_mask_is_the_upsampled_decoder_output(decoder, embeddings, prompt, hw):
    """The exact expectation: the decoder's own logits, upsampled half-pixel, agree with ``pipeline_mask``
    everywhere except where |logit| <= PIPELINE_EPS (float32 rounding), for every candidate."""
    height, width = hw
    points_xy, labels, box = ORIGINAL_PROMPTS[prompt]
    scale = np.array([width / 500, height / 300])
    points_xy = None if points_xy is None else np.minimum(np.asarray(points_xy) * scale, [width - 1, height - 1])
    box = None if box is None else (np.asarray(box) * np.tile(scale, 2)).tolist()
    listed = None if points_xy is None else points_xy.tolist()
    _, masks, _ = _run(decoder, *_spec_feeds(listed, labels, box, hw), embeddings)
    for candidate in range(am.NUM_CANDIDATES):
        np.testing.assert_allclose(
            masks[0, 0, candidate], am.expected_low_res(listed, labels, box, hw, candidate), atol=1e-4
        )
        mask, unsure = am.pipeline_mask(listed, labels, box, hw, candidate)
        upsampled = _bilinear_upsample(masks[0, 0, candidate], hw)
        np.testing.assert_allclose(am.upsample_half_pixel(masks[0, 0, candidate], hw), upsampled, atol=1e-9)
        wrong = ((upsampled > 0) != mask) & ~unsure
        assert not wrong.any(), f"candidate {candidate}: {int(wrong.sum())} pixels"
        assert np.count_nonzero(unsure) <= max(2, mask.size // 1000)


@pytest.mark.parametrize("mistake", ["half_unit_shift", "no_pad_point"])
def test_pipeline_mask_sees_sub_pixel_and_pad_mistakes(decoder, embeddings, mistake):
    """What the exact expectation is for: half a model unit of shift, or a missing pad point, changes pixels
    that the one-cell band of the idealised mask would hide."""
    hw = (300, 500)
    points_xy, labels, box = ORIGINAL_PROMPTS["clicks_and_negative"]
    feeds = _spec_feeds(points_xy, labels, box, hw, shift=0.5 if mistake == "half_unit_shift" else 0.0,
                        pad=mistake != "no_pad_point")
    _, masks, _ = _run(decoder, *feeds, embeddings)
    got = _bilinear_upsample(masks[0, 0, 1], hw) > 0
    mask, unsure = am.pipeline_mask(points_xy, labels, box, hw)
    wrong = (got != mask) & ~unsure
    assert wrong.any()
    if mistake == "half_unit_shift":
        # ... and the idealised mask with its one-cell band cannot see it.
        band = am.boundary_band(points_xy, labels, box, hw)
        assert not ((got != am.expected_mask_original(points_xy, labels, box, hw)) & ~band).any()


def _picture_with_patches(hw=(256, 384)):
    """A mid-grey picture with a pure-blue (key) and a pure-red rectangle, edges on 8-pixel steps."""
    rgb = np.full((*hw, 3), 128, np.uint8)
    rgb[64:160, 96:192] = am.KEY_RGB
    rgb[64:160, 224:320] = (255, 0, 0)
    return rgb


def test_key_cells_follow_the_blue_patch_not_the_red_one():
    rgb = _picture_with_patches()
    key = am.key_cells(rgb)
    # 256 x 384 -> 1024 x 1024: the blue patch covers model rows 256..640 and columns 256..512 (cells 64..160
    # by 64..128), the red one columns 597..853 (cells 149..213), less a cell of resize blur on each side.
    assert key[70:150, 70:120].all() and not key[:60].any() and not key[:, 130:].any()
    swapped = am.key_cells(np.ascontiguousarray(rgb[..., ::-1]))  # what a BGR mix-up would make of it
    assert not (swapped & key).any() and swapped[70:150, 155:205].all()


def test_encoder_and_decoder_cut_key_cells_out_of_every_mask(encoder, decoder):
    rgb = _picture_with_patches()
    hw = rgb.shape[:2]
    embeddings = encoder.run(None, {am.ENCODER_INPUT: am.reference_pixel_values(rgb).astype(np.float32)})
    key = am.key_cells(rgb)
    np.testing.assert_array_equal(am.key_distance(embeddings[0])[0] <= am.KEY_TOLERANCE, key)
    box = [40, 30, 360, 200]  # covers both patches
    _, masks, _ = _run(decoder, *_spec_feeds(None, None, box, hw), embeddings)
    mask, unsure = am.pipeline_mask(None, None, box, hw, key=key)
    got = _bilinear_upsample(masks[0, 0, 1], hw) > 0
    assert not ((got != mask) & ~unsure).any()
    assert not got[80:144, 112:176].any() and got[80:144, 240:304].all()  # blue cut out, red kept
