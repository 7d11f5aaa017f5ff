"""Stopping work nobody waits for (issue 22): ``sam_onnx.abort`` in onnxruntime, the predictor and the service.

* a real onnxruntime run (a chain of matrix products that takes seconds) stops within one node after its
  abort is set, and the session runs again afterwards;
* the predictor runs nothing for a set abort, hands its abort to engines that are not onnxruntime, and drops a
  result finished after the abort;
* the service: an upload stopped during its encoder run caches nothing, keeps its input for a later try and
  frees the encoder for the next upload at once; one stopped while it waits for its turn to be read leaves
  the line without being read.
"""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest
from onnx import TensorProto, helper, numpy_helper
from PIL import Image

from sam_demo.service import SegmentationService, file_key
from sam_onnx import Abort, Aborted
from sam_onnx import abort as abort_module
from sam_onnx import session as ort_session
from sam_onnx.image import load_upright
from tests.conftest import make_rgb

CHAIN_SIDE = 256
CHAIN_NODES = 400
"""A MatMul chain of this many (rows x 256) @ (256 x 256) products: with 2048 rows, several seconds on one thread."""
HEAVY_ROWS = 2048
STOP_SHARE = 0.5
"""Bound between setting the abort and the run's end, as a share of the whole run measured beside it (a ratio, so
that a loaded machine slows both alike): one product of the 400 takes ~30 ms on one idle core."""
ENCODE_S = 2.0
"""The service tests' slowed encoder run (stopped long before it ends)."""


def chain_model() -> bytes:
    """``y = x @ W @ W ... @ W`` (CHAIN_NODES products), ``x`` float32 ``[rows, 256]`` with dynamic rows."""
    w = np.linalg.qr(np.random.default_rng(0).normal(size=(CHAIN_SIDE, CHAIN_SIDE)))[0].astype(np.float32)
    nodes = [helper.make_node("MatMul", ["x" if k == 0 else f"h{k}", "w"], ["y" if k == CHAIN_NODES - 1 else f"h{k + 1}"])
             for k in range(CHAIN_NODES)]
    graph = helper.make_graph(nodes, "chain", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["rows", CHAIN_SIDE])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["rows", CHAIN_SIDE])],
                              [numpy_helper.from_array(w, "w")])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]).SerializeToString()


def test_an_onnxruntime_run_stops_within_a_node_of_its_abort_and_the_session_runs_again():
    session = ort_session.create_session(chain_model(), label="chain", threads=1)
    light = {"x": np.ones((1, CHAIN_SIDE), np.float32)}
    heavy = {"x": np.ones((HEAVY_ROWS, CHAIN_SIDE), np.float32)}
    ort_session.run(session, ["y"], light, label="chain")  # warm: the first run allocates
    started = time.perf_counter()
    ort_session.run(session, ["y"], {"x": np.ones((64, CHAIN_SIDE), np.float32)}, label="chain")
    whole_s = (time.perf_counter() - started) * HEAVY_ROWS / 64  # the heavy run, estimated (not run)
    stop = Abort()
    outcome: list[object] = []

    def work():
        try:
            with abort_module.scope(stop):
                outcome.append(ort_session.run(session, ["y"], heavy, label="chain"))
        except Aborted as exc:
            outcome.append(exc)

    thread = threading.Thread(target=work)
    thread.start()
    time.sleep(0.2)
    set_at = time.perf_counter()
    stop.set("test")
    thread.join(30)
    stopped_s = time.perf_counter() - set_at
    assert len(outcome) == 1 and isinstance(outcome[0], Aborted), outcome
    print(f"stopped {stopped_s * 1e3:.0f} ms after the abort; the whole run would take about {whole_s:.1f} s")
    assert stopped_s < STOP_SHARE * whole_s
    y = ort_session.run(session, ["y"], light, label="chain")[0]  # the session is fine: a normal run works
    assert y.shape == (1, CHAIN_SIDE) and np.isfinite(y).all()


class CountingEncoder:
    """An encoder outside onnxruntime: records the abort it sees and sets it itself (a stop during its run)."""

    def __init__(self, inner, *, set_during: bool = False) -> None:
        self.inner, self.name, self.description = inner, inner.name, inner.description
        self.seen: list[object] = []
        self.set_during = set_during

    def encode(self, pixel_values):
        current = abort_module.current()
        self.seen.append(current)
        if self.set_during and current is not None:
            current.set()
        return self.inner.encode(pixel_values)


