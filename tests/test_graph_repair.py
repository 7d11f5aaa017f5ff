"""The onnxruntime Concat quirk and its repair, on a minimal prompt-token graph.

The graph concatenates point tokens [B,P,N,C] with box tokens [B,M,2,C] on axis 2,
as transformers' prompt encoder does. With no box (M = 0) onnxruntime still counts
the empty input's 2 rows and leaves them unwritten.
"""

from __future__ import annotations

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper

from sam_onnx.errors import ModelLoadError
from sam_onnx.graph_repair import repair_prompt_concat, verify_repair

C = 4
W_POINT = np.arange(2 * C, dtype=np.float32).reshape(2, C) / 10
W_BOX = -np.arange(2 * C, dtype=np.float32).reshape(2, C) / 10


def _token_graph(opset: int = 17) -> onnx.ModelProto:
    f32, i64 = TensorProto.FLOAT, TensorProto.INT64
    inputs = [
        helper.make_tensor_value_info("input_points", f32, ["B", "P", "N", 2]),
        helper.make_tensor_value_info("input_labels", i64, ["B", "P", "N"]),
        helper.make_tensor_value_info("input_boxes", f32, ["B", "M", 4]),
    ]
    nodes = [
        helper.make_node("Cast", ["input_labels"], ["labels_f"], to=f32),
        helper.make_node("Unsqueeze", ["labels_f", "axis_last"], ["labels_u"]),
        helper.make_node("MatMul", ["input_points", "w_point"], ["pt_raw"]),
        helper.make_node("Add", ["pt_raw", "labels_u"], ["point_tokens"]),
        helper.make_node("Reshape", ["input_boxes", "box_shape"], ["corners"]),
        helper.make_node("MatMul", ["corners", "w_box"], ["box_tokens"]),
        helper.make_node("Concat", ["point_tokens", "box_tokens"], ["tokens"], axis=2, name="prompt_concat"),
    ]
    inits = [numpy_helper.from_array(W_POINT, "w_point"), numpy_helper.from_array(W_BOX, "w_box"),
             numpy_helper.from_array(np.array([0, 0, 2, 2], np.int64), "box_shape"),
             numpy_helper.from_array(np.array([-1], np.int64), "axis_last")]
    outputs = [helper.make_tensor_value_info("tokens", f32, ["B", "P", "T", C])]
    graph = helper.make_graph(nodes, "tokens", inputs, outputs, inits)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])


def _session(model):
    return ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])


def _points_only(n=3):
    pts = np.arange(n * 2, dtype=np.float32).reshape(1, 1, n, 2)
    return {"input_points": pts, "input_labels": np.ones((1, 1, n), np.int64),
            "input_boxes": np.zeros((1, 0, 4), np.float32)}


def _expected_point_tokens(feeds):
    return feeds["input_points"] @ W_POINT + feeds["input_labels"][..., None]


def test_unrepaired_graph_shows_the_quirk():
    (tokens,) = _session(_token_graph()).run(["tokens"], _points_only())
    assert tokens.shape == (1, 1, 5, C)  # 3 point tokens + 2 rows that were never written


def test_repair_drops_the_phantom_rows_and_keeps_values():
    model = _token_graph()
    report = repair_prompt_concat(model)
    assert [r.node_name for r in report.repaired] == ["prompt_concat"]
    onnx.checker.check_model(model)
    feeds = _points_only()
    session = _session(model)
    (tokens,) = session.run(["tokens"], feeds)
    np.testing.assert_allclose(tokens, _expected_point_tokens(feeds), rtol=1e-6)
    verify_repair(session, report, feeds)  # the witnesses agree: no exception


def test_repair_without_witnesses_adds_no_outputs_and_repairs_the_same():
    """The page's copy of the decoder (sam_onnx.web) is repaired without the server's witness outputs."""
    model = _token_graph()
    report = repair_prompt_concat(model, witnesses=False)
    assert [r.node_name for r in report.repaired] == ["prompt_concat"] and report.witness_outputs == ()
    onnx.checker.check_model(model)
    assert [o.name for o in model.graph.output] == ["tokens"]
    feeds = _points_only()
    (tokens,) = _session(model).run(None, feeds)
    np.testing.assert_allclose(tokens, _expected_point_tokens(feeds), rtol=1e-6)


@pytest.mark.parametrize("layout", ["box_only", "points_and_box"])
def test_repair_leaves_layouts_with_boxes_unchanged(layout):
    boxes = np.array([[[1, 2, 30, 40], [5, 6, 7, 8]]], np.float32)
    if layout == "box_only":
        feeds = {"input_points": np.zeros((1, 1, 0, 2), np.float32), "input_labels": np.zeros((1, 2, 0), np.int64),
                 "input_boxes": boxes}
    else:
        feeds = {"input_points": np.ones((1, 2, 1, 2), np.float32), "input_labels": np.ones((1, 2, 1), np.int64),
                 "input_boxes": boxes}
    before = _session(_token_graph()).run(["tokens"], feeds)[0]
    model = _token_graph()
    repair_prompt_concat(model)
    after = _session(model).run(["tokens"], feeds)[0]
    np.testing.assert_array_equal(before, after)


def test_graph_without_the_pattern_is_left_alone():
    model = _token_graph()
    concat = next(n for n in model.graph.node if n.op_type == "Concat")
    concat.CopyFrom(helper.make_node("Add", ["point_tokens", "point_tokens"], ["tokens"]))
    before = model.SerializeToString()
    assert not repair_prompt_concat(model).changed
    assert model.SerializeToString() == before


def test_verify_detects_a_concat_that_still_counts_empty_inputs():
    model = _token_graph()
    report = repair_prompt_concat(model)
    session = _session(_token_graph())  # an unrepaired session posing as repaired

    class Witness:
        def run(self, names, feeds):
            # Input shapes as the repaired graph reports them, output shape as the quirky one does.
            return [np.array([1, 1, 3, C]), np.array([1, 0, 0, C]), np.array(session.run(["tokens"], feeds)[0].shape)]

    with pytest.raises(ModelLoadError, match="uninitialised memory"):
        verify_repair(Witness(), report, _points_only())


def test_too_old_opset_is_reported():
    with pytest.raises(ModelLoadError, match="opset"):
        repair_prompt_concat(_token_graph(opset=11))
