"""Repair of the onnxruntime Concat quirk in plainly traced SAM 2 decoders (docs/model-io.md, "The Concat quirk").

transformers' prompt encoder concatenates point tokens ``[B, P, N, C]`` and box
tokens ``[B, M, 3, C]`` on axis 2. For a points-only prompt the box input is
empty (``M = 0``). onnxruntime's Concat skips empty inputs when it checks and
copies them, yet still adds their axis-2 length (3) to the output: the sparse
prompt gets three tokens of uninitialised memory. Masks then drift between
runs (up to 20 % on the full-size graph) while looking plausible.

The repair, applied to the graph in memory at load time: in front of every
Concat that joins a tensor derived from the point inputs with a tensor derived
from ``input_boxes``, slice the box-side input along the concat axis to
``len * min(numel, 1)`` elements. A non-empty input is unchanged (the slice is
the whole tensor); an empty one now has length 0 on the concat axis and adds
nothing, which is the result PyTorch computes when no box is given. For each
repaired Concat the graph also gets extra outputs with the shapes of the
Concat's inputs and output, so :func:`verify_repair` can prove on the live
session that empty inputs really contribute nothing.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, external_data_helper, helper, numpy_helper

from .errors import ModelLoadError

logger = logging.getLogger(__name__)

POINT_INPUTS = frozenset({"input_points", "input_labels"})
BOX_INPUT = "input_boxes"
MIN_OPSET = 13  # Min on int64 (12), ReduceProd without axes (13), Slice with inputs (10)
_PREFIX = "sam_onnx_repair"


@dataclass(frozen=True)
class RepairedConcat:
    """One repaired Concat and the names of the extra shape outputs that witness it."""

    node_name: str
    axis: int
    input_shape_outputs: tuple[str, ...]
    output_shape_output: str


@dataclass(frozen=True)
class RepairReport:
    """What :func:`repair_prompt_concat` did to a decoder graph."""

    repaired: tuple[RepairedConcat, ...]

    @property
    def changed(self) -> bool:
        return bool(self.repaired)

    @property
    def witness_outputs(self) -> tuple[str, ...]:
        return tuple(n for r in self.repaired for n in (*r.input_shape_outputs, r.output_shape_output) if n)


def _graph_input_dependencies(graph: onnx.GraphProto) -> dict[str, frozenset[str]]:
    """For every tensor, the graph inputs it depends on (through data edges)."""
    deps: dict[str, frozenset[str]] = {i.name: frozenset({i.name}) for i in graph.input}
    for init in graph.initializer:
        deps.setdefault(init.name, frozenset())
    for node in graph.node:  # ONNX graphs are topologically sorted
        found = frozenset().union(*(deps.get(name, frozenset()) for name in node.input if name))
        for out in node.output:
            deps[out] = found
    return deps


def _opset(model: onnx.ModelProto) -> int:
    for imp in model.opset_import:
        if imp.domain in ("", "ai.onnx"):
            return imp.version
    return 0


def _concat_axis(node: onnx.NodeProto) -> int:
    for attr in node.attribute:
        if attr.name == "axis":
            return helper.get_attribute_value(attr)
    raise ModelLoadError(f"Concat node {node.name!r} has no axis attribute")


def _candidates(graph: onnx.GraphProto) -> Iterable[tuple[int, onnx.NodeProto, list[int]]]:
    """Concat nodes joining a points-derived input with box-derived inputs: (index, node, box-side input slots)."""
    deps = _graph_input_dependencies(graph)
    for index, node in enumerate(graph.node):
        if node.op_type != "Concat" or node.domain not in ("", "ai.onnx"):
            continue
        sides = [deps.get(name, frozenset()) for name in node.input]
        point_side = [d & POINT_INPUTS and BOX_INPUT not in d for d in sides]
        box_side = [i for i, d in enumerate(sides) if BOX_INPUT in d and not d & POINT_INPUTS]
        if any(point_side) and box_side:
            yield index, node, box_side


def repair_prompt_concat(model: onnx.ModelProto, *, witnesses: bool = True) -> RepairReport:
    """Repair the Concat quirk in ``model`` (modified in place) and add witness outputs.

    Args:
        model: the decoder graph, changed in place.
        witnesses: add the shape outputs :func:`verify_repair` reads (the
            server's session); ``False`` for a copy that is only run (the web
            page's decoder, :mod:`sam_onnx.web`), whose outputs are then the
            decoder's own three.

    Returns:
        What was repaired; empty when the graph has no such Concat (e.g. an
        export that already reshapes empty prompt parts). Without witnesses the
        report's witness names are empty.
    """
    graph = model.graph
    found = list(_candidates(graph))
    if not found:
        return RepairReport(())
    if _opset(model) < MIN_OPSET:
        raise ModelLoadError(
            f"The decoder uses ONNX opset {_opset(model)}; repairing its prompt Concat needs opset {MIN_OPSET} "
            "or newer. Re-export the decoder with a newer opset.")
    one = f"{_PREFIX}_one"
    zero = f"{_PREFIX}_zero"
    graph.initializer.extend([numpy_helper.from_array(np.array([1], np.int64), one),
                              numpy_helper.from_array(np.array([0], np.int64), zero)])
    repaired = []
    inserted = 0
    for count, (index, node, box_slots) in enumerate(found):
        axis = _concat_axis(node)
        tag = f"{_PREFIX}_{count}"
        axis_name = f"{tag}_axis"
        graph.initializer.append(numpy_helper.from_array(np.array([axis], np.int64), axis_name))
        new_nodes = []
        for slot in box_slots:
            src = node.input[slot]
            t = f"{tag}_in{slot}"
            new_nodes += [
                helper.make_node("Shape", [src], [f"{t}_shape"]),
                helper.make_node("ReduceProd", [f"{t}_shape"], [f"{t}_numel"], keepdims=1),
                helper.make_node("Min", [f"{t}_numel", one], [f"{t}_nonempty"]),
                helper.make_node("Gather", [f"{t}_shape", axis_name], [f"{t}_len"], axis=0),
                helper.make_node("Mul", [f"{t}_len", f"{t}_nonempty"], [f"{t}_keep"]),
                helper.make_node("Slice", [src, zero, f"{t}_keep", axis_name], [f"{t}_sliced"]),
            ]
            node.input[slot] = f"{t}_sliced"
        position = index + inserted
        if not witnesses:
            for offset, new in enumerate(new_nodes):
                graph.node.insert(position + offset, new)
            inserted += len(new_nodes)
            repaired.append(RepairedConcat(node.name, axis, (), ""))
            continue
        input_witnesses = []
        for slot, name in enumerate(node.input):
            out = f"{tag}_witness_in{slot}"
            new_nodes.append(helper.make_node("Shape", [name], [out]))
            input_witnesses.append(out)
        out_witness = f"{tag}_witness_out"
        new_nodes.append(helper.make_node("Shape", [node.output[0]], [out_witness]))
        for offset, new in enumerate(new_nodes[:-1]):  # everything but the output witness goes before the Concat
            graph.node.insert(position + offset, new)
        graph.node.insert(position + len(new_nodes), new_nodes[-1])
        inserted += len(new_nodes)
        for name in (*input_witnesses, out_witness):
            graph.output.append(helper.make_tensor_value_info(name, TensorProto.INT64, [None]))
        repaired.append(RepairedConcat(node.name, axis, tuple(input_witnesses), out_witness))
    return RepairReport(tuple(repaired))


def tensors(graph: onnx.GraphProto) -> Iterable[onnx.TensorProto]:
    """Every tensor stored in a graph: initializers and node attributes (``t`` and ``tensors``), subgraphs
    included. The one walker: the decoder's external-data reader and the model fingerprint both use it."""
    yield from graph.initializer
    for node in graph.node:
        for attr in node.attribute:
            if attr.HasField("t"):
                yield attr.t
            yield from attr.tensors
            if attr.HasField("g"):
                yield from tensors(attr.g)
            for sub in attr.graphs:
                yield from tensors(sub)


def _inline_external_data(model: onnx.ModelProto, folder: Path) -> None:
    """Read external tensor data into the model.

    Unlike ``onnx.load``, this follows symbolic links: the huggingface_hub cache
    stores ``snapshots/<rev>/onnx/x.onnx_data`` as a link to ``blobs/<sha256>``,
    and onnx >= 1.20 refuses such links. The location itself must stay inside
    the model's folder (no absolute paths, no ``..``).
    """
    for tensor in tensors(model.graph):
        if tensor.data_location != TensorProto.EXTERNAL:
            continue
        info = external_data_helper.ExternalDataInfo(tensor)
        location = Path(info.location)
        if location.is_absolute() or ".." in location.parts:
            raise ValueError(f"external data location {info.location!r} leaves the model folder")
        offset = int(info.offset or 0)
        with open(folder / location, "rb") as fh:
            fh.seek(offset)
            data = fh.read() if info.length is None else fh.read(int(info.length))
        if info.length is not None and len(data) != int(info.length):
            raise ValueError(f"{location} holds {len(data)} bytes of tensor {tensor.name!r} at offset {offset}, "
                             f"expected {info.length}")
        tensor.raw_data = data
        tensor.data_location = TensorProto.DEFAULT
        del tensor.external_data[:]


def load_decoder_model(path: Path) -> onnx.ModelProto:
    """Read a decoder graph with its external data inlined (not repaired yet).

    Raises:
        ModelLoadError: the file (or its ``.onnx_data``) cannot be read as ONNX.
    """
    path = Path(path)
    try:
        model = onnx.load(str(path), load_external_data=False)
        _inline_external_data(model, path.parent)
    except FileNotFoundError as exc:
        raise ModelLoadError(
            f"Could not read the decoder {path}: its external-data file {Path(exc.filename or '?').name} "
            "(.onnx_data) is missing next to it. Put it beside the .onnx file, or delete both so that they "
            "are downloaded again.") from exc
    except Exception as exc:  # protobuf DecodeError, OSError, ValueError...
        raise ModelLoadError(
            f"Could not read the decoder {path}: it is damaged, truncated, empty, or its .onnx_data file does "
            f"not match it ({type(exc).__name__}). Delete it so that it is downloaded again, or use intact "
            "files.") from exc
    return model


def load_repaired_decoder(path: Path) -> tuple[bytes, RepairReport]:
    """Read a decoder (with its external data), repair it, return serialized bytes and the report.

    Raises:
        ModelLoadError: the file (or its ``.onnx_data``) cannot be read as ONNX.
    """
    model = load_decoder_model(path)
    report = repair_prompt_concat(model)
    if report.changed:
        logger.info("decoder %s: repaired %d prompt Concat node(s) against the onnxruntime empty-input quirk",
                    path.name, len(report.repaired))
    else:
        logger.info("decoder %s: no prompt Concat needs repair", path.name)
    return model.SerializeToString(), report


def verify_repair(session, report: RepairReport, feeds: dict[str, np.ndarray]) -> None:
    """Prove on the live session that the repaired Concats ignore empty inputs.

    Runs ``feeds`` (a points-only prompt with an empty ``input_boxes``) and
    checks, for every repaired Concat, that its output length on the concat
    axis equals the summed lengths of its non-empty inputs.

    Raises:
        ModelLoadError: a repaired Concat still counts an empty input.
    """
    if not report.changed:
        return
    values = dict(zip(report.witness_outputs, session.run(list(report.witness_outputs), feeds)))
    for rep in report.repaired:
        shapes = [values[n] for n in rep.input_shape_outputs]
        expected = sum(int(s[rep.axis]) for s in shapes if int(np.prod(s)) > 0)
        got = int(values[rep.output_shape_output][rep.axis])
        if got != expected:
            raise ModelLoadError(
                f"The decoder's prompt Concat {rep.node_name!r} still yields {got} tokens where {expected} are "
                "valid after repair; points-only prompts would read uninitialised memory. "
                "Please report this with your onnxruntime version.")