def test_the_predictor_runs_nothing_for_a_set_abort_and_drops_a_result_finished_after_one(predictor):
    rgb = make_rgb(60, 80)
    counting = CountingEncoder(predictor.encoder)
    slow = predictor.with_encoder(counting, None)
    stop = Abort()
    stop.set()
    with pytest.raises(Aborted):
        slow.encode(rgb, abort=stop)
    assert counting.seen == [], "an aborted encode must not start the engine"
    assert slow.encode(rgb).features[0].shape == (1, 32, 256, 256) and counting.seen == [None]
    late = CountingEncoder(predictor.encoder, set_during=True)
    mine = Abort()
    with pytest.raises(Aborted):
        predictor.with_encoder(late, None).encode(rgb, abort=mine)
    assert late.seen == [mine], "the engine sees the caller's abort (sam_onnx.abort.current)"


class StoppableEncoder:
    """The analytic encoder after ENCODE_S of waiting in 10 ms slices, stopped at the next slice by its abort."""

    def __init__(self, inner) -> None:
        self.inner, self.name, self.description = inner, inner.name, inner.description
        self.running = threading.Event()
        self.runs: list[str] = []

    def encode(self, pixel_values):
        stop = abort_module.current()
        self.running.set()
        started = time.perf_counter()
        try:
            while time.perf_counter() - started < ENCODE_S:
                if stop is not None and stop.is_set():
                    self.runs.append("stopped")
                    raise Aborted()
                time.sleep(0.01)
            self.runs.append("done")
            return self.inner.encode(pixel_values)
        finally:
            self.running.clear()


@pytest.fixture
def stoppable(predictor, tmp_path):
    encoder = StoppableEncoder(predictor.encoder)
    service = SegmentationService(predictor.with_encoder(encoder, None), image_cache_mb=64)
    files = []
    for k in range(2):
        path = tmp_path / f"photo{k}.png"
        Image.fromarray(make_rgb(90, 120, seed=20 + k)).save(path)
        files.append(str(path))
    return service, encoder, files


def test_an_upload_stopped_in_its_encoder_run_caches_nothing_and_frees_the_encoder_at_once(stoppable):
    service, encoder, (first, second) = stoppable
    stop = Abort()
    outcome: list[object] = []

    def upload():
        try:
            outcome.append(service.open_image(first, abort=stop))
        except Aborted as exc:
            outcome.append(exc)

    thread = threading.Thread(target=upload)
    thread.start()
    assert encoder.running.wait(10)
    stop.set()
    started = time.perf_counter()
    record, info = service.open_image(second)  # waits for the encoder: the stopped run lets it go at once
    elapsed = time.perf_counter() - started
    thread.join(10)
    assert isinstance(outcome[0], Aborted) and encoder.runs == ["stopped", "done"]
    assert elapsed < ENCODE_S + 0.5 * ENCODE_S, f"the next upload took {elapsed:.2f} s"
    assert not info["cache_hit"]
    key = file_key(first)
    assert service._images.get(key) is None, "a stopped run's embedding was cached"
    assert service._received.get(key) is not None, "the stopped upload's input was thrown away"


def test_an_upload_stopped_while_it_waits_to_be_read_leaves_the_line_unread(stoppable, monkeypatch):
    service, encoder, (first, second) = stoppable
    read: list[str] = []
    monkeypatch.setattr("sam_demo.service.load_upright",  # how an upload is read (step 1)
                        lambda path, **kw: (read.append(path), load_upright(path, **kw))[1])
    busy = threading.Thread(target=service.open_image, args=(first,))
    busy.start()
    assert encoder.running.wait(10)  # the first upload holds the intake turn through its encoder run
    stop = Abort()
    outcome: list[object] = []
    waiting = threading.Thread(target=lambda: outcome.append(_try(service.open_image, second, abort=stop)))
    waiting.start()
    deadline = time.monotonic() + 10
    while service.intake.waiting() < 1 and time.monotonic() < deadline:
        time.sleep(0.005)
    stop.set()
    waiting.join(1.0)
    assert not waiting.is_alive(), "the withdrawn upload still waits"
    assert isinstance(outcome[0], Aborted) and read == [first], "the withdrawn upload was read"
    busy.join(10)


def _try(fn, *args, **kwargs):
    try:
        return fn(*args, **kwargs)
    except Aborted as exc:
        return exc
